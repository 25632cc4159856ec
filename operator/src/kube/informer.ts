/**
 * A resilient informer: @kubernetes/client-node's `makeInformer` (a list + watch cache) that restarts itself.
 *
 * client-node's ListWatch recovers by itself only from HTTP 410 (Gone) and from a watch the server closes; any other
 * error (connection refused, 403, 500, a failed list) fires its `error` callbacks and the informer stays stopped
 * forever. This wrapper restarts it after a capped exponential backoff with jitter, and resets the backoff once the
 * informer has run without error for a while. A restart resumes the watch from the last resourceVersion; when that is
 * too old the server answers 410 and ListWatch relists (emitting `delete` for objects that vanished meanwhile).
 *
 * Usage (T is the object type, e.g. k8s.V1Pod or MetricsPusher):
 *
 *   const pods = createInformer<V1Pod>({
 *     kc, log, name: "pods",
 *     path: "/api/v1/pods",                        // or "/api/v1/namespaces/<ns>/pods"
 *     list: () => core.listPodForAllNamespaces(),  // must list exactly what `path` watches
 *     labelSelector: "app=x",                      // optional, applied to the watch; apply it in `list` too
 *   });
 *   pods.on("add" | "update" | "delete", (obj) => ...);  // register before start() to see the initial list; off() too
 *   pods.start();                                        // returns at once; never throws
 *   await pods.waitForSync(signal?);                     // resolves after the first successful list
 *   pods.hasSynced(); pods.list(); pods.list("ns"); pods.get("ns", "name");  // namespace "" for cluster-scoped
 *   await pods.stop();                                   // no restart after stop
 *
 * Built like `makeInformer` (a ListWatch over a Watch), except that the Watch aborts a watch request that was still
 * connecting when stop() was called: ListWatch.stop() cannot abort it and would leak it.
 *
 * Objects from the initial list are deserialized by the generated client (dates as Date), objects from watch events
 * are plain JSON (dates as strings): compare only fields you need, never whole objects.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import { ListWatch, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { backoffMs } from "@metrics-pusher/pusher/backoff";
import { apiStatus } from "./errors.ts";

export type InformerEvent = "add" | "update" | "delete";

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  log: Logger;
  /** Used in logs and metrics, e.g. "deployments". */
  name: string;
  /** The watch path, e.g. "/apis/apps/v1/deployments" or "/apis/apps/v1/namespaces/ns/deployments". */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** Backoff after an error: first delay and cap, in milliseconds. Defaults 500 ms and 30 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** After running this long without an error the next error starts again from the first delay. Default 60 s. */
  stableAfterMs?: number;
  /** Called with every error, before the restart is scheduled (e.g. to count it). */
  onError?: (err: unknown) => void;
}

export interface Informer<T extends KubernetesObject> {
  start(): void;
  stop(): Promise<void>;
  list(namespace?: string): T[];
  get(namespace: string, name: string): T | undefined;
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<void>;
  on(event: InformerEvent, fn: (obj: T) => void): void;
  off(event: InformerEvent, fn: (obj: T) => void): void;
  /** How many times the informer restarted after an error (for tests and metrics). */
  restarts(): number;
}

export function createInformer<T extends KubernetesObject>(opts: InformerOptions<T>): Informer<T> {
  const log = opts.log.child({ informer: opts.name });
  const initialMs = opts.backoffInitialMs ?? 500;
  const maxMs = opts.backoffMaxMs ?? 30_000;
  const stableAfterMs = opts.stableAfterMs ?? 60_000;

  let synced = false;
  let syncWaiters: (() => void)[] = [];
  const markSynced = () => {
    if (synced) return;
    synced = true;
    for (const w of syncWaiters) w();
    syncWaiters = [];
  };

  const listFn = async () => {
    const result = await opts.list();
    for (const item of result.items) dropManagedFields(item);
    // ListWatch stores the items right after this promise settles, in the microtask queue; setImmediate runs after
    // that, so hasSynced() turns true only once the cache holds the list and its add callbacks have run.
    setImmediate(markSynced);
    return result;
  };
  const watch = new StoppableWatch(opts.kc);
  const lw = new ListWatch<T>(opts.path, watch, listFn, false, opts.labelSelector);

  let stopped = true;
  let attempt = 0;
  let runningSince = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartCount = 0;

  const run = () => {
    watch.stopped = false;
    runningSince = Date.now();
    // ListWatch.start() reports failures through the error callback; its promise only settles once the watch request
    // is open, and never rejects for API errors.
    lw.start().catch((err: unknown) => onError(err));
  };

  const onError = (err: unknown) => {
    // Aborting the watch on stop() surfaces as an error too.
    if (stopped) return;
    opts.onError?.(err);
    if (Date.now() - runningSince >= stableAfterMs) attempt = 0;
    // Jitter spreads the restarts of many informers after an apiserver outage.
    const delay = backoffMs(attempt, initialMs, maxMs, Math.random);
    attempt++;
    log.warn({ err: describeError(err), attempt, delayMs: delay }, "Informer failed, restarting after backoff");
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopped) return;
      restartCount++;
      run();
    }, delay);
    restartTimer.unref?.();
  };
  lw.on("error", onError);

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      attempt = 0;
      run();
    },
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      restartTimer = undefined;
      watch.stopped = true;
      await lw.stop();
    },
    list(namespace?: string) {
      return [...lw.list(namespace)];
    },
    get(namespace: string, name: string) {
      return lw.get(name, namespace);
    },
    hasSynced: () => synced,
    waitForSync(signal?: AbortSignal) {
      if (synced) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          syncWaiters = syncWaiters.filter((w) => w !== done);
          reject(signal?.reason instanceof Error ? signal.reason : new Error("aborted", { cause: signal?.reason }));
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        syncWaiters.push(done);
      });
    },
    on(event: InformerEvent, fn: (obj: T) => void) {
      lw.on(event, fn);
    },
    off(event: InformerEvent, fn: (obj: T) => void) {
      lw.off(event, fn);
    },
    restarts: () => restartCount,
  };
}

class StoppableWatch extends Watch {
  stopped = false;
  override async watch(...[path, query, callback, done]: Parameters<Watch["watch"]>): Promise<AbortController> {
    const controller = await super.watch(
      path,
      query,
      (phase, obj, raw) => callback(phase, dropManagedFields(obj), raw),
      done,
    );
    if (this.stopped) controller.abort();
    return controller;
  }
}

/**
 * The operator never reads managedFields, and they are often the largest part of a cached object (one entry per
 * field manager): controller-runtime strips them from its caches too.
 */
function dropManagedFields<O>(obj: O): O {
  const meta = (obj as { metadata?: { managedFields?: unknown } } | undefined)?.metadata;
  if (meta && "managedFields" in meta) delete meta.managedFields;
  return obj;
}

function describeError(err: unknown): unknown {
  if (err instanceof Error) {
    return { message: err.message, code: apiStatus(err) ?? (err as { code?: unknown }).code };
  }
  return err;
}
