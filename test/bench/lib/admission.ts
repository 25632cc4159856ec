// Fixtures for the webhook benchmark: MetricsPushers spread over namespaces, and AdmissionReviews of pods as the
// ReplicaSet controller sends them (generateName, owner reference, two containers, probes, volumes).
import type { V1Pod } from "@kubernetes/client-node";
import { API_VERSION, Annotations, KIND } from "../../../operator/src/api/index.ts";
import type { MetricsPusher } from "../../../operator/src/api/index.ts";

export const PUSHERS_PER_NAMESPACE = 4;

export function namespaceOf(i: number): string {
  return `team-${String(Math.floor(i / PUSHERS_PER_NAMESPACE)).padStart(3, "0")}`;
}

/** `count` MetricsPushers, PUSHERS_PER_NAMESPACE per namespace, each selecting app=builder-<k> in its namespace. */
export function benchPushers(count: number): MetricsPusher[] {
  return Array.from({ length: count }, (_, i) => {
    const k = i % PUSHERS_PER_NAMESPACE;
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name: `builder-${k}`,
        namespace: namespaceOf(i),
        uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        generation: 1,
        resourceVersion: String(1000 + i),
        creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, i)),
      },
      spec: {
        selector:
          k % 2 === 0
            ? { matchLabels: { app: `builder-${k}` } }
            : {
                matchLabels: { app: `builder-${k}` },
                matchExpressions: [{ key: "tier", operator: "In", values: ["build", "batch"] }],
              },
        remoteWrite: {
          url: "https://prometheus.monitoring.svc:9090/api/v1/write",
          timeout: "10s",
          headers: { "X-Scope-OrgID": `tenant-${i % 7}` },
          bearerTokenSecret: { name: "remote-write-token", key: "token" },
        },
        pushInterval: "15s",
        externalLabels: { cluster: "prod-eu-west-1", team: namespaceOf(i) },
        scrape: { targets: [{ port: 8080, path: "/metrics" }], job: "builder" },
        buffer: { maxSamples: 50_000 },
        resources: { requests: { cpu: "10m", memory: "48Mi" }, limits: { memory: "96Mi" } },
      },
    };
  });
}

/** A pod as the ReplicaSet controller creates it for a Deployment `app` in `namespace`. */
export function builderPod(
  namespace: string,
  app: string,
  i: number,
  extra: { annotations?: Record<string, string> } = {},
): V1Pod {
  const hash = (0x5f3a9c + i * 7919).toString(16).slice(0, 9);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: `${app}-${hash}-`,
      namespace,
      labels: {
        app,
        tier: "build",
        "pod-template-hash": hash,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "knative-lambda",
      },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z", ...extra.annotations },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: `${app}-${hash}`,
          uid: `11111111-2222-4333-8444-${String(i).padStart(12, "0")}`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      serviceAccountName: "builder",
      terminationGracePeriodSeconds: 30,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: "builder",
          image: "registry.example.com/knative-lambda/builder:1.14.2",
          args: ["--listen=:8080", "--workers=4"],
          ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
          env: [
            { name: "BUILD_CACHE_DIR", value: "/cache" },
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "REGISTRY_PASSWORD", valueFrom: { secretKeyRef: { name: "registry", key: "password" } } },
          ],
          resources: { requests: { cpu: "500m", memory: "512Mi" }, limits: { memory: "2Gi" } },
          readinessProbe: { httpGet: { path: "/readyz", port: 8080 }, periodSeconds: 5 },
          livenessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 10 },
          volumeMounts: [{ name: "cache", mountPath: "/cache" }],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
        },
        {
          name: "log-shipper",
          image: "registry.example.com/platform/log-shipper:3.2.0",
          resources: { requests: { cpu: "20m", memory: "32Mi" }, limits: { memory: "64Mi" } },
          volumeMounts: [{ name: "cache", mountPath: "/cache", readOnly: true }],
        },
      ],
      volumes: [
        { name: "cache", emptyDir: { sizeLimit: "10Gi" } },
        {
          name: "kube-api-access",
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
            ],
          },
        },
      ],
      tolerations: [
        { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
      ],
    },
  };
}

export interface ReviewMix {
  /** Reviews whose pod a MetricsPusher selects (injected). */
  injected: number;
  /** Reviews of pods no MetricsPusher selects, or opted out (skipped). */
  skipped: number;
}

/**
 * `count` AdmissionReview bodies over the namespaces of `pushers`: 8 of 10 pods are selected by a MetricsPusher,
 * 1 matches none, 1 opts out — roughly a builder cluster where most pods are builders.
 */
export function admissionReviews(count: number, pusherCount: number): { bodies: string[]; mix: ReviewMix } {
  const namespaces = Math.ceil(pusherCount / PUSHERS_PER_NAMESPACE);
  const mix: ReviewMix = { injected: 0, skipped: 0 };
  const bodies = Array.from({ length: count }, (_, i) => {
    const namespace = namespaceOf((i % namespaces) * PUSHERS_PER_NAMESPACE);
    const kind = i % 10;
    let pod: V1Pod;
    if (kind === 8) {
      pod = builderPod(namespace, "web-frontend", i);
      mix.skipped++;
    } else if (kind === 9) {
      pod = builderPod(namespace, `builder-${i % PUSHERS_PER_NAMESPACE}`, i, {
        annotations: { [Annotations.inject]: "false" },
      });
      mix.skipped++;
    } else {
      pod = builderPod(namespace, `builder-${i % PUSHERS_PER_NAMESPACE}`, i);
      mix.injected++;
    }
    return JSON.stringify({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: {
        uid: `aaaaaaaa-bbbb-4ccc-8ddd-${String(i).padStart(12, "0")}`,
        kind: { group: "", version: "v1", kind: "Pod" },
        resource: { group: "", version: "v1", resource: "pods" },
        requestKind: { group: "", version: "v1", kind: "Pod" },
        requestResource: { group: "", version: "v1", resource: "pods" },
        namespace,
        operation: "CREATE",
        userInfo: {
          username: "system:serviceaccount:kube-system:replicaset-controller",
          groups: ["system:serviceaccounts", "system:authenticated"],
        },
        object: pod,
        oldObject: null,
        dryRun: false,
        options: { apiVersion: "meta.k8s.io/v1", kind: "CreateOptions" },
      },
    });
  });
  return { bodies, mix };
}
