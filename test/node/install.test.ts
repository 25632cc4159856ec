// The README's install on the real node: `kubectl apply -k config/default` with the images `make images` built, then
// `kubectl apply -k config/samples` unchanged. The operator runs as two pods, the apiserver calls its webhook over
// TLS through its Service, the sample's builder pod gets the pusher and runs with every container ready, and its
// series reach a Prometheus on the node's bridge through the sample's own receiver URL, resolved by cluster DNS.
// Then `kubectl delete -k` of both leaves nothing stuck.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import { eventually } from "../lib/wait.ts";
import { acquireNodeBed, type SharedNodeBed } from "./shared.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const OPERATOR_IMAGE = `ghcr.io/metrics-pusher/operator:${VERSION}`;
const PUSHER_IMAGE = `ghcr.io/metrics-pusher/pusher:${VERSION}`;
const SYSTEM_NS = "metrics-pusher-system";
const SAMPLE_NS = "builds";

let bed: SharedNodeBed;
let prometheus: Receiver;

before(async () => {
  bed = await acquireNodeBed((line) => {
    if (/^\[(node|build|cleanup)\]/.test(line)) process.stderr.write(line + "\n");
  });
  // Receivers the pods push to listen on the node's bridge.
  prometheus = await startPrometheus({ host: bed.bridgeIp });
});

after(async () => {
  await prometheus?.stop();
  await bed?.release();
});

const allReady = (p: V1Pod): boolean =>
  p.status?.phase === "Running" &&
  [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])].every(
    (c) => c.ready || c.state?.terminated?.exitCode === 0,
  ) &&
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

it("the built images are on the node (make images)", () => {
  for (const image of [OPERATOR_IMAGE, PUSHER_IMAGE]) {
    assert.ok(
      bed.images.includes(image),
      `${image} is imported on the node (run make images first): ${bed.images.join(", ")}`,
    );
  }
});

it("kubectl apply -k config/default: two operator replicas Running and Ready", { timeout: 300_000 }, async () => {
  // The sample's receiver URL is http://prometheus.monitoring.svc:9090: a Service without selector whose endpoint is
  // the Prometheus on the bridge.
  const core = bed.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: "monitoring" } } });
  await core.createNamespacedService({
    namespace: "monitoring",
    body: {
      metadata: { name: "prometheus" },
      spec: { ports: [{ name: "http", port: 9090, targetPort: prometheus.port }] },
    },
  });
  await core.createNamespacedEndpoints({
    namespace: "monitoring",
    body: {
      metadata: { name: "prometheus" },
      subsets: [{ addresses: [{ ip: bed.bridgeIp }], ports: [{ name: "http", port: prometheus.port }] }],
    },
  });

  await bed.kubectlRun(["apply", "-k", join(ROOT, "config/default")]);
  const apps = bed.kubeConfig.makeApiClient(AppsV1Api);
  await eventually("the operator Deployment with 2 ready replicas", 240_000, async () => {
    const d = await apps.readNamespacedDeployment({ namespace: SYSTEM_NS, name: "metrics-pusher-operator" });
    return d.status?.readyReplicas === 2 ? d : undefined;
  });
  const pods = await core.listNamespacedPod({
    namespace: SYSTEM_NS,
    labelSelector: "app.kubernetes.io/name=metrics-pusher-operator",
  });
  const running = pods.items.filter((p) => allReady(p));
  assert.equal(running.length, 2, "two operator pods Running with every container ready");
  for (const p of running) {
    assert.equal(p.spec?.containers[0]?.image, OPERATOR_IMAGE);
    assert.match(p.status?.podIP ?? "", /^10\.244\.0\./);
  }
});

it(
  "kubectl apply -k config/samples: the builder gets the pusher through the webhook's Service",
  { timeout: 300_000 },
  async (t) => {
    const applied = Date.now();
    await bed.kubectlRun(["apply", "-k", join(ROOT, "config/samples")]);
    const core = bed.kubeConfig.makeApiClient(CoreV1Api);
    const containersOf = (p: V1Pod) => [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])];
    // Applied at once, as the README says, the Deployment's first pod can reach the webhook before its informer has
    // the MetricsPusher: the webhook fails open and the pod starts bare, and the controller's drift repair rolls it.
    // Either way the builder ends up running with the pusher; the test says which way it went.
    const bare = new Set<string>();
    const pod = await eventually(
      "the builder pod Running with the pusher, every container ready",
      240_000,
      async () => {
        const pods = await core.listNamespacedPod({
          namespace: SAMPLE_NS,
          labelSelector: "app.kubernetes.io/name=builder",
        });
        for (const p of pods.items)
          if (!containersOf(p).some((c) => c.image === PUSHER_IMAGE)) bare.add(p.metadata!.name!);
        return pods.items.find(
          (p) => allReady(p) && p.metadata?.deletionTimestamp === undefined && !bare.has(p.metadata!.name!),
        );
      },
    );
    t.diagnostic(
      bare.size === 0
        ? "the first pod was injected"
        : `admitted bare first: ${[...bare].join(", ")}; drift repair rolled the Deployment, injected pod ready ${Math.round((Date.now() - applied) / 1000)} s after the apply`,
    );
    const sidecar = containersOf(pod).find((c) => c.image === PUSHER_IMAGE);
    assert.ok(
      sidecar,
      `the pusher was injected: ${containersOf(pod)
        .map((c) => `${c.name}=${c.image}`)
        .join(", ")}`,
    );
    assert.equal(sidecar.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser, 65532);

    // The apiserver reached the webhook through metrics-pusher-webhook.metrics-pusher-system.svc with the CA the
    // operator put into the configuration.
    const webhook = JSON.parse(
      await bed.kubectlRun(["get", "mutatingwebhookconfiguration", "metrics-pusher", "-o", "json"]),
    ) as { webhooks: { clientConfig: { caBundle?: string; service?: { name: string } } }[] };
    assert.equal(webhook.webhooks[0]?.clientConfig.service?.name, "metrics-pusher-webhook");
    assert.ok((webhook.webhooks[0]?.clientConfig.caBundle ?? "").length > 0, "caBundle filled in");

    const name = pod.metadata!.name!;
    const series = await eventually("the builder's series in Prometheus", 180_000, async () => {
      const found = await prometheus.series(`{namespace="${SAMPLE_NS}",pod="${name}"}`);
      return found.length > 0 ? found : undefined;
    });
    assert.ok(series.every((s) => s.pod === name && s.namespace === SAMPLE_NS));
    const events = await core.listNamespacedEvent({ namespace: SAMPLE_NS });
    assert.ok(!events.items.some((e) => e.reason === "Pulling"), "no image was pulled");
  },
);

it("kubectl delete -k of the samples and the install leaves nothing stuck", { timeout: 300_000 }, async () => {
  await bed.kubectlRun(["delete", "-k", join(ROOT, "config/samples"), "--timeout=120s"]);
  await bed.kubectlRun(["delete", "-k", join(ROOT, "config/default"), "--timeout=120s"]);
  const core = bed.kubeConfig.makeApiClient(CoreV1Api);
  for (const ns of [SAMPLE_NS, SYSTEM_NS]) {
    await eventually(`namespace ${ns} gone`, 120_000, async () => {
      const list = await core.listNamespace();
      return list.items.some((n) => n.metadata?.name === ns) ? undefined : true;
    });
  }
  const crds = await bed.kubectlRun(["get", "crd", "-o", "name"]);
  assert.ok(!crds.includes("metricspusher.dev"), `the CRD is gone: ${crds}`);
  await core.deleteNamespace({ name: "monitoring" });
});
