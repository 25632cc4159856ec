// Asynchronous Kubernetes Event recorder. emit() never blocks or throws: the admission answer must not wait for the
// apiserver. Repeats of the same event within DEDUP_WINDOW_MS bump `count` on the existing Event (as client-go's
// recorder does) instead of flooding etcd; new Events are rate-limited per namespace and reason (a token bucket,
// suppressed ones counted), so that whoever can reach the webhook cannot fill a namespace with Events. Callers only
// name objects the informer caches know (admission.ts), and quote text taken from a request (quote()). The webhook
// never calls it for dry-run requests (sideEffects NoneOnDryRun).
import { randomBytes } from "node:crypto";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { CoreV1Event, KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { API_VERSION, KIND, OPERATOR_COMPONENT } from "./api/index.ts";
import type { EventReason, EventType, MetricsPusher } from "./api/index.ts";
import { TokenBucket } from "./controller/ratelimit.ts";
import type { OperatorMetrics } from "./metrics.ts";

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string | undefined;
}

/** The apiserver calls the recorder needs; a fake in tests. */
export interface EventSink {
  create(namespace: string, event: CoreV1Event): Promise<void>;
  /** Merge-patches count/lastTimestamp of an existing Event. */
  bump(namespace: string, name: string, count: number, lastTimestamp: Date): Promise<void>;
}

export interface EventRecorder {
  emit(target: ObjectRef, type: EventType, reason: EventReason, message: string): void;
  /** Resolves when everything queued so far was written (or failed). */
  flush(): Promise<void>;
  /** Drops what is left after a bounded flush. */
  stop(timeoutMs?: number): Promise<void>;
}

/** The operator's name as Events give it: the name of its Deployment, field manager and pods' app label. */
export const EVENT_COMPONENT = OPERATOR_COMPONENT;
export const MAX_QUEUE = 1000;
export const DEDUP_WINDOW_MS = 10 * 60_000;
export const BUMP_INTERVAL_MS = 10_000;
/** New Events per namespace and reason: a burst of this many, then one per EVENT_REFILL_MS (client-go's spam filter
 * allows 25 per object and 1 per 5 minutes; per namespace, a little more). */
export const EVENT_BURST = 25;
export const EVENT_REFILL_MS = 10_000;
/** Bytes of request text an Event carries. */
export const MAX_QUOTED_BYTES = 256;

/**
 * Text taken from a request (an admission review anyone reaching the webhook can forge), as it goes into an Event:
 * cut to `maxBytes` bytes of UTF-8 without splitting a character (a cut ends in "..."), then quoted JSON-style, so
 * that it can neither pass for the operator's own words nor carry line breaks or control characters.
 */
export function quote(text: string, maxBytes = MAX_QUOTED_BYTES): string {
  if (Buffer.byteLength(text, "utf8") <= maxBytes) return JSON.stringify(text);
  let out = "";
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, "utf8");
    if (bytes + n > maxBytes - 3) break;
    out += ch;
    bytes += n;
  }
  return JSON.stringify(`${out}...`);
}

export function pusherRef(p: MetricsPusher): ObjectRef {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    namespace: p.metadata.namespace ?? "",
    name: p.metadata.name ?? "",
    uid: p.metadata.uid,
  };
}

export function createEventRecorder(opts: {
  sink: EventSink;
  log: Logger;
  metrics?: OperatorMetrics;
  /** reportingInstance / source.host: the operator's pod name. */
  instance: string;
  now?: () => Date;
}): EventRecorder {
  const { sink, log, metrics, instance } = opts;
  const now = opts.now ?? (() => new Date());
  const queue: Array<() => Promise<void>> = [];
  const recent = new Map<string, { name: string; count: number; first: number; lastBump: number }>();
  const buckets = new Map<string, TokenBucket>();
  const clock = () => now().getTime();
  /** Whether a new Event (not a repeat, which only bumps a count) may be written now. */
  const allowed = (target: ObjectRef, reason: EventReason, key: string): boolean => {
    const seen = recent.get(key);
    if (seen && clock() - seen.first < DEDUP_WINDOW_MS) return true;
    const bucketKey = `${target.namespace}/${reason}`;
    let bucket = buckets.get(bucketKey);
    if (!bucket) {
      // Namespaces come from the caches (admission.ts), so the map stays small; still bounded.
      if (buckets.size >= 10_000) buckets.clear();
      bucket = new TokenBucket(EVENT_BURST, EVENT_BURST * EVENT_REFILL_MS, clock);
      buckets.set(bucketKey, bucket);
    }
    if (bucket.tryTake()) return true;
    metrics?.eventsSuppressed.inc({ reason });
    return false;
  };
  const keyOf = (target: ObjectRef, type: EventType, reason: EventReason, message: string) =>
    `${target.kind}/${target.namespace}/${target.name}/${type}/${reason}/${message}`;
  let draining: Promise<void> | undefined;
  let stopped = false;

  const enqueue = (job: () => Promise<void>): void => {
    if (stopped) return;
    if (queue.length >= MAX_QUEUE) {
      metrics?.eventsFailed.inc();
      return;
    }
    queue.push(job);
    draining ??= drain().finally(() => {
      draining = undefined;
    });
  };

  const drain = async (): Promise<void> => {
    // Yield first so that emit() returns before any I/O starts.
    await new Promise((r) => setImmediate(r));
    for (let job = queue.shift(); job; job = queue.shift()) {
      try {
        await job();
      } catch (err) {
        metrics?.eventsFailed.inc();
        log.warn({ err: (err as Error).message }, "Could not write Event");
      }
    }
  };

  const write = async (target: ObjectRef, type: EventType, reason: EventReason, message: string): Promise<void> => {
    const t = now();
    const key = keyOf(target, type, reason, message);
    const seen = recent.get(key);
    if (seen && t.getTime() - seen.first < DEDUP_WINDOW_MS) {
      seen.count++;
      // Spam filter: a burst of pod creations bumps the count at most once per BUMP_INTERVAL_MS; the next bump
      // carries what accumulated meanwhile.
      if (t.getTime() - seen.lastBump < BUMP_INTERVAL_MS) return;
      seen.lastBump = t.getTime();
      await sink.bump(target.namespace, seen.name, seen.count, t);
      metrics?.eventsSent.inc({ reason });
      return;
    }
    const name = `${target.name}.${randomBytes(8).toString("hex")}`;
    await sink.create(target.namespace, {
      metadata: { name, namespace: target.namespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        namespace: target.namespace,
        name: target.name,
        ...(target.uid ? { uid: target.uid } : {}),
      },
      type,
      reason,
      message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
      count: 1,
      firstTimestamp: t,
      lastTimestamp: t,
      // One name in both fields, so kubectl's SOURCE column and events.k8s.io's reportingController agree.
      source: { component: EVENT_COMPONENT, host: instance },
      reportingComponent: EVENT_COMPONENT,
      reportingInstance: instance,
    });
    recent.set(key, { name, count: 1, first: t.getTime(), lastBump: 0 });
    if (recent.size > 5000) {
      for (const [k, v] of recent) if (t.getTime() - v.first >= DEDUP_WINDOW_MS) recent.delete(k);
    }
    metrics?.eventsSent.inc({ reason });
  };

  return {
    emit(target, type, reason, message) {
      if (!allowed(target, reason, keyOf(target, type, reason, message))) return;
      enqueue(() => write(target, type, reason, message));
    },
    async flush() {
      while (draining) await draining;
    },
    async stop(timeoutMs = 2000) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.flush(), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      stopped = true;
      queue.length = 0;
    },
  };
}

export function kubeEventSink(kc: KubeConfig): EventSink {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async create(namespace, body) {
      await core.createNamespacedEvent({ namespace, body });
    },
    async bump(namespace, name, count, lastTimestamp) {
      await core.patchNamespacedEvent(
        { name, namespace, body: { count, lastTimestamp: lastTimestamp.toISOString() } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    },
  };
}
