import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Container } from "@kubernetes/client-node";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parse, PUSHER_NODE_OPTIONS } from "@metrics-pusher/pusher/config";
import {
  BUFFER_MOUNT_PATH,
  configHash,
  isImageAllowed,
  checkSidecar,
  renderSidecar,
  resolveNative,
} from "./sidecar.ts";
import { defaults, pusher } from "./testdata.test-fixtures.ts";

function envOf(c: V1Container): Record<string, string> {
  return Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
}

describe("renderSidecar", () => {
  it("renders the pusher's env contract, which the pusher itself accepts", () => {
    const r = renderSidecar(
      pusher("mp", {
        pushInterval: "90s",
        logLevel: "debug",
        externalLabels: { team: "a", cluster: "c,1" },
        remoteWrite: {
          url: "https://vm:8428/api/v1/write",
          timeout: "10s",
          headers: { "X-Scope-OrgID": "t1" },
          insecureSkipVerify: true,
        },
        scrape: { targets: [{ port: 8080 }, { port: 9090, path: "stats" }], job: "kaniko", timeout: "5s" },
        buffer: { maxSamples: 5000 },
      }),
      defaults,
    );
    const env = envOf(r.container);
    assert.equal(env.PROMETHEUS_REMOTE_WRITE_URL, "https://vm:8428/api/v1/write");
    assert.equal(env.PUSH_INTERVAL, "1m30s");
    assert.equal(env.TIMEOUT, "10s");
    assert.equal(env.EXTERNAL_LABELS, 'cluster="c,1",team=a');
    assert.equal(env.SCRAPE_TARGETS, '["http://127.0.0.1:8080/metrics","http://127.0.0.1:9090/stats"]');
    // Round trip through the pusher's own parser, downward-API values filled in as the kubelet would.
    const cfg = parse({ ...env, NAMESPACE: "builds", POD_NAME: "p", NODE_NAME: "n" });
    assert.equal(cfg.pushIntervalMs, 90_000);
    assert.equal(cfg.timeoutMs, 10_000);
    assert.equal(cfg.logLevel, "debug");
    const fieldRefs = Object.fromEntries(
      (r.container.env ?? []).filter((e) => e.valueFrom).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
    );
    assert.deepEqual(fieldRefs, {
      NAMESPACE: "metadata.namespace",
      POD_NAME: "metadata.name",
      NODE_NAME: "spec.nodeName",
    });
  });

  it("sets STALE_MARKERS_ON_SHUTDOWN=true: in a sidecar the pod is going away, its series end with it", () => {
    const env = envOf(renderSidecar(pusher("mp", {}), defaults).container);
    assert.equal(env.STALE_MARKERS_ON_SHUTDOWN, "true");
    const cfg = parse({ ...env, NAMESPACE: "builds", POD_NAME: "p", NODE_NAME: "n" });
    assert.equal(cfg.staleMarkersOnShutdown, true);
  });

  it("renders scrape.sampleLimit and labelLimit only when set, and the pusher parses them", () => {
    const spec = { scrape: { targets: [{ port: 8080 }] } };
    const unset = envOf(renderSidecar(pusher("mp", spec), defaults).container);
    assert.equal(unset.SCRAPE_SAMPLE_LIMIT, undefined, "the pusher's measured default applies");
    assert.equal(unset.SCRAPE_LABEL_LIMIT, undefined);
    assert.equal(unset.SCRAPE_LABEL_VALUE_LENGTH_LIMIT, undefined);
    const scrape = { ...spec.scrape, sampleLimit: 12000, labelLimit: 0, labelValueLengthLimit: 512 };
    const env = envOf(renderSidecar(pusher("mp", { scrape }), defaults).container);
    assert.equal(env.SCRAPE_SAMPLE_LIMIT, "12000");
    assert.equal(env.SCRAPE_LABEL_LIMIT, "0");
    const cfg = parse({ ...env, NAMESPACE: "builds", POD_NAME: "p", NODE_NAME: "n" });
    assert.equal(cfg.scrapeSampleLimit, 12000);
    assert.equal(cfg.scrapeLabelLimit, 0);
    assert.equal(env.SCRAPE_LABEL_VALUE_LENGTH_LIMIT, "512");
    assert.equal(cfg.scrapeLabelValueLengthLimit, 512);
  });

  it("renders scrape.bodySizeLimit as whole bytes, rounded up, only when set", () => {
    const spec = { scrape: { targets: [{ port: 8080 }] } };
    assert.equal(envOf(renderSidecar(pusher("mp", spec), defaults).container).SCRAPE_MAX_BYTES, undefined);
    for (const [q, bytes] of [
      ["8Mi", 8 * 1024 ** 2],
      [65536, 65536],
      ["1.5", 2],
      ["1e3", 1000],
      ["2k", 2000],
    ] as const) {
      const env = envOf(
        renderSidecar(pusher("mp", { scrape: { ...spec.scrape, bodySizeLimit: q } }), defaults).container,
      );
      assert.equal(env.SCRAPE_MAX_BYTES, String(bytes), `bodySizeLimit ${q}`);
      assert.equal(parse({ ...env, NAMESPACE: "builds", POD_NAME: "p", NODE_NAME: "n" }).scrapeMaxBytes, bytes);
    }
  });

  it("renders the image's NODE_OPTIONS, which Node accepts in NODE_OPTIONS", () => {
    const env = envOf(renderSidecar(pusher("mp", {}), defaults).container);
    // The same value as Dockerfile.pusher's ENV, so a user's own pusher image runs with the settings the image has.
    const dockerfile = readFileSync(new URL("../../../Dockerfile.pusher", import.meta.url), "utf8");
    const image = /^ENV NODE_OPTIONS=(\S+)$/m.exec(dockerfile)?.[1];
    assert.equal(image, PUSHER_NODE_OPTIONS, "Dockerfile.pusher's ENV NODE_OPTIONS");
    assert.equal(env.NODE_OPTIONS, PUSHER_NODE_OPTIONS);
    // Node refuses many V8 flags in NODE_OPTIONS and exits with code 9: check that this Node takes it.
    const r = spawnSync(process.execPath, ["-e", "0"], { env: { NODE_OPTIONS: env.NODE_OPTIONS }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  });

  it("mounts Secrets as optional volumes exposing only the referenced keys", () => {
    const r = renderSidecar(
      pusher("mp", {
        remoteWrite: {
          url: "https://rw/api/v1/write",
          bearerTokenSecret: { name: "rw-auth", key: "token" },
          basicAuth: {
            usernameSecret: { name: "rw-auth", key: "user" },
            passwordSecret: { name: "rw-auth", key: "pass" },
          },
          tlsCASecret: { name: "rw-ca", key: "ca.crt" },
        },
      }),
      defaults,
    );
    assert.deepEqual(r.volumes, [
      {
        name: "metrics-pusher-secret-0",
        secret: {
          secretName: "rw-auth",
          optional: true,
          items: [
            { key: "pass", path: "pass" },
            { key: "token", path: "token" },
            { key: "user", path: "user" },
          ],
        },
      },
      {
        name: "metrics-pusher-secret-1",
        secret: { secretName: "rw-ca", optional: true, items: [{ key: "ca.crt", path: "ca.crt" }] },
      },
    ]);
    const env = envOf(r.container);
    assert.equal(env.BEARER_TOKEN_FILE, "/etc/metrics-pusher/secrets/metrics-pusher-secret-0/token");
    assert.equal(env.BASIC_AUTH_USERNAME_FILE, "/etc/metrics-pusher/secrets/metrics-pusher-secret-0/user");
    assert.equal(env.BASIC_AUTH_PASSWORD_FILE, "/etc/metrics-pusher/secrets/metrics-pusher-secret-0/pass");
    assert.equal(env.TLS_CA_FILE, "/etc/metrics-pusher/secrets/metrics-pusher-secret-1/ca.crt");
    assert.ok(r.container.volumeMounts?.every((m) => m.readOnly));
    for (const e of r.container.env ?? [])
      assert.ok(!e.valueFrom?.secretKeyRef, "no Secret through env: a missing one would block the pod");
  });

  it("has a security context that passes Pod Security restricted", () => {
    const sc = renderSidecar(pusher("mp"), defaults).container.securityContext;
    assert.deepEqual(sc, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
  });

  it("uses default resources, replaced wholesale by spec.resources, and no probe", () => {
    const d = renderSidecar(pusher("mp"), defaults).container;
    assert.deepEqual(d.resources, defaults.resources);
    assert.equal(d.livenessProbe ?? d.readinessProbe ?? d.startupProbe, undefined);
    const custom = renderSidecar(pusher("mp", { resources: { limits: { memory: "256Mi" } } }), defaults).container;
    assert.deepEqual(custom.resources, { limits: { memory: "256Mi" } });
  });

  it("adds an emptyDir buffer when spec.buffer.disk is set", () => {
    const r = renderSidecar(pusher("mp", { buffer: { disk: { sizeLimit: "100Mi" } } }), defaults);
    assert.deepEqual(r.volumes, [{ name: "metrics-pusher-buffer", emptyDir: { sizeLimit: "100Mi" } }]);
    const env = envOf(r.container);
    assert.equal(env.BUFFER_DIR, BUFFER_MOUNT_PATH);
    assert.equal(env.BUFFER_MAX_BYTES, String(Math.floor(100 * 1024 * 1024 * 0.9)));
  });

  const modes = [
    { name: "Auto on a cluster with native sidecars", mode: undefined, supported: true, native: true },
    { name: "Auto on an old cluster", mode: "Auto", supported: false, native: false },
    { name: "Native forced", mode: "Native", supported: false, native: true },
    { name: "Container forced", mode: "Container", supported: true, native: false },
  ] as const;
  for (const c of modes) {
    it(`sidecarMode: ${c.name}`, () => {
      const r = renderSidecar(pusher("mp", c.mode ? { sidecarMode: c.mode } : {}), {
        ...defaults,
        nativeSidecarsSupported: c.supported,
      });
      assert.equal(r.native, c.native);
      assert.equal(r.container.restartPolicy, c.native ? "Always" : undefined);
      assert.equal(resolveNative(c.mode, c.supported), c.native);
    });
  }
});

describe("config hash", () => {
  it("is stable across key order and repeated renders", () => {
    const a = renderSidecar(pusher("mp", { externalLabels: { a: "1", b: "2" } }), defaults);
    const b = renderSidecar(pusher("mp", { externalLabels: { b: "2", a: "1" } }), defaults);
    assert.equal(a.hash, b.hash);
    assert.match(a.hash, /^[0-9a-f]{16}$/);
    assert.equal(configHash({ x: 1, y: [1, { b: 2, a: 1 }] }), configHash({ y: [1, { a: 1, b: 2 }], x: 1 }));
  });

  it("does not depend on the MetricsPusher's name, metadata or status", () => {
    const a = renderSidecar(pusher("one"), defaults);
    const b = renderSidecar(
      { ...pusher("two", {}, { generation: 7, resourceVersion: "99" }), status: { observedGeneration: 3 } },
      defaults,
    );
    assert.equal(a.hash, b.hash);
  });

  const changes = [
    {
      name: "the default image (operator upgrade)",
      d: { ...defaults, image: "ghcr.io/metrics-pusher/pusher:0.2.0" },
      spec: {},
    },
    { name: "spec.image", d: defaults, spec: { image: "ghcr.io/metrics-pusher/pusher:dev" } },
    { name: "the URL", d: defaults, spec: { remoteWrite: { url: "http://other/api/v1/write" } } },
    { name: "the interval", d: defaults, spec: { pushInterval: "10s" } },
    { name: "the placement", d: defaults, spec: { sidecarMode: "Container" as const } },
    {
      name: "a Secret reference",
      d: defaults,
      spec: {
        remoteWrite: {
          url: "http://prometheus.monitoring:9090/api/v1/write",
          bearerTokenSecret: { name: "s", key: "k" },
        },
      },
    },
  ];
  const base = renderSidecar(pusher("mp"), defaults).hash;
  for (const c of changes) {
    it(`changes with ${c.name}`, () => {
      assert.notEqual(renderSidecar(pusher("mp", c.spec), c.d).hash, base);
    });
  }

  it("ignores an equivalent duration spelling", () => {
    assert.equal(
      renderSidecar(pusher("mp", { pushInterval: "60s" }), defaults).hash,
      renderSidecar(pusher("mp", { pushInterval: "1m" }), defaults).hash,
    );
  });
});

describe("isImageAllowed", () => {
  const cases = [
    { image: "ghcr.io/metrics-pusher/pusher:0.1.0", list: [], ok: true, why: "the default image" },
    {
      image: "ghcr.io/metrics-pusher/pusher:dev",
      list: ["ghcr.io/metrics-pusher/pusher"],
      ok: true,
      why: "a tag of an allowed repository",
    },
    {
      image: `ghcr.io/metrics-pusher/pusher@sha256:${"a".repeat(64)}`,
      list: ["ghcr.io/metrics-pusher/pusher"],
      ok: true,
      why: "a digest",
    },
    {
      image: "ghcr.io/metrics-pusher/pusher-evil:1",
      list: ["ghcr.io/metrics-pusher/pusher"],
      ok: false,
      why: "a repository sharing the prefix",
    },
    { image: "registry.local/mp/pusher:1", list: ["registry.local/*"], ok: true, why: "a prefix pattern" },
    { image: "docker.io/evil:1", list: ["registry.local/*"], ok: false, why: "outside the prefix" },
    { image: "anything:1", list: ["*"], ok: true, why: "*" },
  ];
  for (const c of cases) {
    it(`${c.ok ? "allows" : "refuses"} ${c.why}`, () => {
      assert.equal(isImageAllowed(c.image, c.list, defaults.image), c.ok);
    });
  }
});

describe("quantities, integer or string (issue 11, item 4)", () => {
  it("an integer sizeLimit renders like its string form: emptyDir limit and 90% for the pusher", () => {
    const int = renderSidecar(pusher("mp", { buffer: { disk: { sizeLimit: 268435456 } } }), defaults);
    const str = renderSidecar(pusher("mp", { buffer: { disk: { sizeLimit: "256Mi" } } }), defaults);
    assert.deepEqual(int.volumes, [{ name: "metrics-pusher-buffer", emptyDir: { sizeLimit: "268435456" } }]);
    assert.equal(envOf(int.container).BUFFER_MAX_BYTES, String(Math.floor(268435456 * 0.9)));
    assert.equal(envOf(int.container).BUFFER_MAX_BYTES, envOf(str.container).BUFFER_MAX_BYTES);
    assert.equal(checkSidecar(int.container, "builds"), undefined);
  });
  it("integer resources become strings in the container", () => {
    const r = renderSidecar(
      pusher("mp", {
        resources: {
          requests: { cpu: 1 as unknown as string, memory: "64Mi" },
          limits: { memory: 201326592 as unknown as string },
        },
      }),
      defaults,
    );
    assert.deepEqual(r.container.resources, {
      requests: { cpu: "1", memory: "64Mi" },
      limits: { memory: "201326592" },
    });
  });
  it("an unreadable sizeLimit is reported by the pusher's parse, not replaced by its 256MiB default", () => {
    const r = renderSidecar(pusher("mp", { buffer: { disk: { sizeLimit: "lots" } } }), defaults);
    assert.match(checkSidecar(r.container, "builds") ?? "", /BUFFER_MAX_BYTES="lots"/);
  });
});

describe("checkSidecar: the pusher's own parse on the rendered env", () => {
  it("passes a valid MetricsPusher", () => {
    const r = renderSidecar(
      pusher("mp", {
        remoteWrite: { url: "https://rw/api/v1/write", bearerTokenSecret: { name: "s", key: "t" } },
        scrape: { targets: [{ port: 8080 }] },
      }),
      defaults,
    );
    assert.equal(checkSidecar(r.container, "builds"), undefined);
  });
  it("returns the pusher's message for a spec the sidecar would exit 2 on", () => {
    const r = renderSidecar(pusher("mp", { buffer: { maxSamples: 1000 } }), defaults);
    assert.equal(
      checkSidecar(r.container, "builds"),
      'BUFFER_MAX_SAMPLES="1000": must be at least MAX_SAMPLES_PER_SEND (2000)',
    );
  });
  it("a comma in a path stays in one target, which parse refuses: nothing is scraped off the pod", () => {
    const r = renderSidecar(
      pusher("mp", { scrape: { targets: [{ port: 8080, path: "/metrics,http://10.96.0.1:9100/metrics" }] } }),
      defaults,
    );
    assert.deepEqual(JSON.parse(envOf(r.container).SCRAPE_TARGETS!), [
      "http://127.0.0.1:8080/metrics,http://10.96.0.1:9100/metrics",
    ]);
    assert.match(checkSidecar(r.container, "builds") ?? "", /SCRAPE_TARGETS=.*without commas/);
  });
  it("refuses a rendered target off the loopback (defence in depth)", () => {
    const c: V1Container = {
      name: "x",
      env: [
        { name: "PROMETHEUS_REMOTE_WRITE_URL", value: "http://rw/api/v1/write" },
        { name: "SCRAPE_TARGETS", value: '["http://10.96.0.1:9100/metrics"]' },
      ],
    };
    assert.match(checkSidecar(c, "builds") ?? "", /not on 127\.0\.0\.1/);
  });
});
