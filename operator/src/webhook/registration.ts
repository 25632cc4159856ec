// The MutatingWebhookConfiguration, defined once: config/webhook/manifests.yaml must equal webhookConfiguration()
// in Service mode (registration.test.ts checks), and in URL mode the operator creates/updates it from here.
import type { V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import {
  InjectionLabelValues,
  Labels,
  OPERATOR_COMPONENT,
  systemNamespaces,
  WEBHOOK_ENTRY_NAME,
  WEBHOOK_PATH,
} from "../api/index.ts";

export interface RegistrationSettings {
  readonly webhookConfigName: string;
  readonly webhookServiceName: string;
  readonly podNamespace: string;
  readonly webhookUrl: string | undefined;
}

export const WEBHOOK_TIMEOUT_SECONDS = 5;

export function webhookConfiguration(s: RegistrationSettings, caBundle?: string): V1MutatingWebhookConfiguration {
  const clientConfig = s.webhookUrl
    ? { url: s.webhookUrl }
    : { service: { name: s.webhookServiceName, namespace: s.podNamespace, path: WEBHOOK_PATH, port: 443 } };
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name: s.webhookConfigName, labels: { [Labels.component]: OPERATOR_COMPONENT } },
    webhooks: [
      {
        name: WEBHOOK_ENTRY_NAME,
        admissionReviewVersions: ["v1"],
        clientConfig: caBundle ? { ...clientConfig, caBundle } : clientConfig,
        rules: [
          { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"], scope: "Namespaced" },
        ],
        // Fail open: a down webhook must never block pods; the controller's drift repair catches up afterwards.
        failurePolicy: "Ignore",
        sideEffects: "NoneOnDryRun",
        timeoutSeconds: WEBHOOK_TIMEOUT_SECONDS,
        // Safe because the webhook is idempotent (fixed container name + injected annotation).
        reinvocationPolicy: "IfNeeded",
        matchPolicy: "Equivalent",
        // The namespaces mutate() skips as SystemNamespace: the apiserver does not even call the webhook for them.
        namespaceSelector: {
          matchExpressions: [
            {
              key: "kubernetes.io/metadata.name",
              operator: "NotIn",
              values: [...systemNamespaces(s.podNamespace)],
            },
            { key: Labels.injection, operator: "NotIn", values: [InjectionLabelValues.disabled] },
          ],
        },
        objectSelector: {
          matchExpressions: [{ key: Labels.component, operator: "NotIn", values: [OPERATOR_COMPONENT] }],
        },
      },
    ],
  };
}
