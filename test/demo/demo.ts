// `make demo`: the whole product on one machine, on a real node. The node bed of the tests (test/node/bed.ts: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd with a kubelet and kube-proxy, CoreDNS) with the
// images `make images` built; the operator installed as the README says (`kubectl apply -k config/default`); a
// Prometheus on the node's bridge standing in for your receiver; and config/samples applied unchanged. The pods run
// in containerd: the demo shows them (`kubectl get pods`, `kubectl logs -c metrics-pusher`) and the series that
// arrive in Prometheus. DEMO_EXIT=1 stops after that (exit 0 only when the series arrived); otherwise everything stays
// up until Ctrl-C. Needs root (the node's containerd, kubelet and network), as `make test` does.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { AppsV1Api, CoreV1Api, type V1Container, type V1Pod, type V1Volume } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { Annotations, SIDECAR_CONTAINER_NAME } from "../../operator/src/api/index.ts";
import { versions } from "../controlplane/harness.ts";
import { startNodeBed, type NodeBed } from "../node/bed.ts";
import { startPrometheus, type Receiver, type VectorSample } from "../peers/receivers.ts";
import { waitFor, WaitAborted } from "../lib/wait.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const PUSHER_IMAGE = `ghcr.io/metrics-pusher/pusher:${VERSION}`;
const EXIT_AFTER_SERIES = process.env.DEMO_EXIT === "1" || process.env.DEMO_EXIT === "true";
/** Every wait on the cluster; a busy 2-core machine needs most of it. */
const WAIT_MS = Number(process.env.DEMO_TIMEOUT_MS ?? 180_000);
const SYSTEM_NAMESPACE = "metrics-pusher-system";
const SAMPLES_NAMESPACE = "builds";
const PUSHER_NAME = "builders";
const DEPLOYMENT_NAME = "builder";
/** config/samples' receiver, http://prometheus.monitoring.svc:9090: a Service without selector, its endpoint the
 * Prometheus on the node's bridge. */
const RECEIVER = { namespace: "monitoring", name: "prometheus", port: 9090 } as const;

// ---------------------------------------------------------------------------------------------------------------
// Output: a line per step with the elapsed time, and a reminder while a step takes long

const startedAt = performance.now();
const elapsed = (): string => `${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)}s`;
const say = (line = ""): void => void process.stdout.write(`${line}\n`);
const progress = (line: string): void => say(`[${elapsed()}] ${line}`);

/** Ends a wait at once (a pod failed for good); its message says why. */
class DemoError extends WaitAborted {}

async function step<T>(title: string, fn: () => Promise<T>, done?: (v: T) => string): Promise<T> {
  const t = performance.now();
  progress(`▸ ${title}...`);
  const ticker = setInterval(
    () =>
      progress(
        `  … still ${title.charAt(0).toLowerCase()}${title.slice(1)} (${Math.round((performance.now() - t) / 1000)}s)`,
      ),
    15_000,
  );
  ticker.unref();
  try {
    const v = await fn();
    const took = ((performance.now() - t) / 1000).toFixed(1);
    progress(`✓ ${done ? done(v) : title} (${took}s)`);
    return v;
  } catch (err) {
    progress(`✗ ${title} failed`);
    throw err;
  } finally {
    clearInterval(ticker);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What the demo started, stopped in reverse order

interface Started {
  name: string;
  /** Shown when stopped; demo.test.ts checks that every one is gone afterwards. */
  pids: () => string;
  stop: () => Promise<void>;
}
const started: Started[] = [];
let stopping: Promise<void> | undefined;
function stopAll(): Promise<void> {
  // Some of the stops wait on unreferenced timers: keep the process alive until every one is done.
  const keepAlive = setInterval(() => {}, 1000);
  stopping ??= (async () => {
    for (const s of [...started].reverse()) {
      const t = performance.now();
      try {
        await s.stop();
        progress(`stopped ${s.name} (${s.pids()}) in ${((performance.now() - t) / 1000).toFixed(1)}s`);
      } catch (err) {
        progress(`stopping ${s.name} failed: ${(err as Error).message}`);
      }
    }
  })().finally(() => clearInterval(keepAlive));
  return stopping;
}

// ---------------------------------------------------------------------------------------------------------------
// kubectl (the one built with the control plane), as a user types it

let bed: NodeBed | undefined;

function kubectl(args: string[], input?: string): Promise<string> {
  const b = bed;
  if (b === undefined) return Promise.reject(new DemoError("no node yet"));
  return new Promise((res, rej) => {
    const child = execFile(
      b.kubectl,
      args,
      { cwd: ROOT, env: { ...process.env, KUBECONFIG: b.kubeconfigPath }, maxBuffer: 16 << 20, timeout: 120_000 },
      (err, stdout, stderr) =>
        err ? rej(new DemoError(`kubectl ${args.join(" ")}: ${stderr.trim() || err.message}`)) : res(stdout),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Shows a kubectl command and what it printed, as in a terminal. */
async function show(args: string[]): Promise<void> {
  say(`$ kubectl ${args.join(" ")}`);
  say((await kubectl(args)).trimEnd());
  say();
}

// ---------------------------------------------------------------------------------------------------------------
// Showing containers, readably

function describeContainers(
  title: string,
  spec: { initContainers?: V1Container[]; containers?: V1Container[]; volumes?: V1Volume[] } | undefined,
): string[] {
  const lines = [title];
  const groups: Array<[string, V1Container[] | undefined]> = [
    ["initContainers", spec?.initContainers],
    ["containers", spec?.containers],
  ];
  for (const [group, list] of groups) {
    if (!list || list.length === 0) continue;
    lines.push(`  ${group}:`);
    for (const c of list) {
      const ports = (c.ports ?? []).map((p) => `port ${p.containerPort}`).join(", ");
      const native = c.restartPolicy === "Always" ? "native sidecar (restartPolicy: Always)" : "";
      lines.push(`    - ${c.name}  ${c.image}${ports ? `  ${ports}` : ""}${native ? `  ${native}` : ""}`);
      if (c.name !== SIDECAR_CONTAINER_NAME) continue;
      const width = Math.max(...(c.env ?? []).map((e) => e.name.length));
      for (const e of c.env ?? []) {
        const from = e.valueFrom?.fieldRef
          ? `← downward API ${e.valueFrom.fieldRef.fieldPath}`
          : e.valueFrom
            ? `← ${Object.keys(e.valueFrom).join(",")}`
            : `= ${e.value}`;
        lines.push(`        env ${e.name.padEnd(width)} ${from}`);
      }
      for (const m of c.volumeMounts ?? []) {
        const v = spec?.volumes?.find((x) => x.name === m.name);
        const src = v?.secret
          ? `Secret ${v.secret.secretName}${v.secret.optional ? " (optional)" : ""}`
          : v?.emptyDir
            ? "emptyDir"
            : "volume";
        lines.push(`        mount ${m.mountPath} ← ${src}${m.readOnly ? ", read-only" : ""}`);
      }
      const sc = c.securityContext;
      if (sc) {
        const parts = [
          sc.runAsUser !== undefined ? `runAsUser ${sc.runAsUser}` : "",
          sc.runAsNonRoot ? "runAsNonRoot" : "",
          sc.readOnlyRootFilesystem ? "readOnlyRootFilesystem" : "",
          sc.allowPrivilegeEscalation === false ? "no privilege escalation" : "",
          sc.capabilities?.drop?.length ? `drop ${sc.capabilities.drop.join(",")}` : "",
          sc.seccompProfile?.type ? `seccomp ${sc.seccompProfile.type}` : "",
        ].filter(Boolean);
        lines.push(`        security ${parts.join(", ")}`);
      }
      const r = c.resources;
      if (r) {
        const fmt = (o: Record<string, string> | undefined): string =>
          Object.entries(o ?? {})
            .map(([k, v]) => `${k} ${v}`)
            .join(", ");
        lines.push(`        resources requests ${fmt(r.requests) || "-"}; limits ${fmt(r.limits) || "-"}`);
      }
    }
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// The series table

const LABEL_COLUMNS = ["job", "instance", "namespace", "pod"] as const;

function formatValue(name: string, v: number): string {
  // The heartbeat is a Unix time in seconds: a date says more.
  if (/heartbeat|timestamp_seconds/.test(name) && v > 1e9)
    return `${v.toFixed(3)} (${new Date(v * 1000).toISOString().slice(11, 19)}Z)`;
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

function seriesTable(rows: VectorSample[]): string[] {
  const cells = rows.map((r) => {
    const { __name__: name = "", ...labels } = r.metric;
    const other = Object.entries(labels)
      .filter(([k]) => !(LABEL_COLUMNS as readonly string[]).includes(k))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    const value = formatValue(name, r.value);
    return [name, ...LABEL_COLUMNS.map((k) => labels[k] ?? ""), other, value];
  });
  const header = ["SERIES", ...LABEL_COLUMNS, "OTHER LABELS", "VALUE"];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    `  ${c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join("  ")}`;
  return [line(header), ...cells.map(line)];
}

// ---------------------------------------------------------------------------------------------------------------
// Pods

/** Running, every container ready (a native sidecar is an init container that keeps running). */
const allReady = (p: V1Pod): boolean =>
  p.metadata?.deletionTimestamp === undefined &&
  p.status?.phase === "Running" &&
  [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])].every((c) => c.ready) &&
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

const hasPusher = (p: V1Pod): boolean =>
  [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].some((c) => c.name === SIDECAR_CONTAINER_NAME);

/** Why a pod cannot become ready, when the kubelet says so for good (a crash loop, an image it cannot find). */
function stuck(p: V1Pod): string | undefined {
  for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
    const reason = c.state?.waiting?.reason;
    if (reason === "CrashLoopBackOff" || reason === "ErrImageNeverPull" || reason === "CreateContainerConfigError")
      return `container ${c.name} of Pod ${p.metadata?.name}: ${reason} ${c.state?.waiting?.message ?? ""}`.trim();
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const SHOWN_PUSHER_SERIES = ["heartbeat", "uptime_seconds", "system_memory_sys_bytes", "system_memory_alloc_bytes"];
let exitCode = 0;
let interrupted = false;

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    say(`\n${signal}: stopping everything the demo started (the node bed restores the host)...`);
    void stopAll().then(() => {
      say("Stopped. Bye.");
      process.exit(exitCode === 0 && EXIT_AFTER_SERIES ? 130 : exitCode);
    });
  });
}

try {
  await main();
} catch (err) {
  if (!interrupted) {
    exitCode = 1;
    const message =
      err instanceof Error ? (process.env.DEMO_DEBUG ? (err.stack ?? err.message) : err.message) : String(err);
    say(`\nDemo FAILED: ${message}`);
    if (bed !== undefined) {
      // What the cluster saw, before the bed goes with its logs.
      for (const args of [
        ["get", "pods", "-A", "-o", "wide"],
        ["get", "events", "-n", SAMPLES_NAMESPACE, "--sort-by=.metadata.creationTimestamp"],
        [
          "logs",
          "-n",
          SYSTEM_NAMESPACE,
          "-l",
          "app.kubernetes.io/name=metrics-pusher-operator",
          "--tail=20",
          "--prefix",
        ],
      ])
        await show(args).catch((e: Error) => say(`(kubectl ${args[0]}: ${e.message})`));
    }
    await stopAll();
    process.exit(exitCode);
  }
}

async function main(): Promise<void> {
  say(`metrics-pusher demo: a MetricsPusher makes the operator inject the pusher into a builder's pods; the pusher's`);
  say(`and the builder's metrics arrive in Prometheus by Remote-Write. A real node on this machine runs the pods; no`);
  say(`image is pulled and nothing leaves the machine.`);
  say(EXIT_AFTER_SERIES ? "(DEMO_EXIT=1: stops once the series arrived.)" : "(Stays up until Ctrl-C.)");
  say();

  // 1. The node, then Prometheus on its bridge.
  const nodeBed = await step(
    `Starting a node (Kubernetes v${versions().KUBERNETES_VERSION}: control plane, containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS; built first if needed)`,
    () =>
      startNodeBed({
        log: (line) => {
          if (/^\[(build|node|cleanup)\]/.test(line) || line.includes("exited unexpectedly")) progress(`  ${line}`);
        },
      }),
    (b) => `node ${b.nodeName} Ready in ${b.startupSeconds}s, images imported: ${b.images.join(", ")}`,
  );
  bed = nodeBed;
  const bedPids = Object.entries(nodeBed.pids)
    .map(([name, pid]) => `${name} pid ${pid}`)
    .join(", ");
  started.push({ name: "the node bed", pids: () => bedPids, stop: () => nodeBed.stop() });
  if (!nodeBed.images.includes(PUSHER_IMAGE))
    throw new DemoError(`${PUSHER_IMAGE} is not on the node: run make images (make demo does)`);

  const prometheus: Receiver = await step(
    `Starting Prometheus 2.42 on the node's bridge (${nodeBed.bridgeIp}), standing in for your receiver`,
    () => startPrometheus({ host: nodeBed.bridgeIp }),
    (p) => `Prometheus ready at ${p.url}`,
  );
  started.push({ name: "Prometheus", pids: () => `pid ${prometheus.pid}`, stop: () => prometheus.stop() });
  const core = nodeBed.cp.kubeConfig.makeApiClient(CoreV1Api);
  const apps = nodeBed.cp.kubeConfig.makeApiClient(AppsV1Api);

  // 2. The operator, as the README installs it.
  await step(
    "Installing the operator: kubectl apply -k config/default (CRD, RBAC, webhook, 2 replicas)",
    async () => {
      await kubectl(["apply", "-k", join(ROOT, "config/default")]);
      await waitFor(
        async () => {
          const d = await apps.readNamespacedDeployment({
            namespace: SYSTEM_NAMESPACE,
            name: "metrics-pusher-operator",
          });
          return d.status?.readyReplicas === 2;
        },
        { timeoutMs: WAIT_MS, intervalMs: 1000, message: "the operator Deployment with 2 ready replicas" },
      );
    },
    () => "operator running, 2 replicas ready",
  );
  await show(["get", "pods", "-n", SYSTEM_NAMESPACE]);

  // 3. The receiver the sample names, then the sample: its MetricsPusher first, its Deployment once the webhook injects.
  await step(
    `Pointing ${RECEIVER.name}.${RECEIVER.namespace}.svc:${RECEIVER.port} (config/samples' receiver) at that Prometheus`,
    async () => {
      await core.createNamespace({ body: { metadata: { name: RECEIVER.namespace } } });
      await core.createNamespacedService({
        namespace: RECEIVER.namespace,
        body: {
          metadata: { name: RECEIVER.name },
          spec: { ports: [{ name: "http", port: RECEIVER.port, targetPort: prometheus.port }] },
        },
      });
      await core.createNamespacedEndpoints({
        namespace: RECEIVER.namespace,
        body: {
          metadata: { name: RECEIVER.name },
          subsets: [{ addresses: [{ ip: nodeBed.bridgeIp }], ports: [{ name: "http", port: prometheus.port }] }],
        },
      });
    },
    () => `Service ${RECEIVER.namespace}/${RECEIVER.name} without selector → ${nodeBed.bridgeIp}:${prometheus.port}`,
  );

  const docs = parseAllDocuments(await kubectl(["kustomize", join(ROOT, "config/samples")])).map(
    (d) =>
      d.toJS() as {
        kind?: string;
        metadata?: { name?: string };
        spec?: { template?: { metadata?: object; spec?: object } };
      },
  );
  const deployment = docs.find((d) => d.kind === "Deployment" && d.metadata?.name === DEPLOYMENT_NAME);
  if (!deployment?.spec?.template) throw new DemoError(`config/samples holds no Deployment ${DEPLOYMENT_NAME}`);
  const toYaml = (objs: object[]): string => objs.map((o) => stringify(o)).join("---\n");
  say("config/samples/ is applied unchanged, in two parts: everything but the Deployment first, and the Deployment");
  say("once a dry run of its pod comes back injected. The webhook fails open, so a pod admitted before the webhook");
  say("knows the MetricsPusher would start without the sidecar (and be rolled by drift repair a little later).");
  say();
  await step(
    `Applying config/samples without the Deployment (Namespace ${SAMPLES_NAMESPACE}, MetricsPusher ${PUSHER_NAME})`,
    async () => {
      await kubectl(["apply", "-f", "-"], toYaml(docs.filter((d) => d !== deployment)));
      const template = deployment.spec!.template!;
      await waitFor(
        async () => {
          const probe = await core.createNamespacedPod({
            namespace: SAMPLES_NAMESPACE,
            dryRun: "All",
            body: { metadata: { ...template.metadata, name: "dry-run" }, spec: template.spec } as V1Pod,
          });
          return hasPusher(probe);
        },
        { timeoutMs: WAIT_MS, intervalMs: 1000, message: "a dry run of the builder's pod to come back injected" },
      );
    },
    () => "the webhook injects the builder's pod (server-side dry run)",
  );

  const pod = await step(
    `Applying the Deployment ${DEPLOYMENT_NAME}; waiting until its pod runs with every container ready`,
    async () => {
      await kubectl(["apply", "-f", "-"], toYaml([deployment]));
      return waitFor(
        async () => {
          const pods = await core.listNamespacedPod({
            namespace: SAMPLES_NAMESPACE,
            labelSelector: `app.kubernetes.io/name=${DEPLOYMENT_NAME}`,
          });
          for (const p of pods.items) {
            const why = stuck(p);
            if (why) throw new DemoError(why);
          }
          return pods.items.find((p) => allReady(p) && hasPusher(p));
        },
        { timeoutMs: WAIT_MS, intervalMs: 1000, message: `a pod of ${DEPLOYMENT_NAME} Running, every container ready` },
      );
    },
    (p) =>
      `Pod ${p.metadata?.name} running with the sidecar: ${Annotations.injected}=${p.metadata?.annotations?.[Annotations.injected]}`,
  );
  const podName = pod.metadata?.name ?? "";

  // 4. What happened, as kubectl shows it.
  say();
  await show(["get", "pods", "-n", SAMPLES_NAMESPACE, "-o", "wide"]);
  await show(["get", "mp", "-n", SAMPLES_NAMESPACE]);
  const dep = await apps.readNamespacedDeployment({ namespace: SAMPLES_NAMESPACE, name: DEPLOYMENT_NAME });
  say(`== Before: the pod template of Deployment ${SAMPLES_NAMESPACE}/${DEPLOYMENT_NAME}`);
  for (const l of describeContainers("", dep.spec?.template.spec).slice(1)) say(l);
  say();
  say(`== After: Pod ${SAMPLES_NAMESPACE}/${podName}, as the webhook admitted it`);
  say(`  annotation ${Annotations.injected}: ${pod.metadata?.annotations?.[Annotations.injected]}`);
  for (const l of describeContainers("", pod.spec).slice(1)) say(l);
  say();

  // 5. Some traffic for the builder to count (like the example app it stands for, it has no http_requests_total before
  // its first request), then the series in Prometheus and the pusher's own log.
  const podIp = pod.status?.podIP ?? "";
  await step(
    `Sending the builder 5 requests to / and 2 to /err (from this host to its pod address ${podIp})`,
    async () => {
      for (const path of ["/", "/", "/", "/", "/", "/err", "/err"]) {
        const r = await fetch(`http://${podIp}:8080${path}`, { signal: AbortSignal.timeout(10_000) });
        await r.arrayBuffer();
      }
    },
    () => "7 requests answered",
  );
  const builderJob = "builder";
  const rows = await step(
    "Waiting for the pusher's own series and the builder's scraped series in Prometheus",
    () =>
      waitFor(
        async () => {
          const own = await prometheus.query(
            `{job="metrics-pusher", pod="${podName}", __name__=~"knative_lambda_metric_pusher_(${SHOWN_PUSHER_SERIES.join("|")})"}`,
          );
          const scraped = await prometheus.query(`{job="${builderJob}", pod="${podName}"}`);
          const missing = [
            own.some((s) => s.metric.__name__ === "knative_lambda_metric_pusher_heartbeat")
              ? ""
              : "the pusher's heartbeat",
            scraped.some((s) => s.metric.__name__ === "up" && s.value === 1) ? "" : `up{job="${builderJob}"} == 1`,
            scraped.some((s) => s.metric.__name__ === "http_requests_total") ? "" : "the builder's http_requests_total",
          ].filter(Boolean);
          if (missing.length > 0)
            throw new Error(`${own.length + scraped.length} series so far; missing ${missing.join(", ")}`);
          return { own, scraped };
        },
        {
          timeoutMs: WAIT_MS,
          intervalMs: 1000,
          message: 'knative_lambda_metric_pusher_heartbeat and up/http_requests_total of job="builder" in Prometheus',
        },
      ),
    (r) =>
      `series arrived in Prometheus (${r.own.length} of the pusher's shown below, ${r.scraped.length} of the builder's)`,
  );
  const allOwn = await prometheus.query(`{job="metrics-pusher", pod="${podName}"}`);
  const byName = (a: VectorSample, b: VectorSample): number =>
    a.metric.__name__! < b.metric.__name__! ? -1 : a.metric.__name__! > b.metric.__name__! ? 1 : 0;
  say();
  say(
    `== Series in Prometheus (${prometheus.url}): the pusher's own (${rows.own.length} of its ${allOwn.length} shown) and the builder's scraped /metrics (all ${rows.scraped.length})`,
  );
  for (const l of seriesTable([...rows.own.sort(byName), ...rows.scraped.sort(byName)])) say(l);
  say();
  await show(["logs", "-n", SAMPLES_NAMESPACE, podName, "-c", SIDECAR_CONTAINER_NAME, "--tail=5"]);
  say(
    `Series arrived: ${allOwn.length} from the pusher itself (job="metrics-pusher"), ${rows.scraped.length} scraped from the builder (job="${builderJob}").`,
  );

  if (EXIT_AFTER_SERIES) {
    say();
    progress("DEMO_EXIT=1: stopping everything the demo started");
    await stopAll();
    say(`Demo OK in ${elapsed().trim()}.`);
    process.exit(0);
  }

  // 6. Up until Ctrl-C.
  const q = encodeURIComponent(`{job="${builderJob}"}`);
  say();
  say(`Everything is running (demo pid ${process.pid}). In another shell:`);
  say();
  say(`  export KUBECONFIG=${nodeBed.kubeconfigPath}`);
  say(`  alias kubectl=${nodeBed.kubectl}`);
  const tryThese: Array<[string, string]> = [
    [`kubectl get pods -n ${SAMPLES_NAMESPACE}`, "READY 2/2: the builder and its native sidecar"],
    [
      `kubectl logs -n ${SAMPLES_NAMESPACE} deploy/${DEPLOYMENT_NAME} -c ${SIDECAR_CONTAINER_NAME} -f`,
      "the pusher's JSON log",
    ],
    [`kubectl describe mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE}`, "conditions, Events"],
    [
      `kubectl patch mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE} --type merge -p '{"spec":{"externalLabels":{"cluster":"demo","team":"you"}}}'`,
      "",
    ],
    [
      `kubectl get rs,pods -n ${SAMPLES_NAMESPACE} -w`,
      "the rollout: a new ReplicaSet whose pod carries the new config",
    ],
    [`kubectl get events -n ${SAMPLES_NAMESPACE} -w`, "RolloutTriggered, Injected"],
    [`kubectl delete mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE}`, "rolls the sidecar away"],
  ];
  for (const [command, comment] of tryThese)
    say(`  ${command}${comment ? `${" ".repeat(Math.max(1, 48 - command.length))}# ${comment}` : ""}`);
  say();
  say(`  Prometheus:        ${prometheus.url}/graph?g0.expr=${q}&g0.tab=1`);
  say(`  Logs of the node:  ${join(nodeBed.cp.dir, "*.log")}, ${join(nodeBed.stateDir, "*.log")}`);
  say();
  say("Ctrl-C stops everything and restores the host.");
  while (!interrupted) await sleep(1000);
}
