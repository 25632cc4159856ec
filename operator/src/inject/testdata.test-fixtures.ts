// Builders shared by the webhook's unit tests (not shipped: only *.test.ts import it).
import type { V1Pod } from "@kubernetes/client-node";
import { API_VERSION, KIND } from "../api/index.ts";
import type { MetricsPusher, MetricsPusherSpec } from "../api/index.ts";
import type { SidecarDefaults } from "./sidecar.ts";
import type { MutateSettings } from "./mutate.ts";

export const defaults: SidecarDefaults = {
  image: "ghcr.io/metrics-pusher/pusher:0.1.0",
  runAsUser: 65532,
  resources: { requests: { cpu: "10m", memory: "48Mi" }, limits: { memory: "128Mi" } },
  nativeSidecarsSupported: true,
};

export const settings: MutateSettings = {
  systemNamespaces: ["kube-system", "kube-node-lease", "kube-public", "metrics-pusher-system"],
  watchNamespaces: [],
  imageAllowList: ["ghcr.io/metrics-pusher/pusher"],
};

export function pusher(
  name: string,
  spec: Partial<MetricsPusherSpec> = {},
  meta: Partial<MetricsPusher["metadata"]> = {},
): MetricsPusher {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name,
      namespace: "builds",
      creationTimestamp: new Date("2026-01-01T00:00:00Z"),
      uid: `uid-${name}`,
      generation: 1,
      ...meta,
    },
    spec: {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: "http://prometheus.monitoring:9090/api/v1/write" },
      ...spec,
    },
  };
}

export function pod(
  opts: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    generateName?: boolean;
    restartPolicy?: string;
    namespace?: string;
  } = {},
): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...(opts.generateName ? { generateName: "builder-7d9f-" } : { name: "builder" }),
      ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
      labels: opts.labels ?? { app: "builder" },
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: {
      containers: [{ name: "main", image: "busybox", ports: [{ containerPort: 8080 }] }],
      ...(opts.restartPolicy ? { restartPolicy: opts.restartPolicy } : {}),
    },
  };
}
