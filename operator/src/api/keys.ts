// Every annotation, label, finalizer and name the operator reads or writes. Defined once here.

export const Annotations = {
  /** Pod annotation: "false" opts the pod out; any other value names the MetricsPusher to use. */
  inject: "metricspusher.dev/inject",
  /** Pod annotation written by the webhook: "<metricspusher name>@<config hash>". */
  injected: "metricspusher.dev/injected",
  /** Pod-template annotation stamped by the controller so Kubernetes rolls the workload. */
  configHash: "metricspusher.dev/config-hash",
  /** Pod-template annotation: when the controller last re-rolled a workload whose pods lacked the sidecar. */
  driftRepairedAt: "metricspusher.dev/drift-repaired-at",
  /** Pod annotation: "true" lets a hostNetwork pod be injected (its sidecar then scrapes the node's loopback). */
  allowHostNetwork: "metricspusher.dev/allow-host-network",
} as const;
export type Annotation = (typeof Annotations)[keyof typeof Annotations];

export const Labels = {
  /** Namespace label: "disabled" opts every pod of the namespace out. */
  injection: "metricspusher.dev/injection",
  /**
   * Pod label written by the webhook beside Annotations.injected: the MetricsPusher's name, so that
   * `kubectl get pods -l metricspusher.dev/pusher=<name>` finds its pods (a label value cannot hold the `@<hash>`).
   */
  pusher: "metricspusher.dev/pusher",
  /** Label on the operator's own pods; the webhook's objectSelector excludes them. */
  component: "app.kubernetes.io/name",
} as const;

export const InjectValues = { optOut: "false" } as const;
export const InjectionLabelValues = { disabled: "disabled" } as const;
/** Value of Labels.component on the operator's own pods. */
export const OPERATOR_COMPONENT = "metrics-pusher-operator";

export const FINALIZER = "metricspusher.dev/finalizer";
export const SIDECAR_CONTAINER_NAME = "metrics-pusher";
export const WEBHOOK_PATH = "/mutate-v1-pod";
/** Name of the MutatingWebhookConfiguration's single webhook entry (must be a DNS name with >= 3 labels). */
export const WEBHOOK_ENTRY_NAME = "pods.metricspusher.dev";
export const FIELD_MANAGER = "metrics-pusher-operator";

/** Formats and parses the `injected` annotation value "<name>@<hash>". */
export function formatInjected(name: string, hash: string): string {
  return `${name}@${hash}`;
}
export function parseInjected(value: string | undefined): { name: string; hash: string } | undefined {
  if (!value) return undefined;
  const at = value.lastIndexOf("@");
  if (at <= 0 || at === value.length - 1) return undefined;
  return { name: value.slice(0, at), hash: value.slice(at + 1) };
}

/** Namespaces never injected into nor patched: the cluster's own, and the operator's (excluded in one place for the
 * webhook's namespaceSelector, mutate() and the controller). */
export const CLUSTER_SYSTEM_NAMESPACES = ["kube-system", "kube-node-lease", "kube-public"] as const;
export function systemNamespaces(operatorNamespace: string): readonly string[] {
  return [...CLUSTER_SYSTEM_NAMESPACES, operatorNamespace];
}
