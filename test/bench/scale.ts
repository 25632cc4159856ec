// Benchmark 5, operator scale on the real control plane: N Deployments in N/10 namespaces, one MetricsPusher per
// namespace. The operator starts with pusher image A and stamps every Deployment; then it is restarted with image B
// (how a default-image change reaches the cluster: an operator upgrade) and the time until every Deployment carries
// the new stamp is measured from outside, by a watch on Deployments, with the operator's RSS from /proc.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Watch,
  type KubeConfig,
  type V1Deployment,
} from "@kubernetes/client-node";
import { Annotations, API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../../operator/src/api/index.ts";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { cpuSeconds, freePort, isAlive, memory, startProcess, type Proc } from "./lib/procs.ts";
import { waitFor, WaitAborted } from "../lib/wait.ts";
import { applyCrds } from "../lib/kube.ts";
import { Better, log, median, MiB, type Row } from "./lib/report.ts";
import { entry, REPO } from "./lib/senders.ts";
import { formatSummary, summariseFile } from "./lib/heapsnapshot.ts";

export const SCALE_TIME_GOAL_S = 15;
export const SCALE_RSS_GOAL_MIB = 200;

/**
 * NODE_OPTIONS of the shipped manifest (config/manager/deployment.yaml): the operator is measured as users run it, so
 * the benchmark reads them from there rather than keeping a copy.
 */
export function shippedOperatorNodeOptions(): string {
  const manifest = readFileSync(join(REPO, "config/manager/deployment.yaml"), "utf8");
  const m = /- name: NODE_OPTIONS\n\s+value: (.+)\n/.exec(manifest);
  if (!m) throw new Error("config/manager/deployment.yaml sets no NODE_OPTIONS");
  return m[1]!.trim().replace(/^"(.*)"$/, "$1");
}
const OPERATOR_NAMESPACE = "metrics-pusher-system";
const DEPLOYMENTS_PER_NAMESPACE = 10;
/**
 * Deployments start stamped with the hash of an earlier configuration, as every workload the operator has rolled
 * once is. The controller leaves an unstamped workload alone while its pods run the current sidecar, and without a
 * kubelet there are no pods; the stamp is what makes it roll them on a config change.
 */
const EARLIER_STAMP = "0123456789abcdef";

export interface ScaleOptions {
  deployments: number;
  /** Image changes measured, each with its own operator restart. */
  runs: number;
  /** Parallel creates while populating the cluster. */
  createConcurrency?: number;
  /** After the measured runs, one more image change with the operator under node --cpu-prof, profile written here. */
  cpuProfileDir?: string;
  /** dist (default, when fresh) or the TypeScript source. */
  prefer?: "dist" | "source";
  /** Extra node flags for the operator (heap limits, `--import` of an experiment). */
  operatorNodeFlags?: readonly string[];
  /** The operator's NODE_OPTIONS; default: the shipped manifest's. */
  operatorNodeOptions?: string;
  /**
   * After the measured runs, one more image change in which the operator writes a heap snapshot here when half of
   * the Deployments are re-stamped; its summary by constructor is returned (not in the figures: the snapshot itself
   * takes memory and time).
   */
  heapSnapshotDir?: string;
  /** An already running control plane (tests share one); else one is started and stopped here. */
  controlPlane?: ControlPlane;
}

export interface ScaleRun {
  /** From the operator's start with the new image until every Deployment carries the new stamp. */
  restampS: number;
  /** From the operator's /readyz answering 200 until the same moment: the reconcile work alone. */
  restampAfterReadyS: number;
  operatorPeakRss: number;
  operatorCpuS: number;
}

export interface ScaleResult {
  rows: Row[];
  /** First stamping of every Deployment by a fresh operator (image A), informative. */
  initialStampS: number;
  populateS: number;
  runs: ScaleRun[];
  floors: Floor[];
  /** Retained size by constructor of the heap under load, when `heapSnapshotDir` was given. */
  heapSummary?: string;
}

/** Memory of a process that only loads `code` and idles: what the operator cannot go below. */
export interface Floor {
  name: string;
  peakRss: number;
  rssAnon: number;
}

/**
 * Bare Node, and Node with @kubernetes/client-node imported (the operator's largest dependency), idle for `idleS`
 * with the operator's NODE_OPTIONS: the floor beside the operator's own figure.
 */
export async function measureOperatorFloors(nodeOptions: string, idleS = 5): Promise<Floor[]> {
  const floors: Floor[] = [];
  const cases = [
    { name: "bare Node", code: "setInterval(() => {}, 1000)" },
    {
      name: "Node + @kubernetes/client-node",
      code: 'await import("@kubernetes/client-node"); setInterval(() => {}, 1000)',
    },
  ];
  for (const c of cases) {
    const proc = startProcess("operator-floor", process.execPath, ["--input-type=module", "-e", c.code], {
      cwd: join(REPO, "operator"),
      env: { NODE_OPTIONS: nodeOptions },
    });
    try {
      await sleep(idleS * 1000);
      if (!isAlive(proc)) throw new Error(`${c.name} exited:\n${proc.tail()}`);
      const mem = memory(proc.pid);
      floors.push({ name: c.name, peakRss: mem.peakRss, rssAnon: mem.rssAnon });
    } finally {
      await proc.kill();
    }
  }
  return floors;
}

/** Deployment stamps as the apiserver reports them, kept current by a watch. */
class StampTracker {
  readonly stamps = new Map<string, string | undefined>();
  private waiters: { check: () => boolean; resolve: (t: number) => void }[] = [];
  private abort: AbortController | undefined;
  private readonly kc: KubeConfig;

  constructor(kc: KubeConfig) {
    this.kc = kc;
  }

  async start(): Promise<void> {
    const apps = this.kc.makeApiClient(AppsV1Api);
    const list = await apps.listDeploymentForAllNamespaces({ labelSelector: "bench=scale" });
    for (const d of list.items) this.update(d);
    this.abort = await new Watch(this.kc).watch(
      "/apis/apps/v1/deployments",
      { labelSelector: "bench=scale", resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (phase: string, obj: V1Deployment) => {
        if (phase === "DELETED") this.stamps.delete(key(obj));
        else if (phase === "ADDED" || phase === "MODIFIED") this.update(obj);
        this.notify();
      },
      (err: unknown) => {
        if (err && this.abort)
          log(`scale: deployment watch ended: ${err instanceof Error ? String(err) : inspect(err)}`);
      },
    );
  }

  stop(): void {
    const a = this.abort;
    this.abort = undefined;
    a?.abort();
  }

  private update(d: V1Deployment): void {
    this.stamps.set(key(d), d.spec?.template?.metadata?.annotations?.[Annotations.configHash]);
  }

  private notify(): void {
    const now = Date.now();
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve(now);
      return false;
    });
  }

  /** Resolves with the time of the watch event that made `check` true (now, if it already holds). */
  when(check: () => boolean): Promise<number> {
    if (check()) return Promise.resolve(Date.now());
    return new Promise((resolve) => this.waiters.push({ check, resolve }));
  }
}

function key(d: V1Deployment): string {
  return `${d.metadata?.namespace}/${d.metadata?.name}`;
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      for (let attempt = 0; ; attempt++) {
        try {
          await fn(item);
          break;
        } catch (err) {
          // A busy apiserver answers 429/5xx now and then; creation must still complete.
          if (attempt >= 5) throw err;
          await sleep(200 * 2 ** attempt);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

function namespaceName(i: number): string {
  return `scale-${String(i).padStart(3, "0")}`;
}

/** Namespaces, one MetricsPusher each, and the Deployments it selects. */
async function populate(kc: KubeConfig, deployments: number, concurrency: number): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const namespaces = Array.from({ length: Math.ceil(deployments / DEPLOYMENTS_PER_NAMESPACE) }, (_, i) =>
    namespaceName(i),
  );
  const ignoreConflict = (err: unknown): void => {
    if ((err as { code?: number }).code !== 409) throw err;
  };
  await pool([OPERATOR_NAMESPACE, ...namespaces], concurrency, (name) =>
    core.createNamespace({ body: { metadata: { name } } }).catch(ignoreConflict),
  );
  await pool(namespaces, concurrency, (namespace) =>
    custom
      .createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        body: {
          apiVersion: API_VERSION,
          kind: KIND,
          metadata: { name: "builders", namespace },
          spec: {
            selector: { matchLabels: { app: "builder" } },
            remoteWrite: { url: "http://prometheus.monitoring.svc:9090/api/v1/write" },
            pushInterval: "30s",
            scrape: { targets: [{ port: 8080 }] },
          },
        },
      })
      .catch(ignoreConflict),
  );
  const items = Array.from({ length: deployments }, (_, i) => ({
    namespace: namespaces[Math.floor(i / DEPLOYMENTS_PER_NAMESPACE)]!,
    name: `builder-${i % DEPLOYMENTS_PER_NAMESPACE}`,
  }));
  await pool(items, concurrency, ({ namespace, name }) =>
    apps
      .createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name, namespace, labels: { bench: "scale", app: "builder" } },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: "builder", instance: name } },
            template: {
              metadata: {
                labels: { app: "builder", instance: name, tier: "build" },
                annotations: { [Annotations.configHash]: EARLIER_STAMP },
              },
              spec: {
                containers: [
                  {
                    name: "builder",
                    image: "registry.example.com/knative-lambda/builder:1.14.2",
                    ports: [{ containerPort: 8080 }],
                    resources: { requests: { cpu: "100m", memory: "128Mi" } },
                  },
                ],
              },
            },
          },
        },
      })
      .catch(ignoreConflict),
  );
}

interface Operator {
  proc: Proc;
  probeUrl: string;
}

async function startOperator(
  cp: ControlPlane,
  image: string,
  prefer: "dist" | "source",
  nodeFlags: readonly string[],
  nodeOptions: string,
  cpuProfileDir?: string,
  heapSnapshotDir?: string,
): Promise<Operator> {
  const [webhookPort, metricsPort, probePort] = [await freePort(), await freePort(), await freePort()];
  const prof = cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`] : [];
  const snap = heapSnapshotDir ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${heapSnapshotDir}`] : [];
  const args = [...nodeFlags, ...prof, ...snap, ...entry("operator", prefer).args];
  const proc = startProcess("operator", process.execPath, args, {
    cwd: REPO,
    env: {
      NODE_OPTIONS: nodeOptions,
      KUBECONFIG: cp.kubeconfigPath,
      PUSHER_IMAGE: image,
      IMAGE_ALLOW_LIST: "bench.local/pusher",
      // High enough that the rate limit never binds: the benchmark measures the operator, not its brake.
      ROLLOUT_MAX_PER_INTERVAL: "1000000",
      ROLLOUT_INTERVAL: "1s",
      LEADER_ELECTION: "false",
      BIND_ADDRESS: "127.0.0.1",
      WEBHOOK_PORT: String(webhookPort),
      METRICS_PORT: String(metricsPort),
      PROBE_PORT: String(probePort),
      WEBHOOK_URL: `https://127.0.0.1:${webhookPort}/mutate-v1-pod`,
      POD_NAMESPACE: OPERATOR_NAMESPACE,
      POD_NAME: "bench-operator",
      LOG_LEVEL: "warn",
    },
  });
  return { proc, probeUrl: `http://127.0.0.1:${probePort}/readyz` };
}

/** Time until /readyz answers 200, watched alongside the stamping. */
async function readyAt(op: Operator, timeoutMs: number): Promise<number> {
  await waitFor(
    async () => {
      if (!isAlive(op.proc)) throw new WaitAborted(`operator exited:\n${op.proc.tail()}`);
      const res = await fetch(op.probeUrl, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.status === 200 ? true : undefined;
    },
    { timeoutMs: timeoutMs, intervalMs: 100, message: "the operator to be ready" },
  );
  return Date.now();
}

/** Waits until every tracked Deployment's stamp satisfies `done`, failing early when the operator dies. */
async function stampedBy(
  tracker: StampTracker,
  op: Operator,
  deployments: number,
  done: (stamp: string | undefined) => boolean,
  timeoutMs: number,
): Promise<number> {
  const all = (): boolean => tracker.stamps.size >= deployments && [...tracker.stamps.values()].every(done);
  const died = op.proc.exited.then(() => {
    throw new Error(`operator exited while stamping:\n${op.proc.tail()}`);
  });
  const timeout = sleep(timeoutMs, undefined, { ref: false }).then(() => {
    const ok = [...tracker.stamps.values()].filter(done).length;
    throw new Error(
      `timed out after ${timeoutMs / 1000} s: ${ok} of ${deployments} Deployments stamped\n${op.proc.tail()}`,
    );
  });
  return Promise.race([tracker.when(all), died, timeout]);
}

export async function benchScale(opts: ScaleOptions): Promise<ScaleResult> {
  const cp = opts.controlPlane ?? (await startControlPlane({ controllers: false }));
  const tracker = new StampTracker(cp.kubeConfig);
  const runs: ScaleRun[] = [];
  let initialStampS: number;
  let populateS: number;
  const timeoutMs = Math.max(120_000, opts.deployments * 200);
  const nodeOptions = opts.operatorNodeOptions ?? shippedOperatorNodeOptions();
  try {
    await applyCrds(cp);
    const t0 = Date.now();
    await populate(cp.kubeConfig, opts.deployments, opts.createConcurrency ?? 16);
    populateS = (Date.now() - t0) / 1000;
    log(
      `scale: created ${opts.deployments} Deployments in ${Math.ceil(opts.deployments / DEPLOYMENTS_PER_NAMESPACE)} namespaces in ${populateS.toFixed(1)} s`,
    );
    await tracker.start();

    let op = await startOperator(
      cp,
      "bench.local/pusher:a",
      opts.prefer ?? "dist",
      opts.operatorNodeFlags ?? [],
      nodeOptions,
    );
    try {
      const started = Date.now();
      const at = await stampedBy(
        tracker,
        op,
        opts.deployments,
        (s) => s !== undefined && s !== EARLIER_STAMP,
        timeoutMs,
      );
      initialStampS = (at - started) / 1000;
      log(`scale: a fresh operator stamped ${opts.deployments} Deployments in ${initialStampS.toFixed(1)} s`);
    } finally {
      await op.proc.stop(20_000);
    }

    const extra = [...(opts.cpuProfileDir ? ["cpu"] : []), ...(opts.heapSnapshotDir ? ["heap"] : [])];
    for (let run = 0; run < opts.runs + extra.length; run++) {
      const profiled = run >= opts.runs;
      const kind = extra[run - opts.runs];
      const old = new Set(tracker.stamps.values());
      const image = `bench.local/pusher:b${run}`;
      op = await startOperator(
        cp,
        image,
        opts.prefer ?? "dist",
        opts.operatorNodeFlags ?? [],
        nodeOptions,
        kind === "cpu" ? opts.cpuProfileDir : undefined,
        kind === "heap" ? opts.heapSnapshotDir : undefined,
      );
      try {
        const started = Date.now();
        const ready = readyAt(op, timeoutMs).catch(() => Number.NaN);
        let peak = 0;
        const sampler = setInterval(() => {
          if (isAlive(op.proc)) peak = Math.max(peak, memory(op.proc.pid).peakRss);
        }, 250);
        if (kind === "heap") {
          // Under load: half of the Deployments re-stamped, the other half being patched.
          const half = (): boolean =>
            [...tracker.stamps.values()].filter((s) => s !== undefined && !old.has(s)).length >= opts.deployments / 2;
          void tracker.when(half).then(() => {
            if (isAlive(op.proc)) process.kill(op.proc.pid, "SIGUSR2");
          });
        }
        let at: number;
        try {
          at = await stampedBy(tracker, op, opts.deployments, (s) => s !== undefined && !old.has(s), timeoutMs);
        } finally {
          clearInterval(sampler);
        }
        const mem = memory(op.proc.pid);
        const r: ScaleRun = {
          restampS: (at - started) / 1000,
          restampAfterReadyS: (at - (await ready)) / 1000,
          operatorPeakRss: Math.max(peak, mem.peakRss),
          operatorCpuS: cpuSeconds(op.proc.pid),
        };
        if (profiled) {
          log(`scale: ${kind}-profiled image change (not in the figures) took ${r.restampS.toFixed(1)} s`);
          continue;
        }
        runs.push(r);
        log(
          `scale run ${run + 1}/${opts.runs}: image change → ${opts.deployments} Deployments re-stamped in ${r.restampS.toFixed(1)} s ` +
            `(${r.restampAfterReadyS.toFixed(1)} s after ready), operator peak RSS ${(r.operatorPeakRss / MiB).toFixed(0)} MiB, CPU ${r.operatorCpuS.toFixed(1)} s`,
        );
      } finally {
        await op.proc.stop(20_000);
      }
    }
  } finally {
    tracker.stop();
    if (!opts.controlPlane) await cp.stop();
  }
  let heapSummary: string | undefined;
  if (opts.heapSnapshotDir) {
    const dir = opts.heapSnapshotDir;
    const file = readdirSync(dir).find((f) => f.endsWith(".heapsnapshot"));
    heapSummary = file
      ? `${formatSummary(summariseFile(join(dir, file)), 30)}\n  (${join(dir, file)})`
      : "no heap snapshot written";
  }
  const floors = await measureOperatorFloors(nodeOptions);
  return {
    rows: scaleRows(runs, opts.deployments, initialStampS, floors, nodeOptions),
    initialStampS,
    populateS,
    runs,
    floors,
    heapSummary,
  };
}

export function scaleRows(
  runs: readonly ScaleRun[],
  deployments: number,
  initialStampS: number,
  floors: readonly Floor[] = [],
  nodeOptions = "",
): Row[] {
  const t = median(runs.map((r) => r.restampS));
  const rss = median(runs.map((r) => r.operatorPeakRss)) / MiB;
  return [
    {
      bench: "scale",
      metric: `image change → ${deployments} Deployments re-stamped`,
      unit: "s",
      better: Better.lower,
      ours: t,
      goal: { text: `≤ ${SCALE_TIME_GOAL_S} s`, met: t <= SCALE_TIME_GOAL_S },
      runs: runs.map((r) => r.restampS),
    },
    {
      bench: "scale",
      metric: "  of which after /readyz",
      unit: "s",
      better: Better.lower,
      ours: median(runs.map((r) => r.restampAfterReadyS)),
    },
    {
      bench: "scale",
      metric: `operator peak RSS (NODE_OPTIONS=${nodeOptions || "none"})`,
      unit: "MiB",
      better: Better.lower,
      ours: rss,
      goal: { text: `≤ ${SCALE_RSS_GOAL_MIB} MiB`, met: rss <= SCALE_RSS_GOAL_MIB },
      runs: runs.map((r) => r.operatorPeakRss / MiB),
    },
    ...floors.flatMap((f): Row[] => [
      {
        bench: "scale",
        metric: `  floor: ${f.name}, peak RSS`,
        unit: "MiB",
        better: Better.lower,
        ours: f.peakRss / MiB,
      },
      {
        bench: "scale",
        metric: `  floor: ${f.name}, private`,
        unit: "MiB",
        better: Better.lower,
        ours: f.rssAnon / MiB,
      },
    ]),
    {
      bench: "scale",
      metric: "first stamping by a fresh operator",
      unit: "s",
      better: Better.lower,
      ours: initialStampS,
    },
  ];
}
