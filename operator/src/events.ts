// Asynchronous Kubernetes Event recorder. emit() never blocks or throws: the admission answer must not wait for the
// apiserver. Repeats of the same event within DEDUP_WINDOW_MS bump `count` on the existing Event (as client-go's
// recorder does) instead of flooding etcd. The webhook never calls it for dry-run requests (sideEffects NoneOnDryRun).
import { randomBytes } from "node:crypto";
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { CoreV1Event, KubeConfig, V1OwnerReference, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { API_VERSION, KIND, OPERATOR_COMPONENT } from "./api/index.ts";
import type { EventReason, EventType, MetricsPusher } from "./api/index.ts";
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
  /** The controller owner of a ReplicaSet (its Deployment), when there is one. */
  replicaSetOwner(namespace: string, name: string): Promise<V1OwnerReference | undefined>;
}

export interface EventRecorder {
  emit(target: ObjectRef, type: EventType, reason: EventReason, message: string): void;
  /** To the pod's owning workload (ReplicaSet → Deployment resolved), or the pod itself when it has a name. */
  emitForPod(pod: V1Pod, namespace: string, type: EventType, reason: EventReason, message: string): void;
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
    const key = `${target.kind}/${target.namespace}/${target.name}/${type}/${reason}/${message}`;
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
      enqueue(() => write(target, type, reason, message));
    },
    emitForPod(pod, namespace, type, reason, message) {
      enqueue(async () => {
        const target = await podTarget(sink, pod, namespace);
        if (target) await write(target, type, reason, message);
      });
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

async function podTarget(sink: EventSink, pod: V1Pod, namespace: string): Promise<ObjectRef | undefined> {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  if (owner) {
    if (owner.kind === "ReplicaSet" && owner.apiVersion === "apps/v1") {
      // The pod's ReplicaSet is an implementation detail; people look at the Deployment.
      const dep = await sink.replicaSetOwner(namespace, owner.name).catch(() => undefined);
      if (dep) return { apiVersion: dep.apiVersion, kind: dep.kind, namespace, name: dep.name, uid: dep.uid };
    }
    return { apiVersion: owner.apiVersion, kind: owner.kind, namespace, name: owner.name, uid: owner.uid };
  }
  // A bare pod made from generateName has no name yet: nothing to attach the Event to.
  if (pod.metadata?.name)
    return { apiVersion: "v1", kind: "Pod", namespace, name: pod.metadata.name, uid: pod.metadata.uid };
  return undefined;
}

export function kubeEventSink(kc: KubeConfig): EventSink {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const owners = new Map<string, { ref: V1OwnerReference | undefined; at: number }>();
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
    async replicaSetOwner(namespace, name) {
      const key = `${namespace}/${name}`;
      const hit = owners.get(key);
      if (hit && Date.now() - hit.at < 60_000) return hit.ref;
      const rs = await apps.readNamespacedReplicaSet({ name, namespace });
      const ref = rs.metadata?.ownerReferences?.find((o) => o.controller);
      if (owners.size > 10_000) owners.clear();
      owners.set(key, { ref, at: Date.now() });
      return ref;
    },
  };
}
