// The three workload kinds the controller rolls, reduced to what the decisions need. Jobs and CronJobs are left out on
// purpose: restarting a Job reruns it, so they get injection at pod creation only.
import type {
  V1DaemonSet,
  V1Deployment,
  V1LabelSelector,
  V1OwnerReference,
  V1Pod,
  V1PodTemplateSpec,
  V1StatefulSet,
} from "@kubernetes/client-node";
import { selectorMatches } from "../inject/mutate.ts";

export const WorkloadKind = {
  Deployment: "Deployment",
  StatefulSet: "StatefulSet",
  DaemonSet: "DaemonSet",
} as const;
export type WorkloadKind = (typeof WorkloadKind)[keyof typeof WorkloadKind];

export interface Workload {
  readonly kind: WorkloadKind;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly selector: V1LabelSelector | undefined;
  readonly template: V1PodTemplateSpec;
  readonly ownerReferences: readonly V1OwnerReference[];
  readonly deleting: boolean;
}

export function toWorkload(kind: WorkloadKind, obj: V1Deployment | V1StatefulSet | V1DaemonSet): Workload {
  return {
    kind,
    namespace: obj.metadata?.namespace ?? "",
    name: obj.metadata?.name ?? "",
    uid: obj.metadata?.uid,
    selector: obj.spec?.selector,
    template: obj.spec?.template ?? {},
    ownerReferences: obj.metadata?.ownerReferences ?? [],
    deleting: obj.metadata?.deletionTimestamp != null,
  };
}

/** "Deployment/builder": how workloads appear in messages. */
export function workloadRef(w: Pick<Workload, "kind" | "name">): string {
  return `${w.kind}/${w.name}`;
}

/** The owner that manages this workload's spec (e.g. a Knative Revision), if any. */
export function controllingOwner(w: Workload): V1OwnerReference | undefined {
  return w.ownerReferences.find((o) => o.controller === true);
}

/** Pods that still count: not being deleted, not finished. */
export function isLivePod(p: V1Pod): boolean {
  if (p.metadata?.deletionTimestamp != null) return false;
  const phase = p.status?.phase;
  return phase !== "Succeeded" && phase !== "Failed";
}

/**
 * The cached workload a pod (as an admission request describes it, so possibly forged) belongs to, or undefined. The
 * request's owner reference is only a hint: the answer is always an object of the cache, and must fit the pod — a
 * StatefulSet/DaemonSet by uid, a Deployment by its ReplicaSet's name (`<deployment>-<pod-template-hash>`) and its
 * selector. Nothing is read from the apiserver (a GET per request would let anyone reaching the webhook drive
 * apiserver load).
 */
export function owningWorkload(
  pod: V1Pod,
  find: (kind: WorkloadKind, name: string) => Workload | undefined,
): Workload | undefined {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
  if (!owner || owner.apiVersion !== "apps/v1") return undefined;
  const labels = pod.metadata?.labels ?? {};
  if (owner.kind === "ReplicaSet") {
    const hash = labels["pod-template-hash"];
    if (!hash || !owner.name.endsWith(`-${hash}`)) return undefined;
    const d = find(WorkloadKind.Deployment, owner.name.slice(0, -hash.length - 1));
    return d && !d.deleting && selectorMatches(d.selector, labels) ? d : undefined;
  }
  if (owner.kind !== WorkloadKind.StatefulSet && owner.kind !== WorkloadKind.DaemonSet) return undefined;
  const w = find(owner.kind, owner.name);
  return w && w.uid !== undefined && w.uid === owner.uid ? w : undefined;
}
