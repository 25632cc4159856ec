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
