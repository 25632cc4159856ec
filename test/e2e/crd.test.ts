// The committed CRD on a real kube-apiserver: accepted, Established, and every invalid MetricsPusher refused with a
// message naming the field (OpenAPI schema + CEL rules).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ApiException, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { CRD_NAME, GROUP, PLURAL, VERSION } from "../../operator/src/api/index.ts";
import { startControlPlane } from "../controlplane/harness.ts";
import type { ControlPlane } from "../controlplane/harness.ts";
import { kubectl as kubectlIn, ROOT } from "../lib/kube.ts";
import { waitFor } from "../lib/wait.ts";

const NS = "crd-test";

type Spec = Record<string, unknown>;
const valid = (): Spec => ({
  selector: { matchLabels: { app: "builder" } },
  remoteWrite: { url: "http://prometheus.monitoring:9090/api/v1/write" },
});
function withPath(path: string, value: unknown): Spec {
  const spec = valid();
  const keys = path.split(".");
  let o = spec as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  if (value === undefined) delete o[keys.at(-1)!];
  else o[keys.at(-1)!] = value;
  return spec;
}

/** Each row: a spec and the field the apiserver's message must name. */
const invalid: Array<{ name: string; spec: Spec; field: string }> = [
  { name: "ftp URL", spec: withPath("remoteWrite.url", "ftp://prom/api/v1/write"), field: "spec.remoteWrite.url" },
  {
    name: "URL without scheme",
    spec: withPath("remoteWrite.url", "prometheus:9090/api/v1/write"),
    field: "spec.remoteWrite.url",
  },
  {
    name: "URL without host",
    spec: withPath("remoteWrite.url", "http:///api/v1/write"),
    field: "spec.remoteWrite.url",
  },
  { name: "missing URL", spec: withPath("remoteWrite.url", undefined), field: "spec.remoteWrite.url" },
  { name: "missing remoteWrite", spec: withPath("remoteWrite", undefined), field: "spec.remoteWrite" },
  { name: "missing selector", spec: withPath("selector", undefined), field: "spec.selector" },
  { name: "zero push interval", spec: withPath("pushInterval", "0s"), field: "spec.pushInterval" },
  { name: "push interval without unit", spec: withPath("pushInterval", "30"), field: "spec.pushInterval" },
  { name: "negative push interval", spec: withPath("pushInterval", "-5s"), field: "spec.pushInterval" },
  { name: "zero timeout", spec: withPath("remoteWrite.timeout", "0ms"), field: "spec.remoteWrite.timeout" },
  {
    name: "zero scrape timeout",
    spec: withPath("scrape", { targets: [{ port: 8080 }], timeout: "0s" }),
    field: "spec.scrape.timeout",
  },
  {
    name: "reserved header Content-Type",
    spec: withPath("remoteWrite.headers", { "Content-Type": "text/plain" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header authorization",
    spec: withPath("remoteWrite.headers", { authorization: "Bearer x" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header X-Prometheus-Remote-Write-Version",
    spec: withPath("remoteWrite.headers", { "X-Prometheus-Remote-Write-Version": "2.0" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "header name that is not a token",
    spec: withPath("remoteWrite.headers", { "Bad Name": "x" }),
    field: "spec.remoteWrite.headers",
  },
  { name: "unknown sidecarMode", spec: withPath("sidecarMode", "Sometimes"), field: "spec.sidecarMode" },
  { name: "unknown rolloutStrategy", spec: withPath("rolloutStrategy", "Always"), field: "spec.rolloutStrategy" },
  { name: "unknown logLevel", spec: withPath("logLevel", "trace"), field: "spec.logLevel" },
  { name: "scrape port 0", spec: withPath("scrape", { targets: [{ port: 0 }] }), field: "spec.scrape.targets[0].port" },
  {
    name: "scrape path without /",
    spec: withPath("scrape", { targets: [{ port: 8080, path: "metrics" }] }),
    field: "spec.scrape.targets[0].path",
  },
  {
    name: "Secret ref without key",
    spec: withPath("remoteWrite.bearerTokenSecret", { name: "rw" }),
    field: "spec.remoteWrite.bearerTokenSecret.key",
  },
  {
    name: "Secret ref with a bad name",
    spec: withPath("remoteWrite.bearerTokenSecret", { name: "Bad_Name", key: "t" }),
    field: "spec.remoteWrite.bearerTokenSecret.name",
  },
  {
    name: "basicAuth without password",
    spec: withPath("remoteWrite.basicAuth", { username: "u" }),
    field: "spec.remoteWrite.basicAuth.passwordSecret",
  },
  {
    name: "basicAuth with username and usernameSecret",
    spec: withPath("remoteWrite.basicAuth", {
      username: "u",
      usernameSecret: { name: "s", key: "u" },
      passwordSecret: { name: "s", key: "p" },
    }),
    field: "spec.remoteWrite.basicAuth",
  },
  {
    name: "bearer token and basicAuth together",
    spec: withPath("remoteWrite", {
      url: "https://rw/api/v1/write",
      bearerTokenSecret: { name: "s", key: "t" },
      basicAuth: { passwordSecret: { name: "s", key: "p" } },
    }),
    field: "spec.remoteWrite",
  },
  {
    name: "Secret ref into another namespace",
    spec: withPath("remoteWrite.bearerTokenSecret", { name: "s", key: "t", namespace: "kube-system" }),
    field: "spec.remoteWrite.bearerTokenSecret.namespace",
  },
  { name: "bad external label name", spec: withPath("externalLabels", { "1team": "a" }), field: "spec.externalLabels" },
  {
    name: "scrape path with a comma (a second target, issue 11 item 5)",
    spec: withPath("scrape", { targets: [{ port: 8080, path: "/metrics,http://10.96.0.1:9100/metrics" }] }),
    field: "spec.scrape.targets[0].path",
  },
  {
    name: "disk buffer below the pusher's least BUFFER_MAX_BYTES",
    spec: withPath("buffer", { disk: { sizeLimit: "64Ki" } }),
    field: "spec.buffer.disk.sizeLimit",
  },
  { name: "buffer below one batch", spec: withPath("buffer", { maxSamples: 1999 }), field: "spec.buffer.maxSamples" },
  {
    name: "bad disk buffer size",
    spec: withPath("buffer", { disk: { sizeLimit: "lots" } }),
    field: "spec.buffer.disk.sizeLimit",
  },
];

describe("MetricsPusher CRD on a real apiserver", { timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let custom: CustomObjectsApi;
  const kubectl = async (...args: string[]) => (await kubectlIn(cp, args)).stdout;
  const kubectlStdin = (input: string, ...args: string[]) => kubectlIn(cp, args, input);

  before(async () => {
    cp = await startControlPlane();
    const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
    custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    // kubectl, not client-node: the typed client would serialize the CRD through V1JSONSchemaProps and silently drop
    // the wire-named x-kubernetes-* keys of a parsed YAML (CEL rules, int-or-string).
    await kubectl("create", "-f", join(ROOT, "crds/metricspusher.dev_metricspushers.yaml"));
    await waitFor(
      async () => {
        const c = await ext.readCustomResourceDefinition({ name: CRD_NAME });
        return c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True");
      },
      { timeoutMs: 60_000, intervalMs: 100, message: "CRD Established" },
    );
    await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => cp?.stop());

  const create = (name: string, spec: Spec) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: "MetricsPusher", metadata: { name }, spec },
      // What kubectl does by default (--validate=strict): unknown fields are errors, not silently pruned.
      fieldValidation: "Strict",
    });

  it("accepts a minimal and a complete MetricsPusher, with defaults filled in", async () => {
    const minimal = (await create("minimal", valid())) as { spec: Spec };
    assert.equal(minimal.spec.pushInterval, "30s");
    assert.equal(minimal.spec.sidecarMode, "Auto");
    assert.equal(minimal.spec.rolloutStrategy, "Workload");
    await create("complete", {
      selector: {
        matchLabels: { app: "builder" },
        matchExpressions: [{ key: "tier", operator: "In", values: ["ci"] }],
      },
      remoteWrite: {
        url: "https://vm.monitoring:8428/api/v1/write",
        timeout: "10s",
        headers: { "X-Scope-OrgID": "team-a" },
        basicAuth: {
          usernameSecret: { name: "rw-auth", key: "user" },
          passwordSecret: { name: "rw-auth", key: "password" },
        },
        tlsCASecret: { name: "rw-ca", key: "ca.crt" },
        insecureSkipVerify: false,
      },
      pushInterval: "1m30s",
      logLevel: "debug",
      externalLabels: { cluster: "prod", team: "a" },
      scrape: { targets: [{ port: 8080 }, { port: 9090, path: "/stats" }], job: "kaniko", timeout: "5s" },
      buffer: { maxSamples: 50000, disk: { sizeLimit: "256Mi" } },
      image: "ghcr.io/metrics-pusher/pusher:0.1.0",
      resources: { requests: { cpu: "10m", memory: "48Mi" }, limits: { memory: "128Mi" } },
      sidecarMode: "Native",
      rolloutStrategy: "None",
    });
  });

  for (const c of invalid) {
    it(`refuses ${c.name}, naming ${c.field}`, async () => {
      const err = await create(`bad-${invalid.indexOf(c)}`, c.spec).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApiException, `expected the apiserver to refuse ${JSON.stringify(c.spec)}`);
      const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
      assert.ok(err.code === 422 || err.code === 400, `status ${err.code}: ${body}`);
      const message = (JSON.parse(body) as { message: string }).message;
      assert.ok(message.includes(c.field), `message names ${c.field}: ${message}`);
    });
  }

  it("config/default and config/samples apply to a real apiserver; the namespace passes Pod Security restricted", async () => {
    await kubectl("apply", "--server-side", "-k", join(ROOT, "config/default"));
    await kubectl("apply", "--server-side", "-k", join(ROOT, "config/samples"));
    const adm = JSON.parse(await kubectl("get", "mutatingwebhookconfiguration", "metrics-pusher", "-o", "json")) as {
      webhooks: Array<{ failurePolicy: string; sideEffects: string }>;
    };
    assert.equal(adm.webhooks[0]?.failurePolicy, "Ignore");
    assert.equal(adm.webhooks[0]?.sideEffects, "NoneOnDryRun");
    // The operator Deployment's pod template must itself pass `restricted`: a server-side dry-run of a Pod made
    // from it in the operator's (restricted) namespace runs Pod Security admission.
    const dep = JSON.parse(
      await kubectl("get", "deployment", "-n", "metrics-pusher-system", "metrics-pusher-operator", "-o", "json"),
    ) as { spec: { template: { metadata: unknown; spec: unknown } } };
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "psa-check", namespace: "metrics-pusher-system" },
      spec: dep.spec.template.spec,
    };
    const res = await kubectlStdin(JSON.stringify(pod), "create", "--dry-run=server", "-f", "-", "-o", "name");
    assert.match(res.stdout, /pod\/psa-check/);
    assert.equal(res.stderr.includes("violate"), false, res.stderr);
    // Control: the same check refuses a pod that breaks `restricted`, so the pass above means something.
    const bad = {
      ...pod,
      metadata: { name: "psa-bad", namespace: "metrics-pusher-system" },
      spec: { containers: [{ name: "c", image: "busybox" }] },
    };
    await assert.rejects(
      kubectlStdin(JSON.stringify(bad), "create", "--dry-run=server", "-f", "-"),
      /violates PodSecurity "restricted/,
    );
  });

  it("kubectl shows the printer columns and explains the fields", async () => {
    const table = await kubectl("get", "mp", "-n", NS);
    assert.match(table.split("\n")[0] ?? "", /^NAME\s+URL\s+INTERVAL\s+MATCHED\s+READY\s+AGE/);
    assert.match(table, /minimal\s+http:\/\/prometheus\.monitoring:9090\/api\/v1\/write\s+30s/);
    const explain = await kubectl("explain", "metricspusher.spec.remoteWrite.url");
    assert.match(explain, /http:\/\/ or https:\/\//);
    // The constraints derived from the pusher's contract are explained too.
    assert.match(await kubectl("explain", "metricspusher.spec.buffer.maxSamples"), /Between 2000 and 10000000/);
    assert.match(await kubectl("explain", "metricspusher.spec.pushInterval"), /at least 1ms/);
    const discovery = await kubectl("explain", "metricspusher.spec.scrape.discovery");
    assert.match(discovery, /ENUM:[\s\S]*None[\s\S]*Annotations[\s\S]*Ports[\s\S]*Auto/);
    assert.match(discovery, /prometheus\.io\/port/);
  });
});
