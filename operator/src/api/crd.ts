// The MetricsPusher CustomResourceDefinition, generated so that its validation is the pusher's own contract: every
// bound, grammar and reserved name comes from pusher/src/config.ts (ENV's kind/min/max, PATTERNS, DURATION_UNITS,
// RESERVED_HEADERS, RESERVED_LABEL_PREFIX) and is turned here into OpenAPI keywords and CEL rules, never retyped.
// What the apiserver accepts, the sidecar can start with; what no schema can tell, the controller and the webhook
// check with the pusher's parse (inject/sidecar.ts checkSidecar). `node --conditions=source operator/src/api/crd.ts`
// rewrites crds/metricspusher.dev_metricspushers.yaml; crd.test.ts fails when the committed file differs.
import { writeFileSync } from "node:fs";
import { stringify } from "yaml";
import {
  DURATION_UNITS,
  ENV,
  LOG_LEVELS,
  PATTERNS,
  RESERVED_HEADERS,
  RESERVED_LABEL_PREFIX,
  SCRAPE_LIMITS,
  SCRAPE_MAX_BYTES_DEFAULT,
  formatBytes,
  formatDuration,
} from "@metrics-pusher/pusher/config";
import type { EnvName, EnvSpec } from "@metrics-pusher/pusher/config";
import { DISCOVERED_DEFAULT_PATH, METRICS_PORT_NAMES } from "../inject/discovery.ts";
import { DEFAULT_SCRAPE_PATH, DISK_BUFFER_FRACTION, diskBufferBytes } from "../inject/sidecar.ts";
import { QUANTITY_PATTERN } from "./quantity.ts";
import {
  CRD_NAME,
  DOT_SEGMENT_PATTERN,
  DiscoveryMode,
  GROUP,
  KIND,
  LIST_KIND,
  MAX_SCRAPE_TARGETS,
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

const quote = (s: string) => `'${s}'`;

/** The operator's own cap on buffer.maxSamples (memory of one sidecar), below the pusher's. */
const MAX_SAMPLES_CAP = 10_000_000;

type Rule = NonNullable<Schema["x-kubernetes-validations"]>[number];

/** A CEL string literal holding `s` (a regular expression source, a duration). */
export const celString = (s: string): string => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

const spec = (name: EnvName): EnvSpec => ENV[name];

/** The pusher's duration grammar (parseDuration), without the sign and the bare 0 it also reads. */
export const DURATION_PATTERN = `^(([0-9]+([.][0-9]*)?|[.][0-9]+)(${DURATION_UNITS.join("|")}))+$`;

/** A duration field rendered into env `name`: the pusher's grammar as pattern, ENV's bounds as CEL. */
function duration(name: EnvName, description: string, example: string): Schema {
  const { min, max } = spec(name);
  const rules: Rule[] = [];
  const bounds: string[] = [];
  if (min !== undefined) {
    rules.push({
      rule: `duration(self) >= duration(${celString(formatDuration(min))})`,
      message: `must be at least ${formatDuration(min)} (the pusher's ${name})`,
      reason: "FieldValueInvalid",
    });
    bounds.push(`at least ${formatDuration(min)}`);
  }
  if (max !== undefined) {
    rules.push({
      rule: `duration(self) <= duration(${celString(formatDuration(max))})`,
      message: `must be at most ${formatDuration(max)} (the pusher's ${name})`,
      reason: "FieldValueInvalid",
    });
    bounds.push(`at most ${formatDuration(max)}`);
  }
  return {
    type: "string",
    maxLength: 64,
    pattern: DURATION_PATTERN,
    description: `${description} A Go duration such as ${example}${bounds.length > 0 ? `; ${bounds.join(", ")}` : ""}.`,
    "x-kubernetes-validations": rules,
  };
}

/** An integer field rendered into env `name`: ENV's bounds, narrowed by the operator's own where it has them. */
function integer(name: EnvName, description: string, narrower: { min?: number; max?: number } = {}): Schema {
  const lo = Math.max(spec(name).min ?? Number.MIN_SAFE_INTEGER, narrower.min ?? Number.MIN_SAFE_INTEGER);
  const hi = Math.min(spec(name).max ?? Number.MAX_SAFE_INTEGER, narrower.max ?? Number.MAX_SAFE_INTEGER);
  return { type: "integer", minimum: lo, maximum: hi, description: `${description} Between ${lo} and ${hi}.` };
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
  pattern: QUANTITY_PATTERN,
  // Bounds the cost of the CEL rules below (the apiserver estimates it from the longest string).
  maxLength: 64,
};
/** CEL: the quantity in `self`, an int or a string (string() of a string is the string). */
const QTY = "quantity(string(self))";

/** spec.buffer.disk.sizeLimit: the pusher gets diskBufferBytes(limit) as BUFFER_MAX_BYTES, so ENV's bounds on
 * BUFFER_MAX_BYTES become bounds on the limit. */
function diskSizeLimit(): Schema {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = spec("BUFFER_MAX_BYTES");
  let lo = Math.ceil(min / DISK_BUFFER_FRACTION);
  while (lo > 0 && diskBufferBytes(lo - 1) >= min) lo--;
  while (diskBufferBytes(lo) < min) lo++;
  let hi = Math.floor(max / DISK_BUFFER_FRACTION);
  while (diskBufferBytes(hi) > max) hi--;
  return boundedQuantity(
    `Size limit of the emptyDir, e.g. 256Mi or 268435456 (bytes); the pusher uses at most ${DISK_BUFFER_FRACTION * 100}% of it, so at least ${lo} bytes (that share is the pusher's least BUFFER_MAX_BYTES, ${formatBytes(min)}).`,
    lo,
    hi,
    `must be at least ${lo} bytes: the pusher keeps ${DISK_BUFFER_FRACTION * 100}% of it as BUFFER_MAX_BYTES, at least ${formatBytes(min)}`,
  );
}

/** A quantity between `lo` and `hi` (in its base unit), checked by CEL; `loMessage` says why the floor is there. */
function boundedQuantity(description: string, lo: number, hi: number, loMessage: string): Schema {
  return {
    ...quantity,
    description,
    "x-kubernetes-validations": [
      {
        rule: `!isQuantity(string(self)) || ${QTY}.compareTo(quantity('${lo}')) >= 0`,
        message: loMessage,
        reason: "FieldValueInvalid",
      },
      {
        rule: `!isQuantity(string(self)) || ${QTY}.compareTo(quantity('${hi}')) <= 0`,
        message: `must be at most ${hi} bytes`,
        reason: "FieldValueInvalid",
      },
    ],
  };
}

/** A quantity of bytes the pusher gets as the variable `name`, rounded up to whole bytes: ENV's bounds on the variable
 * become CEL bounds on the quantity. */
function bytesQuantity(name: EnvName, description: string): Schema {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = spec(name);
  return boundedQuantity(
    `${description} Between ${min} and ${max} bytes.`,
    min,
    max,
    `must be at least ${formatBytes(min)}`,
  );
}

function resourceList(description: string): Schema {
  return {
    type: "object",
    maxProperties: 16,
    description,
    additionalProperties: {
      ...quantity,
      "x-kubernetes-validations": [
        {
          rule: `!isQuantity(string(self)) || !${QTY}.isLessThan(quantity('0'))`,
          message: "must not be negative",
          reason: "FieldValueInvalid",
        },
      ],
    },
  };
}

// The Remote-Write URL: a strict subset of what the pusher's WHATWG URL parser accepts, as one regular expression
// (CEL's url() has no cost bound the apiserver can estimate). The host is a name whose last label starts with a letter
// (WHATWG reads a host ending in a number as an IPv4 address), a dotted-quad IPv4 or a bracketed IPv6 address; the
// port is at most 65535.
const HEX4 = "[0-9A-Fa-f]{1,4}";
const IPV6 = [
  `(${HEX4}:){7}${HEX4}`,
  `(${HEX4}:){1,7}:`,
  `(${HEX4}:){1,6}:${HEX4}`,
  `(${HEX4}:){1,5}(:${HEX4}){1,2}`,
  `(${HEX4}:){1,4}(:${HEX4}){1,3}`,
  `(${HEX4}:){1,3}(:${HEX4}){1,4}`,
  `(${HEX4}:){1,2}(:${HEX4}){1,5}`,
  `${HEX4}:(:${HEX4}){1,6}`,
  `:((:${HEX4}){1,7}|:)`,
].join("|");
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const LABEL = "[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?";
const NAME = `(${LABEL}[.])*[A-Za-z]([-A-Za-z0-9_]*[A-Za-z0-9_])?[.]?`;
const PORT = "([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
export const URL_PATTERN = `^https?://([^/?#@\\s]*@)?(${NAME}|(${OCTET}[.]){3}${OCTET}|\\[(${IPV6})\\])(:${PORT}?)?([/?#][^\\s]*)?$`;

function remoteWriteUrl(): Schema {
  return {
    type: "string",
    maxLength: 2048,
    pattern: URL_PATTERN,
    description:
      "Receiver endpoint, http:// or https://, e.g. http://prometheus.monitoring:9090/api/v1/write: a host name (its last label starting with a letter), a dotted-quad IPv4 address or a bracketed IPv6 address, and an optional port up to 65535. Credentials in the URL (user:password@) are used for basic auth, and then neither bearerTokenSecret nor basicAuth may be set.",
  };
}

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
  const pushIntervalDefault = spec("PUSH_INTERVAL").default!;
  const batch = Number(spec("MAX_SAMPLES_PER_SEND").default);
  return {
    type: "object",
    description:
      "Desired state: which pods get the pusher and how it is configured. What the apiserver accepts here, the sidecar can start with: the rules are generated from the pusher's own configuration contract.",
    required: ["selector", "remoteWrite"],
    "x-kubernetes-validations": [
      {
        rule: `!has(self.scrape) || !has(self.scrape.timeout) || duration(self.scrape.timeout) <= duration(has(self.pushInterval) ? self.pushInterval : ${celString(pushIntervalDefault)})`,
        message: "must not exceed pushInterval (the pusher's SCRAPE_TIMEOUT <= PUSH_INTERVAL)",
        fieldPath: ".scrape.timeout",
        reason: "FieldValueInvalid",
      },
    ],
    properties: {
      selector: labelSelector,
      remoteWrite: {
        type: "object",
        description: "Where and how the pusher sends samples (Prometheus Remote-Write 1.0).",
        required: ["url"],
        properties: {
          url: remoteWriteUrl(),
          timeout: duration(
            "TIMEOUT",
            `Timeout of one Remote-Write request. Default: the pusher's (${spec("TIMEOUT").default}).`,
            "10s",
          ),
          headers: {
            type: "object",
            maxProperties: 32,
            description: `Extra HTTP headers sent with every request (e.g. X-Scope-OrgID). Names are HTTP tokens, each at most once whatever its case; values hold tab, visible ASCII, space and Latin-1 characters only (no line break, no other control character, nothing above U+00FF such as €). Reserved headers are refused: ${RESERVED_HEADERS.join(", ")}; use bearerTokenSecret or basicAuth for credentials.`,
            additionalProperties: { type: "string", maxLength: 4096, pattern: PATTERNS.headerValue },
            "x-kubernetes-validations": [
              {
                rule: `self.all(k, k.matches(${celString(PATTERNS.headerName)}))`,
                message: "header names must be HTTP tokens",
                reason: "FieldValueInvalid",
              },
              {
                rule: `self.all(k, !(k.lowerAscii() in ${reserved}))`,
                message: `must not set a reserved header (${RESERVED_HEADERS.join(", ")})`,
                reason: "FieldValueForbidden",
              },
              {
                rule: "self.all(k, self.exists_one(j, j.lowerAscii() == k.lowerAscii()))",
                message: "a header name must not be repeated in another case",
                reason: "FieldValueDuplicate",
              },
            ],
          },
          bearerTokenSecret: secretRef("Bearer token sent as `Authorization: Bearer <token>`."),
          basicAuth: {
            type: "object",
            description: "HTTP basic authentication: passwordSecret and exactly one of username and usernameSecret.",
            required: ["passwordSecret"],
            properties: {
              username: {
                type: "string",
                minLength: 1,
                maxLength: 256,
                pattern: "\\S",
                description: "Literal user name, not blank (use usernameSecret to keep it in a Secret).",
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
              {
                rule: "has(self.username) || has(self.usernameSecret)",
                message: "set username or usernameSecret (the pusher needs a user name with the password)",
                reason: "FieldValueRequired",
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
          {
            rule: "!(has(self.bearerTokenSecret) || has(self.basicAuth)) || !self.url.matches('^https?://[^/?#]*@')",
            message: "the url holds credentials (user@): do not also set bearerTokenSecret or basicAuth",
            reason: "FieldValueForbidden",
          },
        ],
      },
      pushInterval: {
        ...duration(
          "PUSH_INTERVAL",
          `How often the pusher collects and pushes; targets are scraped at the same period. Default: ${pushIntervalDefault}.`,
          "30s",
        ),
        default: pushIntervalDefault,
      },
      logLevel: {
        type: "string",
        enum: [...LOG_LEVELS],
        description: `Log level of the pusher: ${LOG_LEVELS.join(", ")}. Default: ${spec("LOG_LEVEL").default}.`,
      },
      externalLabels: {
        type: "object",
        maxProperties: 32,
        description: `Labels added to every series the pusher sends (they never override job, instance, namespace or pod). Names match ${PATTERNS.labelName} and do not start with ${RESERVED_LABEL_PREFIX}; values are not empty.`,
        additionalProperties: { type: "string", minLength: 1, maxLength: 1024 },
        "x-kubernetes-validations": [
          {
            rule: `self.all(k, k.matches(${celString(PATTERNS.labelName)}))`,
            message: "label names must match [a-zA-Z_][a-zA-Z0-9_]*",
            reason: "FieldValueInvalid",
          },
          {
            rule: `self.all(k, !k.startsWith(${celString(RESERVED_LABEL_PREFIX)}))`,
            message: `label names starting with ${RESERVED_LABEL_PREFIX} are reserved`,
            reason: "FieldValueForbidden",
          },
        ],
      },
      scrape: {
        type: "object",
        description:
          "Prometheus endpoints of the pod's own containers, scraped on 127.0.0.1 every pushInterval and forwarded: the listed targets, and those discovery finds in each pod.",
        "x-kubernetes-validations": [
          {
            rule: `has(self.targets) || (has(self.discovery) && self.discovery != ${celString(DiscoveryMode.None)})`,
            message: "set targets, or a discovery other than None",
            reason: "FieldValueRequired",
          },
        ],
        properties: {
          discovery: {
            type: "string",
            enum: [...Object.values(DiscoveryMode)],
            description: `Where else the targets of each pod come from, read by the webhook from the pod it admits (scraped on 127.0.0.1 too). None (the default): only targets. Annotations: the pod's prometheus.io/scrape: "true" with prometheus.io/port (a port, or a comma list of ports; without it every declared TCP port), prometheus.io/path (default ${DISCOVERED_DEFAULT_PATH}) and prometheus.io/scheme (http or https), as Prometheus' kubernetes-pods example reads them. Ports: every TCP container port named ${METRICS_PORT_NAMES.join(" or ")}, path ${DISCOVERED_DEFAULT_PATH}. Auto: both, each port once. On a port that targets also lists, the listed path wins. prometheus.io/scrape: "false" under Annotations or Auto means no scrape target at all for that pod (the pusher still sends its own metrics). A port outside 1-65535, a path that is not a path, or more than ${MAX_SCRAPE_TARGETS} targets in all leave the pod without the sidecar (skip reason InvalidDiscovery). Pods of one workload get the same targets, and the config hash covers them: a template change that changes them rolls the workload once, as Kubernetes rolls any template change.`,
          },
          targets: {
            type: "array",
            maxItems: MAX_SCRAPE_TARGETS,
            description: "Ports and paths to scrape on localhost (127.0.0.1), each port and path at most once.",
            items: {
              type: "object",
              required: ["port"],
              properties: {
                port: { type: "integer", minimum: 1, maximum: 65535, description: "Container port, e.g. 8080." },
                path: {
                  type: "string",
                  maxLength: 1024,
                  pattern: PATTERNS.scrapePath,
                  description: `HTTP path on 127.0.0.1, with an optional ?query. Default: ${DEFAULT_SCRAPE_PATH}. Characters of an RFC 3986 path, no comma, no #fragment, no . or .. segment.`,
                  "x-kubernetes-validations": [
                    {
                      rule: `!self.matches(${celString(DOT_SEGMENT_PATTERN)})`,
                      message: "must not hold a . or .. segment",
                      reason: "FieldValueInvalid",
                    },
                  ],
                },
              },
            },
            "x-kubernetes-list-type": "atomic",
            "x-kubernetes-validations": [
              {
                rule: `self.all(t, self.exists_one(u, u.port == t.port && (has(u.path) ? u.path : ${celString(DEFAULT_SCRAPE_PATH)}) == (has(t.path) ? t.path : ${celString(DEFAULT_SCRAPE_PATH)})))`,
                message: "lists the same port and path twice",
                reason: "FieldValueDuplicate",
              },
            ],
          },
          job: { type: "string", maxLength: 256, description: "The job label of scraped series. Default: builder." },
          timeout: duration(
            "SCRAPE_TIMEOUT",
            "Timeout of one scrape, at most pushInterval. Default: the smaller of 10s and pushInterval.",
            "5s",
          ),
          sampleLimit: integer(
            "SCRAPE_SAMPLE_LIMIT",
            `Most samples accepted from one scrape of a target (Prometheus' sample_limit); a target exposing more gets up 0 for that scrape, stopped as soon as the parse passes the limit. It bounds the sidecar's memory: the default (${SCRAPE_LIMITS.sampleLimit.default}) fits the default memory limit; raise spec.resources with it. 0 removes the limit, and with it the memory bound.`,
          ),
          labelLimit: integer(
            "SCRAPE_LABEL_LIMIT",
            `Most labels of one scraped series, its name and the target's labels included (Prometheus' label_limit); more fails that scrape (up 0). Default: ${SCRAPE_LIMITS.labelLimit.default}. 0 removes the limit.`,
          ),
          bodySizeLimit: bytesQuantity(
            "SCRAPE_MAX_BYTES",
            `Largest exposition body read from a target, after gzip (Prometheus' body_size_limit), e.g. 4Mi or 4194304 (bytes); a larger one fails that scrape (up 0) as soon as the reading passes it. With the sample and label limits it bounds the sidecar's memory: the default (${formatBytes(SCRAPE_MAX_BYTES_DEFAULT)}) fits the default memory limit at the default limits; raise spec.resources with it.`,
          ),
          labelValueLengthLimit: integer(
            "SCRAPE_LABEL_VALUE_LENGTH_LIMIT",
            `Longest label value of a scraped series, in characters (Prometheus' label_value_length_limit); a longer one fails that scrape (up 0) as soon as it is read. With labelLimit it bounds the sidecar's memory per series. Default: ${SCRAPE_LIMITS.labelValueLengthLimit.default}, the value length that Mimir and Cortex refuse beyond by default. 0 removes the limit.`,
          ),
        },
      },
      buffer: {
        type: "object",
        description: "What the pusher keeps while the receiver is unreachable.",
        properties: {
          // At least one batch (the pusher's MAX_SAMPLES_PER_SEND, which the operator leaves at its default); at most
          // the operator's own cap, below the pusher's.
          maxSamples: integer(
            "BUFFER_MAX_SAMPLES",
            `Samples kept in memory; the oldest are dropped (and counted) beyond it. At least one Remote-Write batch (${batch}).`,
            { min: batch, max: MAX_SAMPLES_CAP },
          ),
          disk: {
            type: "object",
            description: "Keep unsent samples in an emptyDir so they survive a pusher restart.",
            required: ["sizeLimit"],
            properties: { sizeLimit: diskSizeLimit() },
          },
        },
      },
      image: {
        type: "string",
        minLength: 1,
        maxLength: 512,
        pattern: "^\\S+$",
        description:
          "Pusher image, not empty. Default: the operator's PUSHER_IMAGE; must match the operator's IMAGE_ALLOW_LIST.",
      },
      resources: {
        type: "object",
        description:
          "Resources of the injected container; replaces the operator's default (SIDECAR_RESOURCES: requests cpu 10m, memory 64Mi; limits memory 192Mi) as a whole. Quantities are strings (64Mi) or numbers of base units (67108864), not negative.",
        properties: {
          requests: resourceList("Minimum resources, e.g. {cpu: 10m, memory: 64Mi}."),
          limits: resourceList("Maximum resources, e.g. {memory: 192Mi}."),
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
        description:
          "Hash of the sidecar this MetricsPusher renders now; pods carry it in metricspusher.dev/injected. With spec.scrape.discovery, a pod whose declared targets are found carries the hash of its own sidecar, which covers them.",
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
