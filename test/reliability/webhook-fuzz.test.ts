// Property tests of the admission webhook's HTTP handler (operator/src/webhook/server.ts) over generated and mutated
// AdmissionReviews and Pods, sent over HTTP to the real handler: it never throws or crashes, answers allowed:true to
// every well-formed review, 400 to every malformed body, its JSON patches apply cleanly (fast-json-patch, validated)
// to the pod it was given, a second pass changes nothing, it never injects a MetricsPusher of another namespace, and
// it emits no Event for a dry-run request.
import { strict as assert } from "node:assert";
import { Agent, createServer, request, type Server } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type Server as HttpsServer } from "node:https";
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import fastJsonPatch from "fast-json-patch";
import type { Operation } from "fast-json-patch";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import pino from "pino";
import { Registry } from "prom-client";
import {
  API_VERSION,
  Annotations,
  KIND,
  SIDECAR_CONTAINER_NAME,
  parseInjected,
  WEBHOOK_PATH,
} from "../../operator/src/api/index.ts";
import type { MetricsPusher } from "../../operator/src/api/index.ts";
import { createAdmissionObserver } from "../../operator/src/admission.ts";
import type { EventRecorder } from "../../operator/src/events.ts";
import { createOperatorMetrics } from "../../operator/src/metrics.ts";
import {
  createAdmissionHandler,
  createWebhookServer,
  MAX_BODY_BYTES,
  MAX_CONNECTIONS,
  MAX_IN_FLIGHT,
} from "../../operator/src/webhook/server.ts";
import { issueWebhookServingCert } from "../controlplane/harness.ts";
import type { MutateSettings } from "../../operator/src/inject/mutate.ts";
import type { SidecarDefaults } from "../../operator/src/inject/sidecar.ts";
import { soak } from "./lib/mode.ts";

// ≥ 10,000 cases in `make test`, ten times as many in soak.
const RUNS = {
  wellFormed: soak(5000, 50_000),
  overHttps: soak(500, 5000),
  mutated: soak(4000, 40_000),
  malformed: soak(1500, 15_000),
};
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

const defaults: SidecarDefaults = {
  image: "ghcr.io/metrics-pusher/pusher:0.1.0",
  runAsUser: 65532,
  resources: { requests: { cpu: "10m", memory: "48Mi" }, limits: { memory: "128Mi" } },
  nativeSidecarsSupported: true,
};
const settings: MutateSettings = {
  systemNamespaces: ["kube-system", "kube-node-lease", "kube-public", "metrics-pusher-system"],
  watchNamespaces: [],
  imageAllowList: ["ghcr.io/metrics-pusher/pusher"],
};

// ---- state the handler reads, set per case ----
let currentPushers: MetricsPusher[] = [];
let currentNsLabels: Record<string, string> | undefined;
const emitted: { reason: string; dryRun: boolean }[] = [];
let currentDryRun = false;
const events: EventRecorder = {
  emit: (_t, _type, reason) => void emitted.push({ reason, dryRun: currentDryRun }),
  flush: async () => {},
  stop: async () => {},
} satisfies EventRecorder;

// ---- generators ----
const NAMESPACES = ["builds", "other", "team-a", "kube-system", "metrics-pusher-system"] as const;
const labelKey = fc.constantFrom("app", "tier", "team", "app.kubernetes.io/name", "x");
const labelValue = fc.oneof(
  fc.constantFrom("builder", "web", "a", "metrics-pusher-operator", ""),
  fc.string({ maxLength: 8 }),
);
const labels = fc.dictionary(labelKey, labelValue, { maxKeys: 4, noNullPrototype: true });
// Biased towards what matches, so that injection (the interesting path) is common.
const podLabels = fc.oneof(
  { arbitrary: fc.constant({ app: "builder" }), weight: 3 },
  { arbitrary: labels.map((l) => ({ ...l, app: "builder" })), weight: 2 },
  { arbitrary: labels, weight: 1 },
);
const namespace = fc.oneof(
  { arbitrary: fc.constant("builds"), weight: 4 },
  { arbitrary: fc.constantFrom(...NAMESPACES), weight: 1 },
);
const dnsName = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const secretRef = fc.record({ name: dnsName, key: fc.constantFrom("token", "password", "ca.crt", "user") });

const selector = fc.oneof(
  { arbitrary: fc.constant({ matchLabels: { app: "builder" } }), weight: 4 },
  { arbitrary: fc.constant({}), weight: 1 },
  { arbitrary: fc.record({ matchLabels: labels }), weight: 1 },
  fc.record({
    matchExpressions: fc.array(
      fc.record({
        key: labelKey,
        operator: fc.constantFrom("In", "NotIn", "Exists", "DoesNotExist", "Bogus"),
        values: fc.array(labelValue, { maxLength: 3 }),
      }),
      { maxLength: 3 },
    ),
  }),
  // weight 1 for the two above
);

const pusherArb: fc.Arbitrary<MetricsPusher> = fc
  .record(
    {
      name: dnsName,
      namespace,
      created: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
      deleting: fc
        .boolean()
        .chain((b) => (b ? fc.boolean() : fc.constant(false)))
        .chain((b) => (b ? fc.boolean() : fc.constant(false))),
      selector,
      url: fc.constantFrom("http://prometheus:9090/api/v1/write", "https://vm.example:8428/api/v1/write"),
      timeout: fc.option(fc.constantFrom("10s", "1m30s", "500ms"), { nil: undefined }),
      headers: fc.option(
        fc.dictionary(fc.constantFrom("X-Scope-OrgID", "X-Team"), fc.string({ maxLength: 6 }), {
          maxKeys: 2,
          noNullPrototype: true,
        }),
        { nil: undefined },
      ),
      bearer: fc.option(secretRef, { nil: undefined }),
      basic: fc.option(fc.record({ username: fc.constant("u"), passwordSecret: secretRef }), { nil: undefined }),
      ca: fc.option(secretRef, { nil: undefined }),
      pushInterval: fc.option(fc.constantFrom("1s", "30s", "2m"), { nil: undefined }),
      externalLabels: fc.option(
        fc.dictionary(fc.constantFrom("cluster", "region"), fc.string({ minLength: 1, maxLength: 6 }), {
          maxKeys: 2,
          noNullPrototype: true,
        }),
        { nil: undefined },
      ),
      ports: fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 2 }),
      disk: fc.option(fc.constantFrom("64Mi", "1Gi", "500M"), { nil: undefined }),
      image: fc.option(fc.constantFrom("ghcr.io/metrics-pusher/pusher:9.9.9", "evil.example/pusher:1"), {
        nil: undefined,
      }),
      sidecarMode: fc.option(fc.constantFrom("Auto", "Native", "Container"), { nil: undefined }),
      discovery: fc.option(fc.constantFrom("None", "Annotations", "Ports", "Auto"), { nil: undefined }),
    },
    { requiredKeys: ["name", "namespace", "created", "deleting", "selector", "url", "ports"] },
  )
  .map((g) => ({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: g.name,
      namespace: g.namespace,
      uid: `uid-${g.namespace}-${g.name}`,
      generation: 1,
      creationTimestamp: new Date(g.created),
      ...(g.deleting ? { deletionTimestamp: new Date(g.created + 1000) } : {}),
    },
    spec: {
      selector: g.selector,
      remoteWrite: {
        url: g.url,
        ...(g.timeout ? { timeout: g.timeout } : {}),
        ...(g.headers ? { headers: g.headers } : {}),
        ...(g.bearer ? { bearerTokenSecret: g.bearer } : g.basic ? { basicAuth: g.basic } : {}),
        ...(g.ca ? { tlsCASecret: g.ca } : {}),
      },
      ...(g.pushInterval ? { pushInterval: g.pushInterval } : {}),
      ...(g.externalLabels ? { externalLabels: g.externalLabels } : {}),
      ...(g.ports.length > 0 || (g.discovery !== undefined && g.discovery !== "None")
        ? {
            scrape: {
              ...(g.ports.length > 0 ? { targets: g.ports.map((port) => ({ port })) } : {}),
              ...(g.discovery !== undefined ? { discovery: g.discovery as "Auto" } : {}),
            },
          }
        : {}),
      ...(g.disk ? { buffer: { disk: { sizeLimit: g.disk } } } : {}),
      ...(g.image ? { image: g.image } : {}),
      ...(g.sidecarMode ? { sidecarMode: g.sidecarMode as "Auto" } : {}),
    },
  }));

const containerArb = (name: string): fc.Arbitrary<V1Container> =>
  fc
    .record(
      {
        image: fc.constantFrom("busybox", "golang:1.26", "ghcr.io/x/y@sha256:" + "a".repeat(64)),
        // A port name once per container (Kubernetes refuses a repeat): the first port's, one that discovery takes.
        ports: fc
          .array(fc.record({ containerPort: fc.integer({ min: 1, max: 65535 }) }), { maxLength: 2 })
          .chain((ports) =>
            fc
              .option(fc.constantFrom("metrics", "http-metrics", "http"), { nil: undefined })
              .map((name) => ports.map((p, i) => (i === 0 && name ? { ...p, name } : p))),
          ),
        env: fc.array(fc.record({ name: fc.constantFrom("A", "B", "PATH"), value: fc.string({ maxLength: 5 }) }), {
          maxLength: 2,
        }),
        restartPolicy: fc.constantFrom("Always"),
      },
      { requiredKeys: ["image"] },
    )
    .map((c) => ({ name, ...c }));

const podArb: fc.Arbitrary<V1Pod> = fc
  .record(
    {
      named: fc.boolean(),
      namespaceInMeta: fc.option(fc.constantFrom(...NAMESPACES), { nil: undefined }),
      labels: podLabels,
      annotations: fc.option(
        fc.dictionary(
          fc.constantFrom(Annotations.inject, Annotations.injected, "other/annotation"),
          fc.oneof(
            fc.constantFrom("false", "FALSE", " false ", "true", "mp", "builder@0123456789abcdef", "@", ""),
            dnsName,
          ),
          { maxKeys: 3, noNullPrototype: true },
        ),
        { nil: undefined },
      ),
      // What a careless or hostile pod declares for spec.scrape.discovery.
      prometheus: fc.option(
        fc.record(
          {
            "prometheus.io/scrape": fc.constantFrom("true", "true", "false", "True", ""),
            "prometheus.io/port": fc.constantFrom("8080", "8080,9100", "0", "65536", "-1", "x", "9".repeat(300), ""),
            "prometheus.io/path": fc.constantFrom("/m", "m", "/a/../b", "//h/x", "http://10.0.0.1:1/m", "/a,b", "/m#f"),
            "prometheus.io/scheme": fc.constantFrom("http", "https", "ftp", ""),
          },
          { requiredKeys: ["prometheus.io/scrape"] },
        ),
        { nil: undefined },
      ),
      containerNames: fc.uniqueArray(
        fc.oneof(
          { arbitrary: fc.constantFrom("main", "helper", "build"), weight: 12 },
          { arbitrary: fc.constant(SIDECAR_CONTAINER_NAME), weight: 1 },
        ),
        { minLength: 1, maxLength: 3 },
      ),
      initNames: fc.uniqueArray(
        fc.oneof(
          { arbitrary: fc.constantFrom("init", "setup"), weight: 12 },
          { arbitrary: fc.constant(SIDECAR_CONTAINER_NAME), weight: 1 },
        ),
        { maxLength: 2 },
      ),
      volumes: fc.uniqueArray(fc.constantFrom("data", "cache", "metrics-pusher-secret-0", "metrics-pusher-buffer"), {
        maxLength: 2,
      }),
      restartPolicy: fc.option(fc.constantFrom("Always", "OnFailure", "Never"), { nil: undefined }),
      hostNetwork: fc.option(fc.boolean(), { nil: undefined }),
    },
    { requiredKeys: ["named", "labels", "containerNames", "initNames", "volumes"] },
  )
  .chain((g) =>
    fc
      .tuple(fc.tuple(...g.containerNames.map(containerArb)), fc.tuple(...g.initNames.map(containerArb)))
      .map(([containers, inits]) => {
        const pod: V1Pod = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            ...(g.named ? { name: "builder-0" } : { generateName: "builder-7d9f-" }),
            ...(g.namespaceInMeta ? { namespace: g.namespaceInMeta } : {}),
            labels: g.labels,
            ...(g.annotations || g.prometheus ? { annotations: { ...g.prometheus, ...g.annotations } } : {}),
          },
          spec: {
            containers,
            ...(inits.length > 0 ? { initContainers: inits } : {}),
            ...(g.volumes.length > 0 ? { volumes: g.volumes.map((name) => ({ name, emptyDir: {} })) } : {}),
            ...(g.restartPolicy ? { restartPolicy: g.restartPolicy } : {}),
            ...(g.hostNetwork !== undefined ? { hostNetwork: g.hostNetwork } : {}),
          },
        };
        return pod;
      }),
  );

const reviewArb = fc.record({
  uid: fc.uuid(),
  namespace,
  operation: fc.oneof(
    { arbitrary: fc.constant("CREATE" as const), weight: 10 },
    { arbitrary: fc.constantFrom("UPDATE" as const, "DELETE" as const, "CONNECT" as const), weight: 1 },
  ),
  kind: fc.oneof(
    { arbitrary: fc.constant({ group: "", version: "v1", kind: "Pod" }), weight: 10 },
    { arbitrary: fc.constant({ group: "apps", version: "v1", kind: "Deployment" }), weight: 1 },
  ),
  dryRun: fc.boolean(),
  pod: podArb,
  pushers: fc.array(pusherArb, { maxLength: 4 }),
  nsLabels: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 8 },
    {
      arbitrary: fc.constantFrom<Record<string, string>>(
        { "metricspusher.dev/injection": "disabled" },
        { "pod-security.kubernetes.io/enforce": "restricted" },
      ),
      weight: 2,
    },
  ),
});
type Review = typeof reviewArb extends fc.Arbitrary<infer T> ? T : never;

/** Paths a mutation may overwrite (with any JSON value) or delete: the shapes a buggy client or a newer API sends. */
const MUTABLE_PATHS = [
  ["metadata"],
  ["metadata", "labels"],
  ["metadata", "annotations"],
  ["metadata", "annotations", "prometheus.io/port"],
  ["metadata", "name"],
  ["metadata", "generateName"],
  ["metadata", "namespace"],
  ["metadata", "ownerReferences"],
  ["spec"],
  ["spec", "containers"],
  ["spec", "containers", 0],
  ["spec", "containers", 0, "name"],
  ["spec", "containers", 0, "env"],
  ["spec", "initContainers"],
  ["spec", "volumes"],
  ["spec", "restartPolicy"],
  ["spec", "securityContext"],
  ["spec", "hostNetwork"],
] as const;
const mutationArb = fc.record({
  path: fc.constantFrom(...MUTABLE_PATHS),
  value: fc.oneof(
    fc.constant(undefined),
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(null, "", 0, [], {}, "metrics-pusher"),
  ),
});

function applyMutation(obj: unknown, path: readonly (string | number)[], value: unknown): void {
  let cur = obj as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== "object" || next === null) return;
    cur = next as Record<string | number, unknown>;
  }
  const last = path.at(-1)!;
  if (value === undefined) delete cur[last];
  else cur[last] = structuredClone(value);
}

const malformedArb = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1")),
  fc
    .jsonValue({ maxDepth: 3 })
    .map((v) => JSON.stringify(v))
    .filter((s) => !s.includes("admission.k8s.io")),
  fc
    .record({
      apiVersion: fc.constantFrom("admission.k8s.io/v1", "admission.k8s.io/v1beta1", "v1"),
      kind: fc.constantFrom("AdmissionReview", "Pod"),
    })
    .map((r) => JSON.stringify({ ...r, request: { uid: "" } })),
  fc
    .constantFrom(null, 1, "x", [], { uid: 5 })
    .map((request) => JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request })),
  reviewArb.map((r) => JSON.stringify(toReview(r)).slice(0, 40)), // truncated
);

/** An AdmissionReview as the apiserver posts it; request stays open, since one test swaps its object for junk. */
interface ReviewBody {
  apiVersion: string;
  kind: string;
  request: Record<string, unknown>;
}

function toReview(r: Review): ReviewBody {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: r.uid,
      kind: r.kind,
      resource: { group: "", version: "v1", resource: "pods" },
      namespace: r.namespace,
      operation: r.operation,
      userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
      object: r.pod,
      dryRun: r.dryRun,
    },
  };
}

/** Well-formed pods whose patch would add a volume name the pod already has (the apiserver then refuses the pod). */
const volumeClashes: { volumes: string[]; pod: V1Pod }[] = [];
let volumeClashCount = 0;

// ---- the server ----
let server: Server;
let port = 0;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
let registry: Registry;
let metrics: ReturnType<typeof createOperatorMetrics>;
const uncaught: unknown[] = [];
const onUncaught = (e: unknown): void => void uncaught.push(e);

/**
 * The fields of an AdmissionReview answer the checks read. The body itself comes back as `unknown` (parsed JSON, or
 * the text when it is none); a check that expects an answer of this shape says so, and asserts on its fields.
 */
interface ReviewAnswer {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean; patchType?: string; patch?: string };
}

/** Set while the TLS server (createWebhookServer) is under test: post() then goes over HTTPS to it. */
let tlsTarget: { port: number; ca: string; agent: HttpsAgent } | undefined;

function post(body: string | Buffer): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const options = {
      host: "127.0.0.1",
      path: WEBHOOK_PATH,
      method: "POST",
      headers: { "content-type": "application/json" },
    };
    const req = (tlsTarget ? httpsRequest : request)(
      tlsTarget
        ? { ...options, port: tlsTarget.port, ca: tlsTarget.ca, agent: tlsTarget.agent }
        : { ...options, port, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error("no answer within 5 s")));
    req.on("error", reject);
    req.end(body);
  });
}

interface Checked {
  injected: boolean;
}

/** The properties every well-formed review must satisfy; returns whether the pod got a patch. */
async function checkWellFormed(generated: Review, strict: boolean): Promise<Checked> {
  // What the handler sees is JSON: compare against the JSON form (dates become strings, prototypes plain).
  const r = { ...generated, pod: JSON.parse(JSON.stringify(generated.pod)) as V1Pod };
  currentPushers = r.pushers;
  currentNsLabels = r.nsLabels;
  currentDryRun = r.dryRun;
  const eventsBefore = emitted.length;
  const errorsBefore =
    (await registry.getSingleMetric("metrics_pusher_operator_webhook_errors_total")!.get()).values[0]?.value ?? 0;
  const { status, json: body } = await post(JSON.stringify(toReview(r)));
  assert.equal(status, 200, `well-formed review answered ${status}: ${JSON.stringify(body)}`);
  const json = body as ReviewAnswer;
  assert.equal(json.apiVersion, "admission.k8s.io/v1");
  assert.equal(json.kind, "AdmissionReview");
  assert.equal(json.response.uid, r.uid, "response uid differs from request uid");
  assert.equal(json.response.allowed, true, "a well-formed review was not allowed");
  if (r.dryRun) assert.equal(emitted.length, eventsBefore, "an Event was emitted for a dry-run request");
  if (strict) {
    // Generated (not mutated) pods are valid: an internal error there is a bug, not a fallback.
    const errorsAfter =
      (await registry.getSingleMetric("metrics_pusher_operator_webhook_errors_total")!.get()).values[0]?.value ?? 0;
    assert.equal(errorsAfter, errorsBefore, "the handler hit an internal error on a valid pod (see the operator log)");
  }
  if (json.response.patch === undefined) return { injected: false };

  assert.equal(json.response.patchType, "JSONPatch");
  assert.equal(r.operation, "CREATE", "patched a request that is not a CREATE");
  const ops = JSON.parse(Buffer.from(json.response.patch, "base64").toString("utf8")) as Operation[];
  const original = structuredClone(r.pod);
  // validate=true: every op must be well-formed and every path must exist where the op needs it.
  const patched = fastJsonPatch.applyPatch(structuredClone(r.pod), ops, true, false).newDocument;
  assert.deepEqual(r.pod, original, "applying the patch changed the input");

  // A mutated pod (say, metadata an array) is nothing the apiserver would send after decoding: for those the promise
  // is only "admitted, and the patch applies"; the shape checks hold for every well-formed pod.
  if (strict) checkShape(r, patched);
  if (strict || parseInjected(patched.metadata?.annotations?.[Annotations.injected])) checkNamespace(r, patched);

  // Reinvocation (reinvocationPolicy IfNeeded): the patched pod goes through again and nothing changes.
  const again = await post(JSON.stringify(toReview({ ...r, uid: `${r.uid}-again`, pod: patched })));
  assert.equal(again.status, 200);
  const againJson = again.json as ReviewAnswer;
  assert.equal(againJson.response.allowed, true);
  if (strict && againJson.response.patch !== undefined) {
    const ops2 = JSON.parse(Buffer.from(againJson.response.patch, "base64").toString("utf8")) as Operation[];
    assert.deepEqual(ops2, [], `second pass patched again: ${JSON.stringify(ops2).slice(0, 300)}`);
  }
  return { injected: true };
}

/** Exactly one sidecar, the user's containers untouched and in place, no volume name taken twice. */
function checkShape(r: Review, patched: V1Pod): void {
  const all = [...(patched.spec?.containers ?? []), ...(patched.spec?.initContainers ?? [])];
  assert.equal(
    all.filter((c) => c.name === SIDECAR_CONTAINER_NAME).length,
    1,
    "not exactly one metrics-pusher container",
  );
  // Listed or discovered, every target stays on the pod's own loopback.
  const sidecar = all.find((c) => c.name === SIDECAR_CONTAINER_NAME);
  const targets = sidecar?.env?.find((e) => e.name === "SCRAPE_TARGETS")?.value;
  for (const t of targets === undefined ? [] : (JSON.parse(targets) as string[])) {
    assert.equal(new URL(t).hostname, "127.0.0.1", `a scrape target off the pod: ${t}`);
  }
  assert.deepEqual(
    patched.spec?.containers?.filter((c) => c.name !== SIDECAR_CONTAINER_NAME),
    r.pod.spec?.containers,
  );
  assert.deepEqual(
    patched.spec?.initContainers?.filter((c) => c.name !== SIDECAR_CONTAINER_NAME) ?? [],
    r.pod.spec?.initContainers ?? [],
  );
  const original = arr(r.pod.spec?.volumes);
  const existing = new Set(original.map((v) => v?.name));
  const added = arr(patched.spec?.volumes)
    .slice(original.length)
    .map((v) => v.name);
  // Recorded rather than asserted here, so that one open bug does not stop the other properties from being checked
  // over every case; the test "never adds a volume the pod already has" below fails on it.
  const clash = added.filter((n) => existing.has(n));
  if (clash.length > 0 && volumeClashes.length < 5) volumeClashes.push({ volumes: clash, pod: r.pod });
  if (clash.length > 0) volumeClashCount++;
  assert.equal(new Set(added).size, added.length, `the patch adds duplicate volumes: ${added.join(",")}`);
}

function arr<T>(x: T[] | undefined): T[] {
  return Array.isArray(x) ? x : [];
}

/** Never a MetricsPusher of another namespace; every Secret mounted is one the chosen MetricsPusher references. */
function checkNamespace(r: Review, patched: V1Pod): void {
  const marker = parseInjected(patched.metadata?.annotations?.[Annotations.injected]);
  assert.ok(marker, "patched pod lacks the injected annotation");
  const chosen = r.pushers.find((p) => p.metadata.name === marker.name && p.metadata.namespace === r.namespace);
  assert.ok(chosen, `injected MetricsPusher ${marker.name}, which is not in the request's namespace ${r.namespace}`);
  // Secret volumes can only name Secrets of the pod's own namespace (a Pod has no field for another): check that
  // every Secret the sidecar mounts is one the chosen (same-namespace) MetricsPusher references.
  const refs = new Set(
    [
      chosen.spec.remoteWrite.bearerTokenSecret,
      chosen.spec.remoteWrite.basicAuth?.passwordSecret,
      chosen.spec.remoteWrite.tlsCASecret,
    ]
      .filter((x) => x !== undefined)
      .map((x) => x.name),
  );
  for (const v of arr(patched.spec?.volumes).slice(arr(r.pod.spec?.volumes).length)) {
    if (v?.secret) {
      assert.ok(
        refs.has(v.secret.secretName ?? ""),
        `sidecar mounts Secret ${v.secret.secretName}, not referenced by ${chosen.metadata.name}`,
      );
      assert.equal(v.secret.optional, true, "a Secret volume that is not optional could block the pod");
    }
  }
}

describe("webhook handler under generated and mutated admission requests", () => {
  before(async () => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    registry = new Registry();
    metrics = createOperatorMetrics(registry);
    const handler = createAdmissionHandler({
      observer: createAdmissionObserver({
        log: pino({ level: "silent" }),
        metrics,
        events,
        pushers: () => currentPushers,
      }),
      pushers: () => currentPushers,
      namespaceLabels: () => currentNsLabels,
      defaults: () => defaults,
      settings,
    });
    server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const a = server.address();
    port = typeof a === "object" && a ? a.port : 0;
  });
  after(async () => {
    agent.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
  });

  it(`answers allowed:true with cleanly applying, idempotent patches (${RUNS.wellFormed} generated reviews, seed ${SEED})`, async (t) => {
    let injected = 0;
    await fc.assert(
      fc.asyncProperty(reviewArb, async (r) => {
        if ((await checkWellFormed(r, true)).injected) injected++;
      }),
      { numRuns: RUNS.wellFormed, seed: SEED },
    );
    // The generators must reach the interesting path often, or the property proves little.
    const skips = (await registry.getSingleMetric("metrics_pusher_operator_webhook_skips_total")!.get()).values.map(
      (v) => `${v.labels.reason}=${v.value}`,
    );
    t.diagnostic(`injected ${injected} of ${RUNS.wellFormed}; skips so far: ${skips.join(" ")}`);
    assert.ok(
      injected > RUNS.wellFormed / 20,
      `only ${injected} of ${RUNS.wellFormed} generated reviews were injected (skips: ${skips.join(" ")})`,
    );
    assert.deepEqual(uncaught, []);
  });

  it("never adds a volume the pod already has (a duplicate name makes the apiserver refuse the pod)", () => {
    const first = volumeClashes[0];
    assert.equal(
      volumeClashCount,
      0,
      `${volumeClashCount} generated pods got a second volume named ${first?.volumes.join(", ")}; e.g. ${JSON.stringify(first?.pod)}`,
    );
  });

  it(`answers allowed:true to reviews whose Pod was mutated into odd shapes (${RUNS.mutated} cases, seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(reviewArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), async (r, mutations) => {
        const pod = structuredClone(r.pod) as unknown;
        for (const m of mutations) applyMutation(pod, m.path, m.value);
        await checkWellFormed({ ...r, pod: pod as V1Pod }, false);
      }),
      { numRuns: RUNS.mutated, seed: SEED + 1 },
    );
    // The object may even be no object at all.
    for (const object of [null, 7, "pod", [], [{}], { spec: "x" }, { metadata: [] }, { spec: { containers: null } }]) {
      const r: Review = {
        ...fc.sample(reviewArb, { numRuns: 1, seed: 1 })[0]!,
        operation: "CREATE",
        kind: { group: "", version: "v1", kind: "Pod" },
      };
      const { status, json } = await post(
        JSON.stringify({ ...toReview(r), request: { ...toReview(r).request, object } }),
      );
      assert.equal(status, 200, `object ${JSON.stringify(object)} answered ${status}`);
      assert.equal((json as ReviewAnswer).response.allowed, true);
    }
    assert.deepEqual(uncaught, []);
  });

  it(`answers 400 to malformed bodies and keeps serving (${RUNS.malformed} cases, seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(malformedArb, async (body) => {
        const { status, json } = await post(body);
        assert.equal(
          status,
          400,
          `malformed body ${JSON.stringify(body).slice(0, 120)} answered ${status}: ${JSON.stringify(json).slice(0, 200)}`,
        );
      }),
      { numRuns: RUNS.malformed, seed: SEED + 2 },
    );
    // Still alive and well after all of that.
    const ok = await checkWellFormed({ ...fc.sample(reviewArb, { numRuns: 1, seed: 3 })[0]! }, true);
    assert.equal(typeof ok.injected, "boolean");
    const malformed = (
      await registry.getSingleMetric("metrics_pusher_operator_webhook_requests_total")!.get()
    ).values.find((v) => v.labels.result === "malformed");
    assert.ok((malformed?.value ?? 0) >= RUNS.malformed, "malformed requests not counted");
    assert.deepEqual(uncaught, []);
  });
});

// The same handler behind the real TLS server the operator runs (createWebhookServer), driven with hostile inputs:
// generated reviews over HTTPS, oversize bodies, slow partial bodies, garbage instead of TLS, more connections than
// it accepts. Bounded: a few hundred connections, each case within seconds. After each, a well-formed review still
// gets its answer.
describe("the real TLS server (createWebhookServer) under hostile connections", () => {
  let tlsServer: HttpsServer;
  let tlsPort = 0;
  let ca = "";

  before(async () => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    registry = new Registry();
    metrics = createOperatorMetrics(registry);
    const cert = await issueWebhookServingCert();
    ca = cert.caCertPem;
    tlsServer = createWebhookServer(
      createAdmissionHandler({
        observer: createAdmissionObserver({
          log: pino({ level: "silent" }),
          metrics,
          events,
          pushers: () => currentPushers,
        }),
        pushers: () => currentPushers,
        namespaceLabels: () => currentNsLabels,
        defaults: () => defaults,
        settings,
      }),
      { key: cert.keyPem, cert: cert.certPem },
    );
    await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
    const a = tlsServer.address();
    tlsPort = typeof a === "object" && a ? a.port : 0;
    tlsTarget = { port: tlsPort, ca, agent: new HttpsAgent({ keepAlive: true, maxSockets: 1 }) };
  });
  after(async () => {
    tlsTarget?.agent.destroy();
    tlsTarget = undefined;
    tlsServer.closeAllConnections();
    await new Promise<void>((r) => tlsServer.close(() => r()));
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
  });

  /** A fresh TLS connection that writes `head` and then, optionally, keeps quiet; resolves with what came back. */
  const raw = (head: string | Buffer, opts: { waitMs: number }) =>
    new Promise<{ answer: string; closed: boolean }>((resolve) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: tlsPort, ca, servername: "localhost" }, () =>
        socket.write(head),
      );
      let answer = "";
      let closed = false;
      socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
      socket.on("error", () => {});
      socket.on("close", () => {
        closed = true;
        clearTimeout(timer);
        resolve({ answer, closed });
      });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ answer, closed });
      }, opts.waitMs);
    });

  const stillServes = async (what: string) => {
    const ok = await checkWellFormed({ ...fc.sample(reviewArb, { numRuns: 1, seed: 5 })[0]! }, true);
    assert.equal(typeof ok.injected, "boolean", what);
  };

  it(`answers generated reviews over HTTPS as over HTTP (${RUNS.overHttps} cases, seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(reviewArb, async (r) => {
        await checkWellFormed(r, true);
      }),
      { numRuns: RUNS.overHttps, seed: SEED + 3 },
    );
    assert.deepEqual(uncaught, []);
  });

  it("refuses oversize bodies: a declared size unread, a chunked one cut off while streaming", async () => {
    const declared = await raw(
      `POST ${WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`,
      { waitMs: 5000 },
    );
    assert.match(declared.answer, /^HTTP\/1\.1 413 /);
    assert.ok(declared.closed, "the connection is closed after the 413");
    // Chunked, up to twice the limit, written as fast as the socket takes it, never ended.
    const chunked = await new Promise<{ answer: string; sent: number }>((resolve) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: tlsPort, ca, servername: "localhost" });
      let answer = "";
      let sent = 0;
      const chunk = Buffer.from(`10000\r\n${" ".repeat(0x10000)}\r\n`);
      const pump = () => {
        while (sent < 2 * MAX_BODY_BYTES && answer === "" && !socket.destroyed) {
          sent += 0x10000;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
      };
      socket.on("secureConnect", () => {
        socket.write(`POST ${WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
        pump();
      });
      socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
      socket.on("error", () => {});
      socket.on("close", () => resolve({ answer, sent }));
      setTimeout(() => socket.destroy(), 15_000).unref();
    });
    assert.match(chunked.answer, /^HTTP\/1\.1 413 /);
    // The terminating 0-length chunk is never sent: a 413 can only come from a server that cut the body off while it
    // streamed, not from one that read it to its end.
    assert.ok(chunked.sent > MAX_BODY_BYTES, `only ${chunked.sent} bytes written`);
    await stillServes("after oversize bodies");
    assert.deepEqual(uncaught, []);
  });

  it(`cuts off slow partial bodies (slowloris), answers 503 beyond ${MAX_IN_FLIGHT} in flight, and serves again`, async () => {
    // More stalled requests than places: each sends its headers and one byte of a 1,000-byte body, then nothing.
    const stalled = Array.from({ length: MAX_IN_FLIGHT + 8 }, () =>
      raw(`POST ${WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{`, { waitMs: 8000 }),
    );
    const started = performance.now();
    const answers = await Promise.all(stalled);
    const seconds = (performance.now() - started) / 1000;
    const statuses = answers.map((a) => /^HTTP\/1\.1 (\d+)/.exec(a.answer)?.[1] ?? "none");
    const count = (s: string) => statuses.filter((x) => x === s).length;
    // Every stalled request got an answer and its connection closed, within the body timeout and some slack.
    assert.ok(
      answers.every((a) => a.closed),
      `connections left open: ${statuses.join(",")}`,
    );
    assert.equal(count("408") + count("503"), stalled.length, statuses.join(","));
    assert.ok(count("503") >= 8, `beyond the bound: 503 at once (${statuses.join(",")})`);
    assert.ok(seconds < 7.5, `took ${seconds} s`);
    await stillServes("after slowloris");
    assert.deepEqual(uncaught, []);
  });

  it("survives garbage instead of TLS, plaintext HTTP and a truncated handshake", async () => {
    const garbage = [
      randomBytes(4096),
      Buffer.from(`POST ${WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`),
      // The start of a TLS ClientHello record, then nothing.
      Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
      Buffer.alloc(0),
    ];
    const results = await Promise.all(
      garbage.map(
        (bytes) =>
          new Promise<string>((resolve) => {
            const socket = tcpConnect(tlsPort, "127.0.0.1", () => socket.write(bytes));
            socket.on("error", () => {});
            socket.on("data", () => {});
            socket.on("close", () => resolve("closed"));
            // The server's headersTimeout (5 s) and TLS handshake timeout bound these; give up waiting after 12 s.
            setTimeout(() => {
              socket.destroy();
              resolve("left open");
            }, 12_000).unref();
          }),
      ),
    );
    // The first two are refused at once; the silent ones when the 5 s handshake timeout strikes.
    assert.deepEqual(results, ["closed", "closed", "closed", "closed"]);
    await stillServes("after garbage");
    assert.deepEqual(uncaught, []);
  });

  it(`accepts no more than ${MAX_CONNECTIONS} connections at once, and serves again once they are gone`, async () => {
    let closed = 0;
    const sockets = await Promise.all(
      Array.from(
        { length: MAX_CONNECTIONS + 20 },
        () =>
          new Promise<import("node:net").Socket>((resolve) => {
            const s = tcpConnect(tlsPort, "127.0.0.1", () => resolve(s));
            s.on("error", () => resolve(s));
            s.on("close", () => closed++);
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 1000));
    // The server closes what is beyond maxConnections at once; the others wait for their handshake.
    assert.ok(closed >= 20, `${closed} of ${sockets.length} connections were refused`);
    assert.ok(closed < sockets.length, "the server refused connections within its bound");
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 500));
    await stillServes("after the connection flood");
    assert.deepEqual(uncaught, []);
  });
});
