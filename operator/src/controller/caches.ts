// Informers on the workloads and pods of the namespaces that hold MetricsPushers, started when the first
// MetricsPusher of a namespace appears and stopped when the last one is gone: the controller never caches the pods of
// a whole cluster.
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import type {
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  V1DaemonSet,
  V1Deployment,
  V1Pod,
  V1StatefulSet,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { createInformer, type Informer } from "../kube/informer.ts";
import { selectorMatches } from "../inject/mutate.ts";
import { isLivePod, toWorkload, type Workload, WorkloadKind } from "./workloads.ts";

export interface NamespaceCache {
  readonly namespace: string;
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<void>;
  workloads(): Workload[];
  /** One workload from the cache, or undefined. */
  workload(kind: WorkloadKind, name: string): Workload | undefined;
  /** Live pods matching a workload's selector. */
  podsOf(w: Workload): V1Pod[];
}

export interface NamespaceCachesOptions {
  kc: KubeConfig;
  log: Logger;
  onInformerError?: (informer: string) => void;
}

interface Entry {
  cache: NamespaceCache;
  informers: Informer<KubernetesObject>[];
}

export class NamespaceCaches {
  readonly #o: NamespaceCachesOptions;
  readonly #apps: AppsV1Api;
  readonly #core: CoreV1Api;
  readonly #entries = new Map<string, Entry>();
  #onChange: (namespace: string, kind: "workload" | "pod") => void = () => {};

  constructor(opts: NamespaceCachesOptions) {
    this.#o = opts;
    this.#apps = opts.kc.makeApiClient(AppsV1Api);
    this.#core = opts.kc.makeApiClient(CoreV1Api);
  }

  /**
   * Called on every add/update/delete of a workload or pod of a cached namespace. Set after construction: the
   * listener is the work queue, whose work reads these caches.
   */
  onChange(listener: (namespace: string, kind: "workload" | "pod") => void): void {
    this.#onChange = listener;
  }

  namespaces(): string[] {
    return [...this.#entries.keys()];
  }

  /** The cache of `namespace` when it is running; never starts one. */
  peek(namespace: string): NamespaceCache | undefined {
    return this.#entries.get(namespace)?.cache;
  }

  /** The cache of `namespace`, started on first use. */
  ensure(namespace: string): NamespaceCache {
    const existing = this.#entries.get(namespace);
    if (existing) return existing.cache;
    const { kc, log } = this.#o;
    const make = <T extends KubernetesObject>(
      name: string,
      path: string,
      list: () => Promise<KubernetesListObject<T>>,
      kind: "workload" | "pod",
    ) => {
      const inf = createInformer<T>({
        kc,
        log,
        name: `${name}/${namespace}`,
        path,
        list,
        onError: () => this.#o.onInformerError?.(name),
      });
      const changed = () => this.#onChange(namespace, kind);
      inf.on("add", changed);
      inf.on("update", changed);
      inf.on("delete", changed);
      return inf;
    };
    const deployments = make<V1Deployment>(
      "deployments",
      `/apis/apps/v1/namespaces/${namespace}/deployments`,
      () => this.#apps.listNamespacedDeployment({ namespace }),
      "workload",
    );
    const statefulSets = make<V1StatefulSet>(
      "statefulsets",
      `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
      () => this.#apps.listNamespacedStatefulSet({ namespace }),
      "workload",
    );
    const daemonSets = make<V1DaemonSet>(
      "daemonsets",
      `/apis/apps/v1/namespaces/${namespace}/daemonsets`,
      () => this.#apps.listNamespacedDaemonSet({ namespace }),
      "workload",
    );
    const pods = make<V1Pod>(
      "pods",
      `/api/v1/namespaces/${namespace}/pods`,
      () => this.#core.listNamespacedPod({ namespace }),
      "pod",
    );
    const informers = [deployments, statefulSets, daemonSets, pods] as Informer<KubernetesObject>[];
    const cache: NamespaceCache = {
      namespace,
      hasSynced: () => informers.every((i) => i.hasSynced()),
      waitForSync: async (signal) => {
        await Promise.all(informers.map((i) => i.waitForSync(signal)));
      },
      workloads: () => [
        ...deployments.list(namespace).map((d) => toWorkload(WorkloadKind.Deployment, d)),
        ...statefulSets.list(namespace).map((s) => toWorkload(WorkloadKind.StatefulSet, s)),
        ...daemonSets.list(namespace).map((d) => toWorkload(WorkloadKind.DaemonSet, d)),
      ],
      workload: (kind, name) => {
        const obj =
          kind === WorkloadKind.Deployment
            ? deployments.get(namespace, name)
            : kind === WorkloadKind.StatefulSet
              ? statefulSets.get(namespace, name)
              : daemonSets.get(namespace, name);
        return obj ? toWorkload(kind, obj) : undefined;
      },
      podsOf: (w) => {
        // An empty or missing selector would match every pod; the apiserver refuses such workloads anyway.
        if (!w.selector || (!w.selector.matchLabels && !w.selector.matchExpressions)) return [];
        return pods
          .list(namespace)
          .filter((p) => isLivePod(p) && selectorMatches(w.selector, p.metadata?.labels ?? {}));
      },
    };
    this.#entries.set(namespace, { cache, informers });
    for (const i of informers) i.start();
    log.info({ namespace }, "Watching workloads and pods of namespace");
    return cache;
  }

  async release(namespace: string): Promise<void> {
    const entry = this.#entries.get(namespace);
    if (!entry) return;
    this.#entries.delete(namespace);
    await Promise.all(entry.informers.map((i) => i.stop()));
    this.#o.log.info({ namespace }, "Stopped watching namespace (no MetricsPusher left)");
  }

  async stop(): Promise<void> {
    await Promise.all(this.namespaces().map((ns) => this.release(ns)));
  }
}
