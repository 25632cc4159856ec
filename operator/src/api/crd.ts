// The MetricsPusher CustomResourceDefinition, generated so that CEL rules reuse the pusher's own contract
// (RESERVED_HEADERS) instead of retyping it. `node --conditions=source operator/src/api/crd.ts` rewrites
// crds/metricspusher.dev_metricspushers.yaml; crd.test.ts fails when the committed file differs.
import { writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { RESERVED_HEADERS } from "@metrics-pusher/pusher/config";
import {
  CRD_NAME,
  GROUP,
  KIND,
  LIST_KIND,
  LogLevel,
  PLURAL,
  RolloutStrategy,
  SHORT_NAMES,
  SINGULAR,
  SidecarMode,
  VERSION,
} from "./v1alpha1.ts";

export const CRD_FILE = "crds/metricspusher.dev_metricspushers.yaml";

// The wire form (client-node's V1JSONSchemaProps renames x-kubernetes-* and enum/default for TypeScript).
export interface Schema {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: string[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  maxProperties?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  anyOf?: Schema[];
  "x-kubernetes-validations"?: Array<{ rule: string; message?: string; reason?: string; fieldPath?: string }>;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: string;
}

const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
const quote = (s: string) => `'${s}'`;

function duration(description: string, example: string): Schema {
  return {
    type: "string",
    maxLength: 64,
    pattern: DURATION_PATTERN,
    description: `${description} A Go duration such as ${example}; must be greater than zero.`,
    "x-kubernetes-validations": [
      {
        rule: "duration(self) > duration('0s')",
        message: "must be a duration greater than zero, e.g. 30s",
        reason: "FieldValueInvalid",
      },
    ],
  };
}

function secretRef(description: string): Schema {
  return {
    type: "object",
    description: `${description} A key of a Secret in the MetricsPusher's own namespace (there is deliberately no namespace field). Mounted read-only as an optional volume, so a missing Secret never blocks the pod and a rotated one reaches the pusher without a restart.`,
    required: ["name", "key"],
    properties: {
      name: {
        type: "string",
        maxLength: 253,
        pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description: "Name of the Secret, in the same namespace.",
      },
      key: { type: "string", maxLength: 253, pattern: "^[-._a-zA-Z0-9]+$", description: "Key within the Secret." },
    },
  };
}

const quantity: Schema = {
  "x-kubernetes-int-or-string": true,
  anyOf: [{ type: "integer" }, { type: "string" }],
  pattern:
    "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
};

const labelSelector: Schema = {
  type: "object",
  description:
    "Pods in the MetricsPusher's namespace whose labels match get the pusher; a workload matches when its pod template's labels match. An empty selector matches every pod of the namespace.",
  "x-kubernetes-map-type": "atomic",
  properties: {
    matchLabels: {
      type: "object",
      description: "Label key/value pairs a pod must all carry.",
      additionalProperties: { type: "string" },
    },
    matchExpressions: {
      type: "array",
      description: "Label requirements a pod must all satisfy.",
      items: {
        type: "object",
        required: ["key", "operator"],
        properties: {
          key: { type: "string", description: "The label key." },
          operator: {
            type: "string",
            enum: ["In", "NotIn", "Exists", "DoesNotExist"],
            description: "In, NotIn, Exists or DoesNotExist.",
          },
          values: {
            type: "array",
            description: "Values for In and NotIn; empty for Exists and DoesNotExist.",
            items: { type: "string" },
            "x-kubernetes-list-type": "atomic",
          },
        },
      },
      "x-kubernetes-list-type": "atomic",
    },
  },
};

export function specSchema(): Schema {
  const reserved = `[${RESERVED_HEADERS.map(quote).join(", ")}]`;
  return {
    type: "object",
    description: "Desired state: which pods get the pusher and how it is configured.",
    required: ["selector", "remoteWrite"],
    properties: {
      selector: labelSelector,
      remoteWrite: {
        type: "object",
        description: "Where and how the pusher sends samples (Prometheus Remote-Write 1.0).",
        required: ["url"],
        properties: {
          url: {
            type: "string",
            maxLength: 2048,
            description: "Receiver endpoint, http:// or https://, e.g. http://prometheus.monitoring:9090/api/v1/write.",
            "x-kubernetes-validations": [
              {
                rule: "self.matches('^https?://[^/?#\\\\s]+([/?#][^\\\\s]*)?$')",
                message: "must be an http:// or https:// URL with a host",
                reason: "FieldValueInvalid",
              },
            ],
          },
          timeout: duration("Timeout of one Remote-Write request. Default: the pusher's (30s).", "10s"),
          headers: {
            type: "object",
            maxProperties: 32,
            description: `Extra HTTP headers sent with every request (e.g. X-Scope-OrgID). Reserved headers are refused: ${RESERVED_HEADERS.join(", ")}; use bearerTokenSecret or basicAuth for credentials.`,
            additionalProperties: { type: "string", maxLength: 4096 },
            "x-kubernetes-validations": [
              {
                rule: "self.all(k, k.matches('^[-!#$%&\\'*+.^_`|~0-9A-Za-z]+$'))",
                message: "header names must be HTTP tokens",
                reason: "FieldValueInvalid",
              },
              {
                rule: `self.all(k, !(k.lowerAscii() in ${reserved}))`,
                message: `must not set a reserved header (${RESERVED_HEADERS.join(", ")})`,
                reason: "FieldValueForbidden",
              },
            ],
          },
          bearerTokenSecret: secretRef("Bearer token sent as `Authorization: Bearer <token>`."),
          basicAuth: {
            type: "object",
            description: "HTTP basic authentication.",
            required: ["passwordSecret"],
            properties: {
              username: {
                type: "string",
                maxLength: 256,
                description: "Literal user name (use usernameSecret to keep it in a Secret).",
              },
              usernameSecret: secretRef("User name."),
              passwordSecret: secretRef("Password."),
            },
            "x-kubernetes-validations": [
              {
                rule: "!(has(self.username) && has(self.usernameSecret))",
                message: "set username or usernameSecret, not both",
                reason: "FieldValueForbidden",
              },
            ],
          },
          tlsCASecret: secretRef("PEM CA certificates trusted for an https receiver, in addition to the system roots."),
          insecureSkipVerify: {
            type: "boolean",
            description: "Skip verification of the receiver's TLS certificate. For testing only.",
          },
        },
        "x-kubernetes-validations": [
          {
            rule: "!has(self.bearerTokenSecret) || !has(self.basicAuth)",
            message: "set bearerTokenSecret or basicAuth, not both",
            reason: "FieldValueForbidden",
          },
        ],
      },
      pushInterval: {
        ...duration("How often the pusher collects and pushes; targets are scraped at the same period.", "30s"),
        default: "30s",
      },
      logLevel: {
        type: "string",
        enum: [...Object.values(LogLevel)],
        description: "Log level of the pusher: debug, info, warn or error. Default: info.",
      },
      externalLabels: {
        type: "object",
        maxProperties: 32,
        description:
          "Labels added to every series the pusher sends (they never override job, instance, namespace or pod).",
        additionalProperties: { type: "string", maxLength: 1024 },
        "x-kubernetes-validations": [
          {
            rule: "self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$'))",
            message: "label names must match [a-zA-Z_][a-zA-Z0-9_]*",
            reason: "FieldValueInvalid",
          },
        ],
      },
      scrape: {
        type: "object",
        description:
          "Prometheus endpoints of the pod's own containers, scraped on 127.0.0.1 every pushInterval and forwarded.",
        required: ["targets"],
        properties: {
          targets: {
            type: "array",
            maxItems: 16,
            description: "Ports and paths to scrape on localhost.",
            items: {
              type: "object",
              required: ["port"],
              properties: {
                port: { type: "integer", minimum: 1, maximum: 65535, description: "Container port, e.g. 8080." },
                path: {
                  type: "string",
                  maxLength: 1024,
                  pattern: "^/[^\\s]*$",
                  description: "HTTP path. Default: /metrics.",
                },
              },
            },
            "x-kubernetes-list-type": "atomic",
          },
          job: { type: "string", maxLength: 256, description: "The job label of scraped series. Default: builder." },
          timeout: duration(
            "Timeout of one scrape, at most pushInterval. Default: the smaller of 10s and pushInterval.",
            "5s",
          ),
        },
      },
      buffer: {
        type: "object",
        description: "What the pusher keeps while the receiver is unreachable.",
        properties: {
          maxSamples: {
            type: "integer",
            minimum: 1,
            maximum: 10_000_000,
            description: "Samples kept in memory; the oldest are dropped (and counted) beyond it.",
          },
          disk: {
            type: "object",
            description: "Keep unsent samples in an emptyDir so they survive a pusher restart.",
            required: ["sizeLimit"],
            properties: {
              sizeLimit: {
                ...quantity,
                description: "Size limit of the emptyDir, e.g. 256Mi; the pusher uses at most 90% of it.",
              },
            },
          },
        },
      },
      image: {
        type: "string",
        maxLength: 512,
        description: "Pusher image. Default: the operator's PUSHER_IMAGE; must match the operator's IMAGE_ALLOW_LIST.",
      },
      resources: {
        type: "object",
        description:
          "Resources of the injected container; replaces the operator's default (SIDECAR_RESOURCES: requests cpu 10m, memory 64Mi; limits memory 192Mi) as a whole.",
        properties: {
          requests: {
            type: "object",
            description: "Minimum resources, e.g. {cpu: 10m, memory: 64Mi}.",
            additionalProperties: quantity,
          },
          limits: {
            type: "object",
            description: "Maximum resources, e.g. {memory: 192Mi}.",
            additionalProperties: quantity,
          },
        },
      },
      sidecarMode: {
        type: "string",
        enum: [...Object.values(SidecarMode)],
        default: SidecarMode.Auto,
        description:
          "Native: an init container with restartPolicy Always (Kubernetes >= 1.29; starts before and stops after the app, lets Jobs complete). Container: a regular container. Auto: Native when the apiserver and every node's kubelet are >= 1.29, else Container.",
      },
      rolloutStrategy: {
        type: "string",
        enum: [...Object.values(RolloutStrategy)],
        default: RolloutStrategy.Workload,
        description:
          "Workload: when the rendered sidecar changes, stamp its hash on matching Deployments, StatefulSets and DaemonSets so Kubernetes rolls them (rate-limited). None: only new pods get the new config.",
      },
    },
  };
}

function statusSchema(): Schema {
  return {
    type: "object",
    description: "Observed state, written by the operator's controller.",
    properties: {
      observedGeneration: {
        type: "integer",
        format: "int64",
        description: "The metadata.generation this status describes.",
      },
      matchedWorkloads: {
        type: "integer",
        description: "Workloads (Deployments, StatefulSets, DaemonSets) whose pod template matches the selector.",
      },
      updatedWorkloads: { type: "integer", description: "Matched workloads whose pods run the current config." },
      configHash: {
        type: "string",
        description: "Hash of the sidecar this MetricsPusher renders now; pods carry it in metricspusher.dev/injected.",
      },
      conditions: {
        type: "array",
        description:
          "Ready: the spec is valid and the sidecar can be rendered. UpToDate: every matching workload runs the current config.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        items: {
          type: "object",
          required: ["type", "status", "lastTransitionTime", "reason", "message"],
          properties: {
            type: { type: "string", maxLength: 316, description: "Ready or UpToDate." },
            status: { type: "string", enum: ["True", "False", "Unknown"], description: "True, False or Unknown." },
            observedGeneration: {
              type: "integer",
              format: "int64",
              minimum: 0,
              description: "The generation the condition was set for.",
            },
            lastTransitionTime: { type: "string", format: "date-time", description: "When the status last changed." },
            reason: {
              type: "string",
              maxLength: 1024,
              minLength: 1,
              pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
              description: "CamelCase reason.",
            },
            message: { type: "string", maxLength: 32768, description: "What happened and what to do about it." },
          },
        },
      },
    },
  };
}

export function buildCrd() {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: CRD_NAME,
      labels: { "app.kubernetes.io/name": "metrics-pusher-operator", "app.kubernetes.io/part-of": "metrics-pusher" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: LIST_KIND,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: ["all", "metrics-pusher"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "URL", type: "string", jsonPath: ".spec.remoteWrite.url", description: "Remote-Write receiver." },
            { name: "Interval", type: "string", jsonPath: ".spec.pushInterval", description: "Push interval." },
            {
              name: "Matched",
              type: "integer",
              jsonPath: ".status.matchedWorkloads",
              description: "Matching workloads.",
            },
            {
              name: "Ready",
              type: "string",
              jsonPath: '.status.conditions[?(@.type=="Ready")].status',
              description: "The Ready condition.",
            },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "MetricsPusher injects the metrics-pusher sidecar, which pushes the pod's metrics to a Prometheus Remote-Write receiver, into the pods its selector matches in its namespace.",
              required: ["spec"],
              properties: {
                apiVersion: {
                  type: "string",
                  description: "APIVersion defines the versioned schema of this representation of an object.",
                },
                kind: {
                  type: "string",
                  description: "Kind is a string value representing the REST resource this object represents.",
                },
                metadata: { type: "object" },
                spec: specSchema(),
                status: statusSchema(),
              },
            },
          },
        },
      ],
    },
  };
}

export function crdYaml(): string {
  return `# Generated by operator/src/api/crd.ts — do not edit; run: node --conditions=source operator/src/api/crd.ts\n${stringify(buildCrd(), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

if (import.meta.main) {
  const out = new URL(`../../../${CRD_FILE}`, import.meta.url);
  writeFileSync(out, crdYaml());
  process.stdout.write(`wrote ${out.pathname}\n`);
}
