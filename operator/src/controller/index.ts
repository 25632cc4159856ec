/**
 * The controller: leader election, then (as leader only) informers on the workloads and pods of namespaces with
 * MetricsPushers, a work queue of MetricsPusher keys and the reconciler. The webhook serves on every replica; only
 * the leader writes status and rolls workloads.
 *
 * Wiring (main.ts):
 *   const controllers = startControllers({
 *     kc, config, log, metrics, events,
 *     pushers,                         // the MetricsPusher informer the webhook uses (createInformer, started by main)
 *     namespaceLabels, defaults, settings,   // the same functions/values given to createAdmissionHandler
 *   });
 *   ... on shutdown: await controllers.stop();   // stops the work, then releases the Lease
 */
import { randomBytes } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { MetricsPusher } from "../api/index.ts";
import type { OperatorConfig } from "../config.ts";
import type { Informer } from "../kube/informer.ts";
import { LeaderElector } from "../kube/leader.ts";
import type { EventRecorder } from "../events.ts";
import type { OperatorMetrics } from "../metrics.ts";
import type { MutateSettings } from "../inject/mutate.ts";
import type { SidecarDefaults } from "../inject/sidecar.ts";
import { NamespaceCaches } from "./caches.ts";
import { TokenBucket } from "./ratelimit.ts";
import { Reconciler } from "./reconcile.ts";
import { OPEN_GATE, watchWebhookEndpoints } from "./webhook-endpoints.ts";
import { WorkQueue, type WorkQueueObserver } from "./queue.ts";
import type { Workload, WorkloadKind } from "./workloads.ts";

export interface ControllerDeps {
  kc: KubeConfig;
  config: OperatorConfig;
  log: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder;
  /** The shared MetricsPusher informer; main.ts starts it (the webhook needs it on every replica). */
  pushers: Informer<MetricsPusher>;
  namespaceLabels: (namespace: string) => Readonly<Record<string, string>> | undefined;
  defaults: () => SidecarDefaults;
  settings: MutateSettings;
}

export interface Controllers {
  isLeader(): boolean;
  /** A workload from the leader's caches (namespaces with MetricsPushers); undefined elsewhere. Never reads the API. */
  cachedWorkload(namespace: string, kind: WorkloadKind, name: string): Workload | undefined;
  /** The Lease identity of this process. */
  readonly identity: string;
  stop(): Promise<void>;
}

/** The `controller` label of the reconcile metrics and the `name` of the work queue's, as controller-runtime sets them. */
export const CONTROLLER_NAME = "metricspusher";

/** Workload and pod events are coalesced: a rollout changes dozens of pods within a second. */
const CHANGE_DELAY_MS = 300;

export function startControllers(deps: ControllerDeps): Controllers {
  const { config } = deps;
  const log = deps.log.child({ component: "controller" });
  // Two processes may share a pod name (local runs, tests): the suffix keeps identities unique, as client-go does.
  const identity = `${config.podName}_${randomBytes(4).toString("hex")}`;
  const work = leaderWork(deps, log);

  if (!config.leaderElection) {
    log.warn("Leader election disabled: run a single replica only");
    work.start();
    deps.metrics.leader.set({ name: config.leaseName }, 1);
    return { identity, isLeader: () => true, cachedWorkload: work.cachedWorkload, stop: () => work.stop() };
  }
  const elector = new LeaderElector({
    kc: deps.kc,
    log,
    namespace: config.podNamespace,
    name: config.leaseName,
    identity,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.leaseRenewDeadlineMs,
    retryPeriodMs: config.leaseRetryPeriodMs,
    onStartedLeading: () => {
      deps.metrics.leader.set({ name: config.leaseName }, 1);
      work.start();
    },
    onStoppedLeading: async () => {
      deps.metrics.leader.set({ name: config.leaseName }, 0);
      await work.stop();
    },
  });
  // A standby reports 0 from the start, as client-go's leader election metric does.
  deps.metrics.leader.set({ name: config.leaseName }, 0);
  elector.start();
  return {
    identity,
    isLeader: () => elector.isLeader(),
    cachedWorkload: work.cachedWorkload,
    stop: () => elector.stop(),
  };
}

/** What the leader runs; start() and stop() may alternate as leadership comes and goes. */
function leaderWork(deps: ControllerDeps, log: Logger) {
  const { config, pushers } = deps;
  let running: { stop(): Promise<void>; caches: NamespaceCaches } | undefined;

  const watched = (ns: string | undefined) =>
    ns !== undefined && (config.watchNamespaces.length === 0 || config.watchNamespaces.includes(ns));
  const keyOf = (p: MetricsPusher) => `${p.metadata.namespace}/${p.metadata.name}`;

  const start = () => {
    if (running) return;
    const bucket = new TokenBucket(config.rolloutMaxPerInterval, config.rolloutIntervalMs);
    const abort = new AbortController();
    const caches = new NamespaceCaches({
      kc: deps.kc,
      log,
      onInformerError: (informer) => deps.metrics.informerRestarts.inc({ informer }),
    });
    // In the cluster, rolls wait for the webhook's Service (webhook-endpoints.ts); `queue` is assigned just below.
    const requeueAll = (): void => {
      for (const p of pushers.list()) if (watched(p.metadata.namespace)) queue.addAfter(keyOf(p), CHANGE_DELAY_MS);
    };
    const webhook =
      config.webhookUrl === undefined
        ? watchWebhookEndpoints({
            kc: deps.kc,
            log,
            namespace: config.podNamespace,
            service: config.webhookServiceName,
            onChange: requeueAll,
            onInformerError: (informer) => deps.metrics.informerRestarts.inc({ informer }),
          })
        : OPEN_GATE;
    const reconciler = new Reconciler({
      ...deps,
      log,
      cacheFor: (ns) => caches.ensure(ns),
      bucket,
      webhook,
      signal: abort.signal,
    });
    const queue = new WorkQueue({
      process: async (key) => {
        const end = deps.metrics.reconcileDuration.startTimer({ controller: CONTROLLER_NAME });
        let result;
        try {
          result = await reconciler.reconcile(key);
          deps.metrics.reconciles.inc({ controller: CONTROLLER_NAME, result: "success" });
        } catch (err) {
          deps.metrics.reconciles.inc({ controller: CONTROLLER_NAME, result: "error" });
          deps.metrics.reconcileErrors.inc({ controller: CONTROLLER_NAME });
          throw err;
        } finally {
          end();
        }
        const [ns = ""] = key.split("/");
        // The last MetricsPusher of a namespace is gone: stop caching its workloads and pods.
        if (pushers.list(ns).length === 0) await caches.release(ns);
        return result;
      },
      onError: (key, err, attempt) =>
        log.warn(
          { metricspusher: key, attempt, err: (err as Error).message },
          "Reconcile failed, retrying with backoff",
        ),
      concurrency: 2,
      observer: workQueueMetrics(deps.metrics, CONTROLLER_NAME),
    });
    caches.onChange((ns) => {
      for (const p of pushers.list(ns)) queue.addAfter(keyOf(p), CHANGE_DELAY_MS);
    });

    const enqueue = (p: MetricsPusher) => {
      if (watched(p.metadata.namespace)) queue.add(keyOf(p));
    };
    pushers.on("add", enqueue);
    pushers.on("update", enqueue);
    pushers.on("delete", enqueue);
    const resync = setInterval(() => {
      for (const p of pushers.list()) enqueue(p);
    }, config.resyncPeriodMs);
    resync.unref();

    const self = {
      caches,
      async stop() {
        clearInterval(resync);
        pushers.off("add", enqueue);
        pushers.off("update", enqueue);
        pushers.off("delete", enqueue);
        abort.abort();
        await queue.stop();
        // After the queue stopped, so that no reconcile adds a finalizer back. Bounded: shutdown must not hang on an
        // unreachable apiserver.
        await Promise.race([
          reconciler
            .releaseAllIfUninstalling()
            .catch((err: unknown) => log.warn({ err: (err as Error).message }, "Uninstall check failed")),
          new Promise((r) => setTimeout(r, 5000).unref()),
        ]);
        await caches.stop();
        await webhook.stop();
        log.info("Controller stopped");
      },
    };
    running = self;
    void (async () => {
      await pushers.waitForSync();
      if (running === self) for (const p of pushers.list()) enqueue(p);
    })();
    log.info("Controller started");
  };

  return {
    start,
    cachedWorkload: (namespace: string, kind: WorkloadKind, name: string) =>
      running?.caches.peek(namespace)?.workload(kind, name),
    async stop() {
      const r = running;
      running = undefined;
      await r?.stop();
    },
  };
}

function workQueueMetrics(metrics: OperatorMetrics, name: string): WorkQueueObserver {
  const labels = { name };
  return {
    added: () => metrics.workqueueAdds.inc(labels),
    depth: (keys) => metrics.workqueueDepth.set(labels, keys),
    retried: () => metrics.workqueueRetries.inc(labels),
    waited: (seconds) => metrics.workqueueQueueDuration.observe(labels, seconds),
    worked: (seconds) => metrics.workqueueWorkDuration.observe(labels, seconds),
  };
}
