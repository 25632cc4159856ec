// End-to-end on the real node, with the operator installed as the README says (kubectl apply -k config/default).
// Every outcome is read from the kubelet's own status, from logs, or from the receivers; waits poll with a deadline.
// No test pod uses hostNetwork.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1ContainerStatus,
  type V1Pod,
} from "@kubernetes/client-node";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import { eventually } from "../lib/wait.ts";
import { respond, startFaultProxy } from "../reliability/lib/faultproxy.ts";
import { SCRAPE_LIMITS, SCRAPE_MAX_BYTES_DEFAULT } from "../../pusher/src/config.ts";
import { acquireNodeBed, type SharedNodeBed } from "./shared.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const PUSHER_IMAGE = `ghcr.io/metrics-pusher/pusher:${VERSION}`;
const SYSTEM_NS = "metrics-pusher-system";
const suffix = Date.now().toString(36);

let bed: SharedNodeBed;
let prometheus: Receiver;
let core: CoreV1Api;

before(async () => {
  bed = await acquireNodeBed((line) => {
    if (/^\[(node|build|cleanup)\]/.test(line)) process.stderr.write(line + "\n");
  });
  core = bed.kubeConfig.makeApiClient(CoreV1Api);
  prometheus = await startPrometheus({ host: bed.bridgeIp });
  await bed.kubectlRun(["apply", "-k", join(ROOT, "config/default")]);
  const apps = bed.kubeConfig.makeApiClient(AppsV1Api);
  await eventually("the operator with 2 ready replicas", 240_000, async () => {
    const d = await apps.readNamespacedDeployment({ namespace: SYSTEM_NS, name: "metrics-pusher-operator" });
    return d.status?.readyReplicas === 2 ? true : undefined;
  });
});

after(async () => {
  if (bed !== undefined) {
    // The MetricsPushers first, while the operator runs to remove its finalizers: deleted after it, they (and the
    // CRD with them) would stay stuck, and the next file on the shared bed would find them.
    const say = (err: Error): void => void process.stderr.write(`${err.message}\n`);
    await bed.kubectlRun(["delete", "metricspushers", "--all", "-A", "--timeout=120s"]).catch(say);
    for (const ns of created) await bed.kubectlRun(["delete", "namespace", ns, "--timeout=120s"]).catch(say);
    await bed
      .kubectlRun(["delete", "-k", join(ROOT, "config/default"), "--timeout=120s", "--ignore-not-found"])
      .catch(say);
    await bed.release();
  }
  await prometheus?.stop();
});

/** A namespace with a Service `receiver` whose endpoint is `port` on the bridge, and a MetricsPusher `spec`. */
const created: string[] = [];
async function namespaceWithPusher(name: string, port: number, spec: Record<string, unknown>): Promise<string> {
  await core.createNamespace({ body: { metadata: { name } } });
  created.push(name);
  await core.createNamespacedService({
    namespace: name,
    body: { metadata: { name: "receiver" }, spec: { ports: [{ name: "http", port: 80, targetPort: port }] } },
  });
  await core.createNamespacedEndpoints({
    namespace: name,
    body: {
      metadata: { name: "receiver" },
      subsets: [{ addresses: [{ ip: bed.bridgeIp }], ports: [{ name: "http", port }] }],
    },
  });
  const custom = bed.kubeConfig.makeApiClient(CustomObjectsApi);
  await custom.createNamespacedCustomObject({
    group: "metricspusher.dev",
    version: "v1alpha1",
    namespace: name,
    plural: "metricspushers",
    body: {
      apiVersion: "metricspusher.dev/v1alpha1",
      kind: "MetricsPusher",
      metadata: { name: "push" },
      spec: {
        selector: { matchLabels: { "e2e.metricspusher.dev/push": "yes" } },
        pushInterval: "5s",
        scrape: { targets: [{ port: 8080, path: "/metrics" }] },
        ...spec,
        remoteWrite: { url: `http://receiver.${name}.svc/api/v1/write`, ...((spec.remoteWrite as object) ?? {}) },
      },
    },
  });
  // The webhook fails open: a pod admitted before its Service routes to it (kube-proxy's rules follow the operator's
  // readiness by a moment) or before its informer has this MetricsPusher runs bare, and a Job's pod is not rolled
  // again. A server-side dry run goes through the same admission, so wait until one comes back injected.
  await eventually(`the webhook to inject in ${name}`, 60_000, async () => {
    const probe = await core.createNamespacedPod({
      namespace: name,
      dryRun: "All",
      body: {
        metadata: { name: "probe", labels: { "e2e.metricspusher.dev/push": "yes" } },
        spec: { containers: [appContainer("e2e_probe_total", 0)] },
      },
    });
    return pusherContainer(probe) !== undefined ? true : undefined;
  });
  return name;
}

/** The pusher's container in a pod's spec (a native sidecar is an init container), or undefined. */
function pusherContainer(pod: V1Pod): V1Container | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.image?.startsWith(PUSHER_IMAGE) === true,
  );
}

/** An app for the test image: serves `metric` on :8080 and exits after `seconds` (0: never). */
function appContainer(metric: string, seconds: number, extra: Partial<V1Container> = {}): V1Container {
  const js =
    `require("http").createServer((q, s) => { s.setHeader("content-type", "text/plain; version=0.0.4"); ` +
    `s.end("${metric} 42\\n"); }).listen(8080);` +
    (seconds > 0 ? ` setTimeout(() => process.exit(0), ${seconds * 1000});` : "");
  return {
    name: "app",
    image: bed.testImage,
    imagePullPolicy: "Never",
    command: ["node", "-e", js],
    ports: [{ name: "metrics", containerPort: 8080 }],
    ...extra,
  };
}

/**
 * What a failed assertion about the pusher should show: its status as the kubelet reports it, the pod's Events and
 * the last lines of the pusher's log (of the container before a restart too), so that a failure in CI says why.
 */
async function pusherReport(ns: string, pod: V1Pod): Promise<string> {
  const name = pod.metadata?.name ?? "";
  const status = pusherStatus(pod);
  const container = status?.name ?? "";
  const safe = (p: Promise<string>): Promise<string> => p.catch((err: Error) => `(${err.message.trim()})`);
  const logs = await safe(bed.kubectlRun(["logs", "-n", ns, name, "-c", container, "--tail=20"]));
  const previous =
    (status?.restartCount ?? 0) > 0
      ? await safe(bed.kubectlRun(["logs", "-n", ns, name, "-c", container, "--previous", "--tail=20"]))
      : "";
  const events = await safe(
    bed.kubectlRun(["get", "events", "-n", ns, "--field-selector", `involvedObject.name=${name}`, "-o", "wide"]),
  );
  return [
    `pusher status: ${JSON.stringify(status)}`,
    `events:\n${events}`,
    `pusher log:\n${logs}`,
    ...(previous ? [`previous pusher log:\n${previous}`] : []),
  ].join("\n");
}

/** The pod once the kubelet reports its pusher running: its status lags behind the container (the first write can
 * come before it). */
function podWithPusherRunning(ns: string, name: string): Promise<V1Pod> {
  return eventually("the pusher's status running", 60_000, async () => {
    const p = await core.readNamespacedPod({ namespace: ns, name });
    return pusherStatus(p)?.state?.running !== undefined ? p : undefined;
  });
}

function pusherStatus(pod: V1Pod): V1ContainerStatus | undefined {
  const name = pusherContainer(pod)?.name;
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].find(
    (s) => s.name === name,
  );
}

it("a Job's pod completes with a native sidecar, and its samples arrive", { timeout: 300_000 }, async (t) => {
  const ns = await namespaceWithPusher(`job-${suffix}`, prometheus.port, {});
  const batch = bed.kubeConfig.makeApiClient(BatchV1Api);
  await batch.createNamespacedJob({
    namespace: ns,
    body: {
      metadata: { name: "work" },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { labels: { "e2e.metricspusher.dev/push": "yes", job: "work" } },
          spec: { restartPolicy: "Never", containers: [appContainer("e2e_job_items_total", 20)] },
        },
      },
    },
  });
  const job = await eventually("the Job complete", 240_000, async () => {
    const j = await batch.readNamespacedJob({ namespace: ns, name: "work" });
    if ((j.status?.failed ?? 0) > 0) throw new Error(`the Job failed: ${JSON.stringify(j.status)}`);
    return j.status?.succeeded === 1 ? j : undefined;
  });
  assert.ok(job.status?.conditions?.some((c) => c.type === "Complete" && c.status === "True"));
  const pod = (await core.listNamespacedPod({ namespace: ns, labelSelector: "job=work" })).items[0]!;
  assert.equal(pod.status?.phase, "Succeeded");
  const sidecar = (pod.spec?.initContainers ?? []).find((c) => c.image === PUSHER_IMAGE);
  assert.ok(sidecar, "the pusher is an init container");
  assert.equal(sidecar.restartPolicy, "Always", "a native sidecar");
  // The kubelet stopped the sidecar after the app exited; it exited cleanly (its last flush done).
  const status = pusherStatus(pod);
  // The pod's timeline, seconds from its creation: when each container started and ended.
  const ms = (d: Date | string | undefined): number => (d === undefined ? Number.NaN : new Date(d).getTime());
  const created = ms(pod.metadata?.creationTimestamp);
  const at = (d: Date | string | undefined): string => (d ? ((ms(d) - created) / 1000).toFixed(1) : "-");
  t.diagnostic(
    [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
      .map((c) => `${c.name} ${at(c.state?.terminated?.startedAt)}–${at(c.state?.terminated?.finishedAt)} s`)
      .join(", "),
  );
  if (status?.state?.terminated?.exitCode !== 0 || status.restartCount !== 0) assert.fail(await pusherReport(ns, pod));
  const series = await eventually("the Job's samples in Prometheus", 60_000, async () => {
    const s = await prometheus.series(`e2e_job_items_total{namespace="${ns}"}`);
    return s.length > 0 ? s : undefined;
  });
  assert.equal(series[0]?.pod, pod.metadata?.name, `series: ${JSON.stringify(series)}`);
});

it(
  "a pod whose memory limit is below what its app needs shows the OOM as the kubelet reports it",
  { timeout: 240_000 },
  async () => {
    const ns = await namespaceWithPusher(`oom-${suffix}`, prometheus.port, {});
    // The app grows until the cgroup's limit stops it.
    const hog =
      'const a = []; setInterval(() => a.push(Buffer.alloc(8 << 20, 1)), 20); require("http").createServer((q, s) => s.end("x 1\\n")).listen(8080);';
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "hog", labels: { "e2e.metricspusher.dev/push": "yes" } },
        spec: {
          restartPolicy: "Never",
          containers: [
            {
              name: "app",
              image: bed.testImage,
              imagePullPolicy: "Never",
              command: ["node", "-e", hog],
              resources: { limits: { memory: "64Mi" }, requests: { memory: "64Mi" } },
            },
          ],
        },
      },
    });
    const terminated = await eventually("the app OOMKilled", 180_000, async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name: "hog" });
      const app = pod.status?.containerStatuses?.find((c) => c.name === "app");
      return app?.state?.terminated ?? app?.lastState?.terminated ?? undefined;
    });
    assert.equal(terminated.reason, "OOMKilled");
    assert.equal(terminated.exitCode, 137);
    const pod = await core.readNamespacedPod({ namespace: ns, name: "hog" });
    assert.ok(pusherStatus(pod), "the pod was injected (the pusher beside the app)");
  },
);

it("a rotated bearer-token Secret reaches the running pusher without a restart", { timeout: 300_000 }, async () => {
  // A receiver of our own on the bridge that records the Authorization header of every write.
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.headers.authorization ?? "");
    req.resume();
    req.on("end", () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, bed.bridgeIp, resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const ns = `token-${suffix}`;
    await namespaceWithPusher(ns, port, { remoteWrite: { bearerTokenSecret: { name: "auth", key: "token" } } });
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "auth" }, stringData: { token: "first" } },
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "app", labels: { "e2e.metricspusher.dev/push": "yes" } },
        spec: { containers: [appContainer("e2e_token_total", 0)] },
      },
    });
    await eventually("a write with the first token", 180_000, async () =>
      seen.includes("Bearer first") ? true : undefined,
    );
    const podBefore = await podWithPusherRunning(ns, "app");
    const before = pusherStatus(podBefore);
    if (!before?.containerID || before.restartCount !== 0) assert.fail(await pusherReport(ns, podBefore));

    await core.replaceNamespacedSecret({
      namespace: ns,
      name: "auth",
      body: { metadata: { name: "auth" }, stringData: { token: "second" } },
    });
    await eventually("a write with the rotated token", 180_000, async () =>
      seen.at(-1) === "Bearer second" ? true : undefined,
    );
    const podAfter = await core.readNamespacedPod({ namespace: ns, name: "app" });
    const afterRotation = pusherStatus(podAfter);
    // The same container, not restarted.
    if (afterRotation?.containerID !== before.containerID || afterRotation.restartCount !== 0) {
      assert.fail(await pusherReport(ns, podAfter));
    }
  } finally {
    server.close();
  }
});

it(
  "with buffer.disk, samples buffered during an outage survive a SIGKILL of the pusher through containerd",
  { timeout: 420_000 },
  async (t) => {
    // A receiver of our own on the bridge: 204 and the decoded samples kept, or 503 during the outage.
    const receiver = await startFaultProxy({ host: bed.bridgeIp });
    try {
      const ns = await namespaceWithPusher(`disk-${suffix}`, receiver.port, {
        buffer: { disk: { sizeLimit: "64Mi" } },
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: "app", labels: { "e2e.metricspusher.dev/push": "yes" } },
          spec: { containers: [appContainer("e2e_disk_total", 0)] },
        },
      });
      const samples = () => receiver.delivered().filter((d) => d.labels.includes(`__name__="e2e_disk_total"`));
      await eventually("the app's samples delivered", 180_000, async () => (samples().length > 0 ? true : undefined));

      receiver.setDefault(respond(503));
      const outageFrom = Date.now();
      const deliveredBefore = samples().length;
      // Several cycles (pushInterval 5s) refused: what they took is in the pusher's memory and on its emptyDir.
      await eventually("three push intervals of refused writes", 60_000, async () =>
        Date.now() - outageFrom >= 16_000 &&
        receiver.requests.filter((r) => r.atMs >= outageFrom && r.status === 503).length >= 3
          ? true
          : undefined,
      );
      const pod = await podWithPusherRunning(ns, "app");
      const running = pusherStatus(pod);
      if (!running?.containerID || running.restartCount !== 0) assert.fail(await pusherReport(ns, pod));
      const killedAt = Date.now();
      // From the host, as the OOM killer or a node problem would: no SIGTERM, no last flush.
      await bed.ctr(["tasks", "kill", "--signal", "SIGKILL", running.containerID.replace(/^containerd:\/\//, "")]);
      const restarted = await eventually("the kubelet to restart the pusher", 120_000, async () => {
        const p = await core.readNamespacedPod({ namespace: ns, name: "app" });
        const s = pusherStatus(p);
        return s?.restartCount === 1 && s.state?.running !== undefined ? p : undefined;
      });
      const last = pusherStatus(restarted)?.lastState?.terminated;
      assert.equal(last?.exitCode, 137, `the pusher's last state: ${JSON.stringify(last)}`);

      receiver.setDefault(respond(204));
      // Taken during the outage, before the kill, never delivered then: they can only come from the disk buffer.
      const buffered = () => samples().filter((d) => d.timestampMs > outageFrom + 1000 && d.timestampMs < killedAt);
      // One sample of the app's series a cycle: at least two of the outage's three cycles before the kill.
      const recovered = await eventually(
        "samples taken before the kill delivered after the restart",
        120_000,
        async () => (buffered().length >= 2 ? buffered() : undefined),
      );
      t.diagnostic(
        `${deliveredBefore} samples before the outage; ${recovered.length} taken in the ${Math.round((killedAt - outageFrom) / 1000)} s of outage before the kill delivered after the restart`,
      );
      const after = await core.readNamespacedPod({ namespace: ns, name: "app" });
      if (pusherStatus(after)?.restartCount !== 1) assert.fail(await pusherReport(ns, after));
    } finally {
      await receiver.close();
    }
  },
);

it(
  "the default resources: the largest target the default limits accept runs 5 minutes without an OOM; one over is refused",
  { timeout: 600_000 },
  async (t) => {
    // Pod "at": the sample limit's worth of series whose label values fill SCRAPE_MAX_BYTES' default, the costliest
    // body the defaults accept. Pod "over": twice the sample limit, refused as the parse passes it. Both with the
    // sidecar's default resources (192Mi limit), scraped every 10 s.
    const { sampleLimit } = SCRAPE_LIMITS;
    const perLine = Math.floor(SCRAPE_MAX_BYTES_DEFAULT / sampleLimit.default);
    const valueLength = perLine - 'e2e_big{id="0000",v=""} 1\n'.length;
    const big = (series: number, chars: number): string =>
      `const v = "x".repeat(${chars}); let b = ""; ` +
      `for (let i = 0; i < ${series}; i++) b += "e2e_big{id=\\"" + String(i).padStart(4, "0") + "\\",v=\\"" + v + "\\"} 1\\n"; ` +
      `require("http").createServer((q, s) => s.end(b)).listen(8080);`;
    const ns = await namespaceWithPusher(`resources-${suffix}`, prometheus.port, { pushInterval: "10s" });
    for (const [name, js] of [
      ["at", big(sampleLimit.default, valueLength)],
      ["over", big(2 * sampleLimit.default, 16)],
    ] as const) {
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name, labels: { "e2e.metricspusher.dev/push": "yes" } },
          spec: { containers: [{ ...appContainer("unused", 0), command: ["node", "-e", js] }] },
        },
      });
    }
    const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: ns })).items;
    await eventually("both pushers running", 180_000, async () =>
      (await pods()).every((p) => pusherStatus(p)?.state?.running !== undefined) ? true : undefined,
    );
    // Five minutes, looked at every 10 s: a restart or an OOM kill fails at once, with the pusher's report.
    const end = Date.now() + 5 * 60_000;
    while (Date.now() < end) {
      for (const p of await pods()) {
        const s = pusherStatus(p);
        if ((s?.restartCount ?? 0) > 0 || s?.lastState?.terminated !== undefined)
          assert.fail(await pusherReport(ns, p));
      }
      await sleep(10_000);
    }
    const one = async (q: string): Promise<number | undefined> => (await prometheus.query(q))[0]?.value;
    const delivered = await one(`count(e2e_big{namespace="${ns}",pod="at"})`);
    const upAt = await one(`up{namespace="${ns}",pod="at",job="builder"}`);
    const upOver = await one(`up{namespace="${ns}",pod="over",job="builder"}`);
    const peak = await one(
      `max_over_time(knative_lambda_metric_pusher_system_memory_sys_bytes{namespace="${ns}",pod="at"}[10m])`,
    );
    const at = (await pods()).find((p) => p.metadata?.name === "at")!;
    const limit = pusherContainer(at)?.resources?.limits?.memory;
    t.diagnostic(
      `at the limits: ${delivered} series of ${valueLength}-character values (${perLine * sampleLimit.default} bytes a scrape), pusher RSS at most ${((peak ?? 0) / 2 ** 20).toFixed(1)} MiB as it reported it every 10 s, limit ${limit}`,
    );
    assert.equal(limit, "192Mi", "the sidecar's default memory limit");
    assert.equal(delivered, sampleLimit.default, "every series of the target at the sample limit delivered");
    assert.equal(upAt, 1);
    assert.equal(upOver, 0, "the target over the sample limit is refused");
    for (const p of await pods()) {
      const s = pusherStatus(p);
      if (s?.restartCount !== 0 || s.state?.running === undefined) assert.fail(await pusherReport(ns, p));
    }
  },
);

/** A Deployment of the app in `ns`, labelled for the MetricsPusher. */
async function appDeployment(ns: string, name: string): Promise<void> {
  const apps = bed.kubeConfig.makeApiClient(AppsV1Api);
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name, "e2e.metricspusher.dev/push": "yes" } },
          spec: {
            containers: [appContainer(`e2e_${name.replace(/-/g, "_")}_total`, 0)],
            terminationGracePeriodSeconds: 5,
          },
        },
      },
    },
  });
}

const readyPod =
  (ns: string, selector: string, want: (p: V1Pod) => boolean) => async (): Promise<V1Pod | undefined> => {
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: selector });
    return pods.items.find(
      (p) =>
        p.metadata?.deletionTimestamp === undefined &&
        p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true &&
        want(p),
    );
  };

async function scaleOperator(replicas: number): Promise<void> {
  await bed.kubectlRun(["scale", "-n", SYSTEM_NS, "deployment/metrics-pusher-operator", `--replicas=${replicas}`]);
  const apps = bed.kubeConfig.makeApiClient(AppsV1Api);
  await eventually(`the operator at ${replicas} ready replicas`, 240_000, async () => {
    const d = await apps.readNamespacedDeployment({ namespace: SYSTEM_NS, name: "metrics-pusher-operator" });
    const pods = await core.listNamespacedPod({
      namespace: SYSTEM_NS,
      labelSelector: "app.kubernetes.io/name=metrics-pusher-operator",
    });
    return (d.status?.readyReplicas ?? 0) === replicas && pods.items.length === replicas ? true : undefined;
  });
}

/** An app of the test image answering `metric{path="<path>"} 42` on each of `paths` at `port`, 404 elsewhere. */
function servingContainer(
  metric: string,
  port: number,
  paths: string[],
  extra: Partial<V1Container> = {},
): V1Container {
  const js =
    `const paths = ${JSON.stringify(paths)}; require("http").createServer((q, s) => { ` +
    `if (!paths.includes(q.url)) { s.statusCode = 404; return s.end(); } ` +
    `s.setHeader("content-type", "text/plain; version=0.0.4"); ` +
    `s.end("${metric}{path=\\"" + q.url + "\\"} 42\\n"); }).listen(${port});`;
  return { name: "app", image: bed.testImage, imagePullPolicy: "Never", command: ["node", "-e", js], ...extra };
}

it(
  "discovery Auto with no listed targets forwards every annotated or port-named builder of the namespace",
  { timeout: 420_000 },
  async () => {
    const ns = await namespaceWithPusher(`discover-${suffix}`, prometheus.port, { scrape: { discovery: "Auto" } });
    const apps = bed.kubeConfig.makeApiClient(AppsV1Api);
    const deploy = (name: string, replicas: number, annotations: Record<string, string>, container: V1Container) =>
      apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            replicas,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name, "e2e.metricspusher.dev/push": "yes" }, annotations },
              spec: { containers: [container], terminationGracePeriodSeconds: 5 },
            },
          },
        },
      });
    // Annotated the Prometheus way, on a port it does not declare, with its own path; two replicas.
    await deploy(
      "annotated",
      2,
      { "prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "/stats" },
      servingContainer("e2e_annotated_total", 9100, ["/stats", "/v2"]),
    );
    // A container port named metrics, no annotation.
    await deploy(
      "named",
      1,
      {},
      servingContainer("e2e_named_total", 8080, ["/metrics"], { ports: [{ name: "metrics", containerPort: 8080 }] }),
    );
    // Declares a metrics port but asks not to be scraped: injected, with no scrape target.
    await deploy(
      "optout",
      1,
      { "prometheus.io/scrape": "false" },
      servingContainer("e2e_optout_total", 8080, ["/metrics"], { ports: [{ name: "metrics", containerPort: 8080 }] }),
    );

    const series = async (metric: string): Promise<Record<string, string>[]> =>
      eventually(`${metric} in Prometheus`, 240_000, async () => {
        const s = await prometheus.series(`${metric}{namespace="${ns}"}`);
        return s.length > 0 ? s : undefined;
      }).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await operatorReport(ns)}`);
      });
    const annotated = await series("e2e_annotated_total");
    assert.deepEqual(
      [...new Set(annotated.map((s) => `${s.instance} ${s.path}`))],
      ["127.0.0.1:9100 /stats"],
      JSON.stringify(annotated),
    );
    const named = await series("e2e_named_total");
    assert.deepEqual([...new Set(named.map((s) => `${s.instance} ${s.path}`))], ["127.0.0.1:8080 /metrics"]);

    // Pods of one workload carry the same sidecar: one config hash for both replicas.
    const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: "app=annotated" })).items;
    const injected = new Set(pods.map((p) => p.metadata?.annotations?.["metricspusher.dev/injected"]));
    assert.equal(injected.size, 1, `replicas carry ${[...injected].join(", ")}`);
    const optout = await eventually(
      "optout's pod with its pusher running",
      120_000,
      readyPod(ns, "app=optout", (p) => pusherStatus(p)?.ready === true),
    );
    const env = pusherContainer(optout)?.env ?? [];
    assert.equal(
      env.find((e) => e.name === "SCRAPE_TARGETS"),
      undefined,
      "scrape false: no target, its own metrics only",
    );
    const up = await eventually("optout's own pusher metrics", 120_000, async () => {
      const own = `{__name__=~"knative_lambda_metric_pusher_.+",namespace="${ns}",pod="${optout.metadata?.name}"}`;
      const s = await prometheus.series(own);
      return s.length > 0 ? s : undefined;
    });
    assert.ok(up.length > 0);

    // The controller counts all three as updated without rolling any: their pods came after the MetricsPusher.
    const custom = bed.kubeConfig.makeApiClient(CustomObjectsApi);
    const status = await eventually("status: 3 of 3 workloads updated", 120_000, async () => {
      const mp = (await custom.getNamespacedCustomObject({
        group: "metricspusher.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "metricspushers",
        name: "push",
      })) as { status?: { matchedWorkloads?: number; updatedWorkloads?: number } };
      return mp.status?.matchedWorkloads === 3 && mp.status.updatedWorkloads === 3 ? mp.status : undefined;
    });
    assert.ok(status);

    // A changed annotation: Kubernetes rolls the Deployment, its new pods get the new path, and the controller adds
    // no roll of its own (a stamp would be a second template change).
    await apps.patchNamespacedDeployment(
      {
        namespace: ns,
        name: "annotated",
        body: { spec: { template: { metadata: { annotations: { "prometheus.io/path": "/v2" } } } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await eventually("e2e_annotated_total from /v2", 240_000, async () => {
      const s = await prometheus.series(`e2e_annotated_total{namespace="${ns}",path="/v2"}`);
      return s.length > 0 ? s : undefined;
    });
    const rolled = (await core.listNamespacedPod({ namespace: ns, labelSelector: "app=annotated" })).items;
    const hashes = new Set(
      rolled
        .filter((p) => p.metadata?.annotations?.["prometheus.io/path"] === "/v2")
        .map((p) => p.metadata?.annotations?.["metricspusher.dev/injected"]),
    );
    assert.equal(hashes.size, 1);
    assert.ok(![...hashes].some((h) => injected.has(h)), "the new targets are another config");
    // Let the controller see the rolled pods, then check it stamped nothing.
    await sleep(10_000);
    const d = await apps.readNamespacedDeployment({ namespace: ns, name: "annotated" });
    assert.equal(d.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"], undefined, "no stamp");
    assert.equal(d.metadata?.generation, 2, "one template change: the user's");
  },
);

it(
  "with the operator scaled to 0 new pods come up without the sidecar; back, drift repair rolls them",
  { timeout: 600_000 },
  async () => {
    const ns = await namespaceWithPusher(`drift-${suffix}`, prometheus.port, {});
    await scaleOperator(0);
    try {
      await appDeployment(ns, "late");
      const bare = await eventually(
        "a pod of late Ready without the sidecar",
        180_000,
        readyPod(ns, "app=late", () => true),
      );
      assert.equal(pusherStatus(bare), undefined, "no pusher while the operator is away (failurePolicy Ignore)");
    } finally {
      await scaleOperator(2);
    }
    const rolled = await eventually(
      "late rolled onto a pod with the sidecar",
      300_000,
      readyPod(ns, "app=late", (p) => pusherStatus(p)?.ready === true),
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await operatorReport(ns)}`);
    });
    assert.ok(rolled.metadata?.name);
  },
);

it("an operator upgrade to a new pusher image rolls the matching workloads onto it", { timeout: 600_000 }, async () => {
  const ns = await namespaceWithPusher(`upgrade-${suffix}`, prometheus.port, {});
  await appDeployment(ns, "app");
  await eventually(
    "app Ready with the current pusher",
    180_000,
    readyPod(ns, "app=app", (p) => pusherStatus(p)?.ready === true),
  );
  // The built image under the next version's tag, as a release would bring it.
  const next = `${PUSHER_IMAGE}-next`;
  await bed.ctr(["images", "tag", PUSHER_IMAGE, next]);
  await bed.kubectlRun(["set", "env", "-n", SYSTEM_NS, "deployment/metrics-pusher-operator", `PUSHER_IMAGE=${next}`]);
  try {
    const upgraded = await eventually(
      "app rolled onto the new pusher image",
      360_000,
      readyPod(ns, "app=app", (p) => {
        const containers = [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])];
        return containers.some((c) => c.image === next) && pusherStatus(p)?.ready === true;
      }),
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await operatorReport(ns)}`);
    });
    const events = await core.listNamespacedEvent({ namespace: ns });
    assert.ok(!events.items.some((e) => e.reason === "Pulling"), "the new tag was imported, not pulled");
    assert.ok(upgraded.metadata?.name);
  } finally {
    await bed.kubectlRun(["set", "env", "-n", SYSTEM_NS, "deployment/metrics-pusher-operator", "PUSHER_IMAGE-"]);
  }
});

/** What the operator saw, for whoever reads a failed wait: its logs, the namespace's Events, the MetricsPusher. */
async function operatorReport(ns: string): Promise<string> {
  const safe = (p: Promise<string>): Promise<string> => p.catch((e: Error) => e.message);
  const logs = await safe(
    bed.kubectlRun([
      "logs",
      "-n",
      SYSTEM_NS,
      "-l",
      "app.kubernetes.io/name=metrics-pusher-operator",
      "--tail=30",
      "--prefix",
    ]),
  );
  const events = await safe(bed.kubectlRun(["get", "events", "-n", ns]));
  const mp = await safe(bed.kubectlRun(["get", "metricspushers", "-n", ns, "-o", "yaml"]));
  return `--- operator logs ---\n${logs}\n--- events ---\n${events}\n--- MetricsPusher ---\n${mp}`;
}
