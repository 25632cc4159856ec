// Webhook smoke run and latency figure (not part of `make test`): the operator as a local process against a real
// control plane, one Deployment injected through the apiserver, then 2000 direct AdmissionReviews over HTTPS.
// Run: node_modules/.bin/node --conditions=source test/e2e/webhook-latency.ts
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { request } from "node:https";
import { startControlPlane } from "../controlplane/harness.ts";
import { applyCrds, createNamespace } from "../lib/kube.ts";
import { OPERATOR_NAMESPACE, startOperator } from "../lib/operator.ts";
import { waitFor } from "../lib/wait.ts";

const cp = await startControlPlane({ controllers: true });
let op: Awaited<ReturnType<typeof startOperator>> | undefined;
try {
  await applyCrds(cp);
  await createNamespace(cp.kubeConfig, OPERATOR_NAMESPACE);
  await createNamespace(cp.kubeConfig, "builds");
  const t0 = Date.now();
  op = await startOperator({ cp, name: "smoke-0", env: { LOG_LEVEL: "info" } });
  await op.waitReady(90_000);
  console.log(`operator ready after ${Date.now() - t0} ms`);
  const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  await custom.createNamespacedCustomObject({
    group: "metricspusher.dev",
    version: "v1alpha1",
    namespace: "builds",
    plural: "metricspushers",
    body: {
      apiVersion: "metricspusher.dev/v1alpha1",
      kind: "MetricsPusher",
      metadata: { name: "builders" },
      spec: {
        selector: { matchLabels: { app: "builder" } },
        remoteWrite: { url: "http://prom:9090/api/v1/write", bearerTokenSecret: { name: "rw", key: "token" } },
      },
    },
  });
  const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
  await apps.createNamespacedDeployment({
    namespace: "builds",
    body: {
      metadata: { name: "builder" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "builder" } },
        template: {
          metadata: { labels: { app: "builder" } },
          spec: { containers: [{ name: "main", image: "busybox" }] },
        },
      },
    },
  });
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const pod = await waitFor(async () => (await core.listNamespacedPod({ namespace: "builds" })).items[0], {
    timeoutMs: 60_000,
    intervalMs: 100,
    message: "builder pod",
  });
  console.log("pod annotations:", JSON.stringify(pod.metadata?.annotations));
  console.log(
    "initContainers:",
    JSON.stringify(
      pod.spec?.initContainers?.map((c) => ({
        name: c.name,
        restartPolicy: c.restartPolicy,
        image: c.image,
        env: c.env?.map((e) => e.name),
      })),
    ),
  );
  console.log("volumes:", JSON.stringify(pod.spec?.volumes?.map((v) => v.name)));
  await new Promise((r) => setTimeout(r, 2000));
  const ev = await core.listNamespacedEvent({ namespace: "builds" });
  console.log(
    "events:",
    ev.items.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}: ${e.message}`).join("\n  "),
  );
  // Latency: direct AdmissionReviews over HTTPS, one at a time.
  const secret = await core.readNamespacedSecret({
    name: "metrics-pusher-webhook-cert",
    namespace: OPERATOR_NAMESPACE,
  });
  const ca = Buffer.from(secret.data!["ca.crt"]!, "base64").toString();
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "x",
      kind: { group: "", version: "v1", kind: "Pod" },
      operation: "CREATE",
      namespace: "builds",
      object: {
        metadata: { generateName: "b-", labels: { app: "builder" } },
        spec: { containers: [{ name: "main", image: "busybox" }] },
      },
    },
  });
  const u = new URL(op.webhookUrl);
  const { Agent } = await import("node:https");
  const agent = new Agent({ keepAlive: true, ca });
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const s = process.hrtime.bigint();
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: "POST",
          agent,
          headers: { "content-type": "application/json" },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(Number(process.hrtime.bigint() - s) / 1e6));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  for (let i = 0; i < 100; i++) await once();
  const ms: number[] = [];
  for (let i = 0; i < 2000; i++) ms.push(await once());
  ms.sort((a, b) => a - b);
  const q = (p: number) => ms[Math.floor(p * (ms.length - 1))]!.toFixed(3);
  console.log(
    `client round trip over HTTPS keep-alive, 2000 sequential requests: p50 ${q(0.5)} ms p90 ${q(0.9)} ms p99 ${q(0.99)} ms max ${q(1)} ms`,
  );
  const metrics = await (await fetch(op.metricsUrl)).text();
  console.log(
    metrics
      .split("\n")
      .filter((l) =>
        /webhook_(requests|injections|skips|request_duration_seconds_(sum|count))|certificate_expiry|native_sidecars|leader_election_master_status/.test(
          l,
        ),
      )
      .join("\n"),
  );
  agent.destroy();
} finally {
  await op?.stop();
  await cp.stop();
}
