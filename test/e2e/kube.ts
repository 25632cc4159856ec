// Small Kubernetes helpers for the end-to-end tests.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Container,
  type V1Deployment,
  type V1Pod,
  type V1ReplicaSet,
} from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../../operator/src/api/index.ts";
import type { MetricsPusher, MetricsPusherSpec } from "../../operator/src/api/index.ts";
import { waitFor } from "../lib/wait.ts";

export { GROUP, PLURAL, VERSION };

export function clients(kc: KubeConfig) {
  return {
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
  };
}
export type Clients = ReturnType<typeof clients>;

export async function createPusher(
  c: Clients,
  namespace: string,
  name: string,
  spec: MetricsPusherSpec,
): Promise<MetricsPusher> {
  return (await c.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: "MetricsPusher", metadata: { name, namespace }, spec },
  })) as MetricsPusher;
}

export async function getPusher(c: Clients, namespace: string, name: string): Promise<MetricsPusher> {
  return (await c.custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    name,
  })) as MetricsPusher;
}

/** A restricted-profile-compliant container, so the same objects work in a namespace enforcing `restricted`. */
export function appContainer(): V1Container {
  return {
    name: "main",
    image: "registry.example/builder:1",
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
  };
}

export function deployment(
  name: string,
  labels: Record<string, string>,
  annotations: Record<string, string> = {},
): V1Deployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, labels: { "app.kubernetes.io/part-of": "e2e" } },
    spec: {
      replicas: 1,
      // Without a kubelet no pod ever becomes available, so a RollingUpdate would keep the old ReplicaSet's pods
      // forever (and a rollback to the old template would reuse them). Recreate deletes them first; unscheduled pods
      // are deleted at once.
      strategy: { type: "Recreate" },
      selector: { matchLabels: { "e2e/deployment": name } },
      template: {
        metadata: { labels: { ...labels, "e2e/deployment": name }, annotations },
        spec: {
          containers: [appContainer()],
          securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
        },
      },
    },
  };
}

export function bareSidecar(pod: V1Pod): V1Container[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].filter(
    (c) => c.name === "metrics-pusher",
  );
}

export function env(container: V1Container | undefined, name: string): string | undefined {
  return container?.env?.find((e) => e.name === name)?.value;
}

/** The ReplicaSet of the Deployment's current revision and its pods, once the pods exist. */
export async function currentPods(
  c: Clients,
  namespace: string,
  deploymentName: string,
  timeoutMs = 60_000,
): Promise<{ rs: V1ReplicaSet; pods: V1Pod[]; replicaSets: number }> {
  return waitFor(
    async () => {
      const dep = await c.apps.readNamespacedDeployment({ namespace, name: deploymentName });
      const rsList = await c.apps.listNamespacedReplicaSet({ namespace });
      const owned = rsList.items.filter((rs) => rs.metadata?.ownerReferences?.some((o) => o.uid === dep.metadata?.uid));
      const revision = dep.metadata?.annotations?.["deployment.kubernetes.io/revision"];
      const rs = owned.find((r) => r.metadata?.annotations?.["deployment.kubernetes.io/revision"] === revision);
      // The revision annotation appears once the Deployment controller has seen the latest template.
      if (!rs || dep.status?.observedGeneration !== dep.metadata?.generation) return undefined;
      const hash = rs.metadata?.labels?.["pod-template-hash"];
      const pods = (
        await c.core.listNamespacedPod({ namespace, labelSelector: `pod-template-hash=${hash}` })
      ).items.filter((p) => !p.metadata?.deletionTimestamp);
      if (pods.length < (dep.spec?.replicas ?? 1)) return undefined;
      return { rs, pods, replicaSets: owned.length };
    },
    {
      timeoutMs: timeoutMs,
      intervalMs: 250,
      message: `pods of the current ReplicaSet of Deployment ${namespace}/${deploymentName}`,
    },
  );
}

export function condition(p: MetricsPusher, type: string) {
  return p.status?.conditions?.find((c) => c.type === type);
}

export async function eventsFor(
  c: Clients,
  namespace: string,
  kind: string,
  name: string,
): Promise<Array<{ reason: string; type: string; message: string }>> {
  const list = await c.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
  });
  return list.items.map((e) => ({ reason: e.reason ?? "", type: e.type ?? "", message: e.message ?? "" }));
}
