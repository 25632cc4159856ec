// The real kube-apiserver, with the project's crds/ applied, refuses every invalid MetricsPusher in this table with
// a message that names the offending field (among them every case of issue 11 where the sidecar used to exit 2 at
// start); what it accepts, the pusher's own parse accepts too (a property over generated specs); and a MetricsPusher can never reference a Secret of another namespace
// (its Secret references have no namespace field: strict field validation refuses one, and without it the field is
// pruned, so the reference stays in the MetricsPusher's own namespace).
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { CustomObjectsApi } from "@kubernetes/client-node";
import fc from "fast-check";
import { checkSidecar, renderSidecar } from "../../operator/src/inject/sidecar.ts";
import type { SidecarDefaults } from "../../operator/src/inject/sidecar.ts";
import type { MetricsPusher } from "../../operator/src/api/index.ts";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../../operator/src/api/index.ts";
import { apiCode, apiMessage, applyCrds, createNamespace } from "../lib/kube.ts";

const NS = "crd-table";

/**
 * A spec as it goes on the wire: the cases put values of the wrong type in it on purpose (a number for the url, a
 * string for the selector), so its fields are `unknown`; remoteWrite is the one object the cases reach into.
 */
interface RawSpec {
  [field: string]: unknown;
  remoteWrite: Record<string, unknown>;
}

function valid(): RawSpec {
  return {
    selector: { matchLabels: { app: "builder" } },
    remoteWrite: { url: "http://prometheus.monitoring:9090/api/v1/write" },
  };
}

interface Case {
  name: string;
  /** Changes a valid spec into an invalid one. */
  spec: (s: RawSpec) => void;
  /** The field the message must name (as the apiserver writes paths: spec.remoteWrite.url). */
  field: string | RegExp;
}

const cases: Case[] = [
  { name: "no selector", spec: (s) => delete s.selector, field: "spec.selector" },
  { name: "no remoteWrite", spec: (s: Record<string, unknown>) => delete s.remoteWrite, field: "spec.remoteWrite" },
  { name: "no remoteWrite.url", spec: (s) => delete s.remoteWrite.url, field: "spec.remoteWrite.url" },
  {
    name: "url with ftp scheme",
    spec: (s) => (s.remoteWrite.url = "ftp://prometheus/api/v1/write"),
    field: "spec.remoteWrite.url",
  },
  {
    name: "url without scheme",
    spec: (s) => (s.remoteWrite.url = "prometheus:9090/api/v1/write"),
    field: "spec.remoteWrite.url",
  },
  { name: "empty url", spec: (s) => (s.remoteWrite.url = ""), field: "spec.remoteWrite.url" },
  { name: "url that is not a string", spec: (s) => (s.remoteWrite.url = 42), field: "spec.remoteWrite.url" },
  { name: "zero pushInterval", spec: (s) => (s.pushInterval = "0s"), field: "spec.pushInterval" },
  { name: "negative pushInterval", spec: (s) => (s.pushInterval = "-5s"), field: "spec.pushInterval" },
  { name: "pushInterval without unit", spec: (s) => (s.pushInterval = "30"), field: "spec.pushInterval" },
  { name: "pushInterval garbage", spec: (s) => (s.pushInterval = "soon"), field: "spec.pushInterval" },
  { name: "zero remoteWrite.timeout", spec: (s) => (s.remoteWrite.timeout = "0ms"), field: "spec.remoteWrite.timeout" },
  {
    name: "reserved header Content-Type",
    spec: (s) => (s.remoteWrite.headers = { "Content-Type": "text/plain" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header authorization (any case)",
    spec: (s) => (s.remoteWrite.headers = { authorization: "Bearer x" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header X-Prometheus-Remote-Write-Version",
    spec: (s) => (s.remoteWrite.headers = { "X-Prometheus-Remote-Write-Version": "2.0.0" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header Content-Encoding",
    spec: (s) => (s.remoteWrite.headers = { "Content-Encoding": "gzip" }),
    field: "spec.remoteWrite.headers",
  },
  { name: "unknown logLevel", spec: (s) => (s.logLevel = "verbose"), field: "spec.logLevel" },
  { name: "unknown sidecarMode", spec: (s) => (s.sidecarMode = "Sometimes"), field: "spec.sidecarMode" },
  { name: "unknown rolloutStrategy", spec: (s) => (s.rolloutStrategy = "Always"), field: "spec.rolloutStrategy" },
  {
    name: "negative scrape.sampleLimit",
    spec: (s) => (s.scrape = { targets: [{ port: 8080 }], sampleLimit: -1 }),
    field: "spec.scrape.sampleLimit",
  },
  {
    name: "scrape.labelLimit above the pusher's maximum",
    spec: (s) => (s.scrape = { targets: [{ port: 8080 }], labelLimit: 10_001 }),
    field: "spec.scrape.labelLimit",
  },
  {
    name: "scrape port 0",
    spec: (s) => (s.scrape = { targets: [{ port: 0 }] }),
    field: /spec\.scrape\.targets(\[0\])?\.port/,
  },
  {
    name: "scrape port 70000",
    spec: (s) => (s.scrape = { targets: [{ port: 70000 }] }),
    field: /spec\.scrape\.targets(\[0\])?\.port/,
  },
  {
    name: "scrape target without port",
    spec: (s) => (s.scrape = { targets: [{ path: "/metrics" }] }),
    field: /spec\.scrape\.targets(\[0\])?\.port/,
  },
  {
    name: "bearerTokenSecret without key",
    spec: (s) => (s.remoteWrite.bearerTokenSecret = { name: "token" }),
    field: "spec.remoteWrite.bearerTokenSecret.key",
  },
  {
    name: "bearerTokenSecret without name",
    spec: (s) => (s.remoteWrite.bearerTokenSecret = { key: "token" }),
    field: "spec.remoteWrite.bearerTokenSecret.name",
  },
  {
    name: "basicAuth without passwordSecret",
    spec: (s) => (s.remoteWrite.basicAuth = { username: "u" }),
    field: "spec.remoteWrite.basicAuth.passwordSecret",
  },
  {
    name: "insecureSkipVerify as a string",
    spec: (s) => (s.remoteWrite.insecureSkipVerify = "yes"),
    field: "spec.remoteWrite.insecureSkipVerify",
  },
  { name: "buffer.maxSamples 0", spec: (s) => (s.buffer = { maxSamples: 0 }), field: "spec.buffer.maxSamples" },
  { name: "selector that is a string", spec: (s) => (s.selector = "app=builder"), field: "spec.selector" },
  {
    name: "externalLabels with an invalid label name",
    spec: (s) => (s.externalLabels = { "1bad-name": "x" }),
    field: "spec.externalLabels",
  },
  // Issue 11, item 3: each of these passed the schema, then the sidecar exited 2 at start.
  {
    name: "buffer.maxSamples below one batch (1999)",
    spec: (s) => (s.buffer = { maxSamples: 1999 }),
    field: "spec.buffer.maxSamples",
  },
  { name: "external label named __x", spec: (s) => (s.externalLabels = { __x: "a" }), field: "spec.externalLabels" },
  {
    name: "external label with an empty value",
    spec: (s) => (s.externalLabels = { team: "" }),
    field: "spec.externalLabels",
  },
  {
    name: "duplicate scrape targets (the default path spelled out)",
    spec: (s) => (s.scrape = { targets: [{ port: 8080 }, { port: 8080, path: "/metrics" }] }),
    field: "spec.scrape.targets",
  },
  {
    name: "scrape.timeout above pushInterval",
    spec: (s) => ((s.pushInterval = "30s"), (s.scrape = { targets: [{ port: 8080 }], timeout: "1m" })),
    field: "spec.scrape.timeout",
  },
  {
    name: "scrape.timeout above the default pushInterval",
    spec: (s) => (s.scrape = { targets: [{ port: 8080 }], timeout: "31s" }),
    field: "spec.scrape.timeout",
  },
  {
    name: "scrape.bodySizeLimit 0",
    spec: (s) => (s.scrape = { targets: [{ port: 8080 }], bodySizeLimit: 0 }),
    field: "spec.scrape.bodySizeLimit",
  },
  {
    // 2^53 bytes: one past the largest byte count the pusher's SCRAPE_MAX_BYTES takes exactly.
    name: "scrape.bodySizeLimit 8Pi",
    spec: (s) => (s.scrape = { targets: [{ port: 8080 }], bodySizeLimit: "8Pi" }),
    field: "spec.scrape.bodySizeLimit",
  },
  {
    name: "buffer.disk.sizeLimit 64Ki",
    spec: (s) => (s.buffer = { disk: { sizeLimit: "64Ki" } }),
    field: "spec.buffer.disk.sizeLimit",
  },
  {
    name: "buffer.disk.sizeLimit 65536 as an integer",
    spec: (s) => (s.buffer = { disk: { sizeLimit: 65536 } }),
    field: "spec.buffer.disk.sizeLimit",
  },
  { name: "pushInterval 500us", spec: (s) => (s.pushInterval = "500us"), field: "spec.pushInterval" },
  {
    name: "remoteWrite.timeout 999999ns",
    spec: (s) => (s.remoteWrite.timeout = "999999ns"),
    field: "spec.remoteWrite.timeout",
  },
  {
    name: "header value with a line feed",
    spec: (s) => (s.remoteWrite.headers = { "X-A": "a\nb" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "header value with a control character",
    spec: (s) => (s.remoteWrite.headers = { "X-A": "a\u0001b" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "header value with €",
    spec: (s) => (s.remoteWrite.headers = { "X-A": "5€" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "a header repeated in another case",
    spec: (s) => (s.remoteWrite.headers = { "X-Scope-OrgID": "a", "x-scope-orgid": "b" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "credentials in the URL together with bearerTokenSecret",
    spec: (s) => (s.remoteWrite = { url: "https://u:p@rw/api/v1/write", bearerTokenSecret: { name: "t", key: "t" } }),
    field: "spec.remoteWrite",
  },
  {
    name: "url http://:80/write (no host)",
    spec: (s) => (s.remoteWrite.url = "http://:80/write"),
    field: "spec.remoteWrite.url",
  },
  {
    name: "url with port 99999",
    spec: (s) => (s.remoteWrite.url = "http://rw:99999/write"),
    field: "spec.remoteWrite.url",
  },
  {
    name: "url with IPv4 host 10.0.0.256",
    spec: (s) => (s.remoteWrite.url = "http://10.0.0.256/write"),
    field: "spec.remoteWrite.url",
  },
  {
    name: "url with IPv6 host [1:2:3]",
    spec: (s) => (s.remoteWrite.url = "http://[1:2:3]/write"),
    field: "spec.remoteWrite.url",
  },
  { name: 'image ""', spec: (s) => (s.image = ""), field: "spec.image" },
  {
    name: "basicAuth without a user name",
    spec: (s) => (s.remoteWrite.basicAuth = { passwordSecret: { name: "s", key: "p" } }),
    field: "spec.remoteWrite.basicAuth",
  },
  // Issue 11, item 5: a comma in a path used to add a target on any host.
  {
    name: "scrape path holding a comma and a second URL",
    spec: (s) => (s.scrape = { targets: [{ port: 8080, path: "/metrics,http://10.96.0.1:9100/metrics" }] }),
    field: /spec\.scrape\.targets(\[0\])?\.path/,
  },
  {
    name: "scrape path with a #fragment",
    spec: (s) => (s.scrape = { targets: [{ port: 8080, path: "/metrics#x" }] }),
    field: /spec\.scrape\.targets(\[0\])?\.path/,
  },
  {
    name: "scrape path with a .. segment",
    spec: (s) => (s.scrape = { targets: [{ port: 8080, path: "/x/../metrics" }] }),
    field: /spec\.scrape\.targets(\[0\])?\.path/,
  },
  {
    name: "scrape with neither targets nor discovery",
    spec: (s) => (s.scrape = { job: "builder" }),
    field: "spec.scrape",
  },
  {
    name: "scrape discovery None without targets",
    spec: (s) => (s.scrape = { discovery: "None" }),
    field: "spec.scrape",
  },
  {
    name: "scrape discovery that is not a mode",
    spec: (s) => (s.scrape = { discovery: "Everything" }),
    field: "spec.scrape.discovery",
  },
  {
    name: "seventeen scrape targets",
    spec: (s) => (s.scrape = { targets: Array.from({ length: 17 }, (_, i) => ({ port: 8000 + i })) }),
    field: "spec.scrape.targets",
  },
  {
    name: "negative resource quantity",
    spec: (s) => (s.resources = { requests: { memory: "-1Mi" } }),
    field: "spec.resources.requests",
  },
];

const sidecarDefaults: SidecarDefaults = {
  image: "ghcr.io/metrics-pusher/pusher:0.1.0",
  runAsUser: 65532,
  resources: { requests: { cpu: "10m", memory: "64Mi" } },
  nativeSidecarsSupported: true,
};

// Mostly valid values, and some near each rule's edge, so that the generator reaches both sides of every boundary
// the CRD draws (a spec is refused as soon as one field is).
const mostly = <T>(good: readonly T[], edge: readonly T[]): fc.Arbitrary<T> =>
  fc.oneof({ arbitrary: fc.constantFrom(...good), weight: 6 }, { arbitrary: fc.constantFrom(...edge), weight: 1 });
const goodDurations = ["1ms", "1000us", "1000000ns", "0.5s", ".5s", "5.s", "10s", "30s", "1m30s", "1.5h", "1μs1ms"];
const edgeDurations = ["999us", "0s", "31s", "2h45m", "596h31m23.647s", "1µs", "500us"];
const duration = mostly(goodDurations, edgeDurations);
const arbSpec = fc.record(
  {
    url: mostly(
      [
        "http://prometheus.monitoring:9090/api/v1/write",
        "https://u:p@vm:8428/api/v1/write",
        "http://[::1]:9090/write",
        "http://[2001:db8::1]/write",
        "http://10.0.0.1/write",
        "http://rw.:65535/write?x=1#f",
        "http://rw_1/write",
        "http://rw/%zz",
        "http://rw/€",
        "http://h:/x",
      ],
      ["http://rw:65536/write", "http://:80/write", "http://10.0.0.256/w", "http://[1:2:3]/w", "http://a.123/"],
    ),
    auth: mostly(["none", "none", "bearer", "basic", "basicSecret"], ["basicBlank", "basicNone"]),
    pushInterval: duration,
    timeout: duration,
    scrapeTimeout: duration,
    targets: fc.array(
      fc.record(
        {
          port: fc.integer({ min: 8080, max: 8082 }),
          path: mostly(
            ["/metrics", "/m", "/q?match[]=up", "/a:b@c", "/%41"],
            ["/a,b", "/x/../metrics", "/%2e/metrics", "/h#f", "/é", "/a b", "m"],
          ),
        },
        { requiredKeys: ["port"] },
      ),
      { maxLength: 3 },
    ),
    discovery: mostly(["None", "Annotations", "Ports", "Auto"], ["auto", ""]),
    labels: fc.dictionary(
      mostly(["team", "_ok", "a1", "job"], ["__x", "1a", "a-b"]),
      mostly(["a", " ", "x,y", 'q"u', "€", "a=b"], [""]),
      {
        maxKeys: 3,
      },
    ),
    headers: fc.dictionary(
      mostly(["X-Scope-OrgID", "X-A", "x-a"], ["Bad Name", "Content-Type", "x-scope-orgid"]),
      mostly(["", "t1", "é", "a\tb", " x ", "ÿ"], ["a\nb", "a\u0001", "€", "a\u007f"]),
      { maxKeys: 3 },
    ),
    maxSamples: mostly([2000, 100000, 10000000], [1, 1999, 10000001]),
    bodySizeLimit: mostly<string | number>(
      ["4Mi", 1, "1", "1.5", "0.5Ki", "7Pi", 65536],
      ["0", 0, "500m", "8Pi", "-1Mi"],
    ),
    sizeLimit: mostly<string | number>(
      ["72818", 72818, "256Mi", 268435456, "1e9", "0.5Gi", "1Gi"],
      ["64Ki", 72817, "500m", "1E", "-1Gi"],
    ),
    image: mostly(["ghcr.io/metrics-pusher/pusher:0.1.0"], ["", "a b"]),
  },
  { requiredKeys: ["url", "auth"] },
);

type Generated = typeof arbSpec extends fc.Arbitrary<infer T> ? T : never;

function specOf(g: Generated): Record<string, unknown> {
  const remoteWrite: Record<string, unknown> = { url: g.url };
  if (g.timeout !== undefined) remoteWrite.timeout = g.timeout;
  if (g.headers !== undefined) remoteWrite.headers = g.headers;
  const secret = { name: "rw", key: "k" };
  if (g.auth === "bearer") remoteWrite.bearerTokenSecret = secret;
  if (g.auth === "basic") remoteWrite.basicAuth = { username: "u", passwordSecret: secret };
  if (g.auth === "basicSecret") remoteWrite.basicAuth = { usernameSecret: secret, passwordSecret: secret };
  if (g.auth === "basicBlank") remoteWrite.basicAuth = { username: " ", passwordSecret: secret };
  if (g.auth === "basicNone") remoteWrite.basicAuth = { passwordSecret: secret };
  return {
    selector: {},
    remoteWrite,
    ...(g.pushInterval !== undefined ? { pushInterval: g.pushInterval } : {}),
    ...(g.labels !== undefined ? { externalLabels: g.labels } : {}),
    ...(g.targets !== undefined || g.discovery !== undefined
      ? {
          scrape: {
            ...(g.targets !== undefined ? { targets: g.targets } : {}),
            ...(g.discovery !== undefined ? { discovery: g.discovery } : {}),
            ...(g.scrapeTimeout !== undefined ? { timeout: g.scrapeTimeout } : {}),
            ...(g.bodySizeLimit !== undefined ? { bodySizeLimit: g.bodySizeLimit } : {}),
          },
        }
      : {}),
    ...(g.maxSamples !== undefined || g.sizeLimit !== undefined
      ? {
          buffer: {
            ...(g.maxSamples !== undefined ? { maxSamples: g.maxSamples } : {}),
            ...(g.sizeLimit !== undefined ? { disk: { sizeLimit: g.sizeLimit } } : {}),
          },
        }
      : {}),
    ...(g.image !== undefined ? { image: g.image } : {}),
  };
}

describe("invalid MetricsPushers refused by the real apiserver", () => {
  let cp: ControlPlane;
  let api: CustomObjectsApi;
  before(async () => {
    cp = await startControlPlane();
    await applyCrds(cp);
    await createNamespace(cp.kubeConfig, NS);
    api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await cp?.stop();
  });

  const create = (name: string, spec: unknown, fieldValidation?: string) =>
    api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      body: { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec },
      ...(fieldValidation ? { fieldValidation } : {}),
    });

  it("accepts the valid base object (so each refusal below is due to its one change)", async () => {
    await create("valid", valid());
  });

  assert.ok(cases.length >= 20, "the table must hold at least 20 cases");
  for (const [i, c] of cases.entries()) {
    it(`refuses: ${c.name}`, async () => {
      const spec = valid();
      c.spec(spec);
      let message = "";
      try {
        await create(`invalid-${i}`, spec);
      } catch (e) {
        assert.equal(apiCode(e), 422, `expected 422 Unprocessable Entity, got ${apiCode(e)}: ${apiMessage(e)}`);
        message = apiMessage(e);
      }
      assert.notEqual(message, "", `the apiserver accepted ${JSON.stringify(spec)}`);
      if (typeof c.field === "string")
        assert.ok(message.includes(c.field), `message does not name ${c.field}: ${message}`);
      else assert.match(message, c.field, `message does not name the field: ${message}`);
    });
  }

  it("accepts discovery without targets, and with them (issue 18)", async () => {
    for (const [name, scrape] of [
      ["discovery-only", { discovery: "Auto" }],
      ["discovery-and-targets", { discovery: "Annotations", targets: [{ port: 8080 }] }],
      ["ports-only", { discovery: "Ports" }],
    ] as const) {
      const spec = valid();
      spec.scrape = scrape;
      const created = (await create(name, spec)) as { spec: MetricsPusher["spec"] };
      assert.deepEqual(created.spec.scrape, scrape);
      const stored = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: NS }, spec: created.spec };
      assert.equal(checkSidecar(renderSidecar(stored as MetricsPusher, sidecarDefaults).container, NS), undefined);
    }
  });

  it("accepts quantities as integers or strings (issue 11, item 4)", async () => {
    const spec = valid();
    spec.buffer = { disk: { sizeLimit: 268435456 } };
    spec.resources = { requests: { cpu: 1, memory: "64Mi" }, limits: { memory: 201326592 } };
    const created = (await create("int-quantities", spec)) as { spec: { buffer: { disk: { sizeLimit: unknown } } } };
    assert.equal(created.spec.buffer.disk.sizeLimit, 268435456);
    const stored = { apiVersion: API_VERSION, kind: KIND, metadata: { name: "x", namespace: NS }, spec: created.spec };
    const r = renderSidecar(stored as MetricsPusher, sidecarDefaults);
    assert.equal(checkSidecar(r.container, NS), undefined);
    assert.deepEqual(r.volumes.find((v) => v.emptyDir)?.emptyDir, { sizeLimit: "268435456" });
  });

  it("what the apiserver accepts, the pusher's parse accepts (generated specs, server-side dry run)", async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(arbSpec, async (g) => {
        const spec = specOf(g);
        let stored: Record<string, unknown> | undefined;
        try {
          stored = (await api.createNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace: NS,
            plural: PLURAL,
            body: { apiVersion: API_VERSION, kind: KIND, metadata: { generateName: "prop-" }, spec },
            dryRun: "All",
          })) as Record<string, unknown>;
        } catch (e) {
          assert.equal(apiCode(e), 422, `not a validation refusal: ${apiMessage(e)}`);
          refused++;
          return;
        }
        accepted++;
        const r = renderSidecar(
          { ...stored, metadata: { name: "p", namespace: NS } } as MetricsPusher,
          sidecarDefaults,
        );
        const problem = checkSidecar(r.container, NS);
        assert.equal(
          problem,
          undefined,
          `the apiserver accepted ${JSON.stringify(spec)}, the pusher refuses: ${problem}`,
        );
      }),
      { numRuns: 300, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
    process.stdout.write(`# property: ${accepted} specs accepted (each parsed by the pusher), ${refused} refused\n`);
    assert.ok(
      accepted >= 20 && refused >= 20,
      `the generator must reach both sides: ${accepted} accepted, ${refused} refused`,
    );
  });

  it("has no way to name a Secret in another namespace: strict validation refuses the field, lax validation drops it", async () => {
    const spec = valid();
    spec.remoteWrite.bearerTokenSecret = { name: "token", key: "token", namespace: "kube-system" };
    let message = "";
    try {
      await create("cross-ns-strict", spec, "Strict");
    } catch (e) {
      message = apiMessage(e);
    }
    assert.match(
      message,
      /unknown field "?spec\.remoteWrite\.bearerTokenSecret\.namespace"?/,
      `strict create was not refused for the namespace field: ${message}`,
    );

    const created = (await create("cross-ns-lax", spec, "Ignore")) as {
      spec: { remoteWrite: { bearerTokenSecret: Record<string, unknown> } };
    };
    assert.deepEqual(
      created.spec.remoteWrite.bearerTokenSecret,
      { name: "token", key: "token" },
      "the namespace field survived in storage",
    );
  });
});
