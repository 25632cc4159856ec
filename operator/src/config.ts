// Operator settings: every one from an environment variable or the equivalent --flag (a flag wins), parsed once,
// frozen, every problem reported at once. main.ts exits with code 2 on OperatorConfigError.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { parseDuration } from "@metrics-pusher/pusher/config";
import type { V1ResourceRequirements } from "@kubernetes/client-node";
import { parseQuantity, systemNamespaces, WEBHOOK_PATH } from "./api/index.ts";

// Works from src/ and dist/ alike: both sit one level below operator/.
const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export const PUSHER_IMAGE_REPOSITORY = "ghcr.io/metrics-pusher/pusher";
export const DEFAULT_PUSHER_IMAGE = `${PUSHER_IMAGE_REPOSITORY}:${PACKAGE_VERSION}`;

export type SettingSpec = {
  readonly flag: string;
  readonly default?: string;
  readonly description: string;
};

/** Every setting, in documentation order. README.md ("Operator settings") lists the same table. */
export const SETTINGS = {
  PUSHER_IMAGE: {
    flag: "pusher-image",
    default: DEFAULT_PUSHER_IMAGE,
    description:
      "Image of the injected pusher when a MetricsPusher sets no spec.image. Its tag follows the operator's version, so an operator upgrade rolls matching workloads.",
  },
  IMAGE_ALLOW_LIST: {
    flag: "image-allow-list",
    default: PUSHER_IMAGE_REPOSITORY,
    description:
      "Comma-separated image patterns spec.image may use: `repo` allows every tag/digest of that repository, a trailing `*` is a prefix match, `*` allows everything. The default image is always allowed.",
  },
  WEBHOOK_PORT: {
    flag: "webhook-port",
    default: "9443",
    description: "HTTPS port of the mutating webhook (/mutate-v1-pod).",
  },
  METRICS_PORT: {
    flag: "metrics-port",
    default: "8080",
    description: "HTTP port of /metrics (Prometheus exposition).",
  },
  PROBE_PORT: { flag: "probe-port", default: "8081", description: "HTTP port of /healthz and /readyz." },
  BIND_ADDRESS: {
    flag: "bind-address",
    default: "0.0.0.0",
    description: "Address the three servers listen on (127.0.0.1 for a local run).",
  },
  WEBHOOK_URL: {
    flag: "webhook-url",
    description:
      "URL mode: register the webhook with clientConfig.url (e.g. https://127.0.0.1:9443/mutate-v1-pod) instead of the Service, and put its host into the certificate's SANs. For local runs and tests.",
  },
  WEBHOOK_SERVICE_NAME: {
    flag: "webhook-service-name",
    default: "metrics-pusher-webhook",
    description: "Service in front of the webhook (its DNS names go into the certificate).",
  },
  WEBHOOK_CONFIG_NAME: {
    flag: "webhook-config-name",
    default: "metrics-pusher",
    description:
      "MutatingWebhookConfiguration whose caBundle (and, in URL mode, clientConfig) the operator keeps up to date.",
  },
  CERT_SECRET_NAME: {
    flag: "cert-secret-name",
    default: "metrics-pusher-webhook-cert",
    description: "Secret in the operator's namespace holding the self-managed CA and serving certificate.",
  },
  CERT_DIR: {
    flag: "cert-dir",
    description:
      "Directory with tls.crt and tls.key (e.g. from cert-manager), reloaded on change. When set, the operator neither creates certificates nor patches caBundle.",
  },
  WEBHOOK_CLIENT_CA_FILE: {
    flag: "webhook-client-ca-file",
    description:
      "PEM file of the CA that signs the kube-apiserver's client certificate for webhooks (AdmissionConfiguration kubeConfigFile). When set, the webhook's TLS server requires a client certificate signed by it and refuses every connection without one. Re-read on change.",
  },
  CERT_VALIDITY: {
    flag: "cert-validity",
    default: "2160h",
    description: "Lifetime of the self-managed serving certificate; renewed when a third of it is left.",
  },
  CA_VALIDITY: {
    flag: "ca-validity",
    default: "87600h",
    description: "Lifetime of the self-managed CA; replaced (with a new leaf) when a third of it is left.",
  },
  LEASE_NAME: {
    flag: "lease-name",
    default: "metrics-pusher-leader",
    description: "coordination.k8s.io Lease for leader election, in the operator's namespace.",
  },
  LEADER_ELECTION: {
    flag: "leader-election",
    default: "true",
    description: "false to run the controller without a Lease (a single replica only).",
  },
  LEASE_DURATION: { flag: "lease-duration", default: "15s", description: "How long a Lease is valid without renewal." },
  LEASE_RENEW_DEADLINE: {
    flag: "lease-renew-deadline",
    default: "10s",
    description: "The leader gives up leadership when it could not renew for this long.",
  },
  LEASE_RETRY_PERIOD: { flag: "lease-retry-period", default: "2s", description: "Period of acquire/renew attempts." },
  WATCH_NAMESPACES: {
    flag: "watch-namespaces",
    default: "",
    description: "Comma-separated namespaces to serve; empty = all namespaces.",
  },
  LOG_LEVEL: { flag: "log-level", default: "info", description: "trace, debug, info, warn, error or fatal." },
  ROLLOUT_MAX_PER_INTERVAL: {
    flag: "rollout-max-per-interval",
    default: "5",
    description:
      "Most workloads the controller rolls (config change or drift repair) per ROLLOUT_INTERVAL, across the cluster.",
  },
  ROLLOUT_INTERVAL: { flag: "rollout-interval", default: "1m", description: "Window of ROLLOUT_MAX_PER_INTERVAL." },
  DRIFT_REPAIR: {
    flag: "drift-repair",
    default: "true",
    description: "false to never re-roll workloads whose pods lack the sidecar.",
  },
  RESYNC_PERIOD: {
    flag: "resync-period",
    default: "10m",
    description: "Period of a full reconcile of every MetricsPusher.",
  },
  SIDECAR_RUN_AS_USER: {
    flag: "sidecar-run-as-user",
    default: "65532",
    description: "Numeric user id of the injected container (the pusher image's non-root user).",
  },
  SIDECAR_RESOURCES: {
    flag: "sidecar-resources",
    default: '{"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"192Mi"}}',
    description:
      "Default resources of the injected container (JSON V1ResourceRequirements); a MetricsPusher's spec.resources replaces it.",
  },
  POD_NAMESPACE: {
    flag: "pod-namespace",
    default: "metrics-pusher-system",
    description: "The operator's namespace (downward API): Secret, Lease and Events live here.",
  },
  POD_NAME: {
    flag: "pod-name",
    description: "The operator's pod name (downward API): its leader-election identity. Default: the host name.",
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type OperatorLogLevel = (typeof LOG_LEVELS)[number];

export interface OperatorConfig {
  readonly version: string;
  readonly pusherImage: string;
  readonly imageAllowList: readonly string[];
  readonly webhookPort: number;
  readonly metricsPort: number;
  readonly probePort: number;
  readonly bindAddress: string;
  /** URL mode when set: clientConfig.url instead of the Service. */
  readonly webhookUrl: string | undefined;
  readonly webhookServiceName: string;
  readonly webhookConfigName: string;
  readonly certSecretName: string;
  /** cert-manager mode when set. */
  readonly certDir: string | undefined;
  /** When set, the webhook requires client certificates signed by this CA. */
  readonly webhookClientCaFile: string | undefined;
  readonly certValidityMs: number;
  readonly caValidityMs: number;
  /** DNS names and IP addresses the serving certificate must cover. */
  readonly certDnsNames: readonly string[];
  readonly certIpAddresses: readonly string[];
  readonly leaseName: string;
  readonly leaderElection: boolean;
  readonly leaseDurationMs: number;
  readonly leaseRenewDeadlineMs: number;
  readonly leaseRetryPeriodMs: number;
  /** Empty = every namespace. */
  readonly watchNamespaces: readonly string[];
  /** Namespaces the webhook never injects into, whatever the webhook configuration says. */
  readonly systemNamespaces: readonly string[];
  readonly logLevel: OperatorLogLevel;
  readonly rolloutMaxPerInterval: number;
  readonly rolloutIntervalMs: number;
  readonly driftRepair: boolean;
  readonly resyncPeriodMs: number;
  readonly sidecarRunAsUser: number;
  readonly sidecarResources: V1ResourceRequirements;
  readonly podNamespace: string;
  readonly podName: string;
}

export interface OperatorConfigProblem {
  readonly setting: SettingName | "flags";
  readonly value: string | undefined;
  readonly message: string;
}

export class OperatorConfigError extends Error {
  readonly problems: readonly OperatorConfigProblem[];
  constructor(problems: OperatorConfigProblem[]) {
    super(
      `invalid operator configuration:\n${problems.map((p) => `  ${p.setting === "flags" ? "" : `${p.setting} (--${SETTINGS[p.setting].flag}) `}${p.message}`).join("\n")}`,
    );
    this.name = "OperatorConfigError";
    this.problems = Object.freeze(problems.map((p) => Object.freeze(p)));
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Parses settings from `env` and `argv` (flags win). Throws OperatorConfigError listing every problem. */
export function parseOperatorConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[] = [],
): OperatorConfig {
  const problems: OperatorConfigProblem[] = [];
  const flags = parseFlags(argv, problems);
  const raw = (name: SettingName): string | undefined => {
    const spec: SettingSpec = SETTINGS[name];
    const v = flags.get(spec.flag) ?? env[name];
    return v === undefined || v === "" ? spec.default : v;
  };
  const problem = (setting: SettingName, message: string): void => {
    problems.push({ setting, value: raw(setting), message: `${JSON.stringify(raw(setting) ?? "")}: ${message}` });
  };

  const port = (name: SettingName): number => {
    const v = raw(name) ?? "";
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 65535) {
      problem(name, "must be a port number 1-65535");
      return 0;
    }
    return n;
  };
  const duration = (name: SettingName): number => {
    try {
      const ms = parseDuration(raw(name) ?? "");
      if (ms <= 0) throw new Error("must be > 0");
      return ms;
    } catch (err) {
      problem(name, `must be a positive duration such as 30s or 1h (${(err as Error).message})`);
      return 1;
    }
  };
  const bool = (name: SettingName): boolean => {
    const v = (raw(name) ?? "").toLowerCase();
    if (v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    problem(name, "must be true or false");
    return false;
  };
  const positiveInt = (name: SettingName, min: number): number => {
    const v = raw(name) ?? "";
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || !Number.isSafeInteger(n)) {
      problem(name, `must be an integer >= ${min}`);
      return min;
    }
    return n;
  };
  const dnsName = (name: SettingName, re: RegExp, max: number): string => {
    const v = raw(name) ?? "";
    if (!re.test(v) || v.length > max)
      problem(name, `must be a Kubernetes name (lower-case alphanumerics and '-', at most ${max} characters)`);
    return v;
  };
  const list = (name: SettingName): string[] =>
    (raw(name) ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");

  const pusherImage = raw("PUSHER_IMAGE") ?? "";
  if (!isImageReference(pusherImage)) problem("PUSHER_IMAGE", "must be an image reference such as registry/repo:tag");
  const imageAllowList = list("IMAGE_ALLOW_LIST");
  for (const p of imageAllowList) {
    if (p !== "*" && !isImageReference(p.replace(/\*$/, "x")))
      problem("IMAGE_ALLOW_LIST", `pattern "${p}" is not an image repository or prefix`);
  }

  const webhookPort = port("WEBHOOK_PORT");
  const metricsPort = port("METRICS_PORT");
  const probePort = port("PROBE_PORT");
  if (webhookPort && new Set([webhookPort, metricsPort, probePort]).size < 3) {
    problem(
      "WEBHOOK_PORT",
      `WEBHOOK_PORT, METRICS_PORT and PROBE_PORT must differ (${webhookPort}, ${metricsPort}, ${probePort})`,
    );
  }
  const bindAddress = raw("BIND_ADDRESS") ?? "";
  if (isIP(bindAddress) === 0) problem("BIND_ADDRESS", "must be an IP address");

  const podNamespace = dnsName("POD_NAMESPACE", DNS_LABEL, 63);
  const webhookServiceName = dnsName("WEBHOOK_SERVICE_NAME", DNS_LABEL, 63);
  const webhookConfigName = dnsName("WEBHOOK_CONFIG_NAME", DNS_SUBDOMAIN, 253);
  const certSecretName = dnsName("CERT_SECRET_NAME", DNS_SUBDOMAIN, 253);
  const leaseName = dnsName("LEASE_NAME", DNS_SUBDOMAIN, 253);

  let webhookUrl: string | undefined = raw("WEBHOOK_URL");
  const certDnsNames = [
    webhookServiceName,
    `${webhookServiceName}.${podNamespace}`,
    `${webhookServiceName}.${podNamespace}.svc`,
    `${webhookServiceName}.${podNamespace}.svc.cluster.local`,
  ];
  const certIpAddresses: string[] = [];
  if (webhookUrl !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(webhookUrl);
    } catch {
      problem("WEBHOOK_URL", "must be an absolute https URL such as https://127.0.0.1:9443/mutate-v1-pod");
    }
    if (u) {
      if (u.protocol !== "https:")
        problem("WEBHOOK_URL", "must use https (the apiserver only calls webhooks over TLS)");
      if (u.username || u.password || u.search || u.hash)
        problem("WEBHOOK_URL", "must not carry user info, a query or a fragment");
      if (u.pathname !== WEBHOOK_PATH) problem("WEBHOOK_URL", `path must be ${WEBHOOK_PATH}`);
      const host = u.hostname.replace(/^\[|\]$/g, "");
      if (isIP(host)) certIpAddresses.push(host);
      else certDnsNames.push(host);
      webhookUrl = u.toString();
    }
  }

  const certDir = raw("CERT_DIR");
  const webhookClientCaFile = raw("WEBHOOK_CLIENT_CA_FILE");
  if (webhookClientCaFile !== undefined) {
    try {
      if (!readFileSync(webhookClientCaFile, "utf8").includes("-----BEGIN CERTIFICATE-----"))
        problem("WEBHOOK_CLIENT_CA_FILE", "holds no PEM certificate");
    } catch (err) {
      problem(
        "WEBHOOK_CLIENT_CA_FILE",
        `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
  }
  const certValidityMs = duration("CERT_VALIDITY");
  const caValidityMs = duration("CA_VALIDITY");
  if (certValidityMs > caValidityMs) problem("CERT_VALIDITY", "must not exceed CA_VALIDITY");

  const leaseDurationMs = duration("LEASE_DURATION");
  const leaseRenewDeadlineMs = duration("LEASE_RENEW_DEADLINE");
  const leaseRetryPeriodMs = duration("LEASE_RETRY_PERIOD");
  if (leaseRenewDeadlineMs >= leaseDurationMs) problem("LEASE_RENEW_DEADLINE", "must be shorter than LEASE_DURATION");
  if (leaseRetryPeriodMs >= leaseRenewDeadlineMs)
    problem("LEASE_RETRY_PERIOD", "must be shorter than LEASE_RENEW_DEADLINE");

  const watchNamespaces = list("WATCH_NAMESPACES");
  for (const ns of watchNamespaces)
    if (!DNS_LABEL.test(ns)) problem("WATCH_NAMESPACES", `"${ns}" is not a namespace name`);

  const logLevel = raw("LOG_LEVEL") as OperatorLogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problem("LOG_LEVEL", `must be one of ${LOG_LEVELS.join(", ")}`);

  const sidecarRunAsUser = positiveInt("SIDECAR_RUN_AS_USER", 1);
  let sidecarResources: V1ResourceRequirements = {};
  try {
    const parsed: unknown = JSON.parse(raw("SIDECAR_RESOURCES") ?? "");
    if (!isResources(parsed))
      throw new Error('expected {requests?: {...}, limits?: {...}} with quantities such as "64Mi" or 67108864');
    sidecarResources = parsed;
  } catch (err) {
    problem("SIDECAR_RESOURCES", `must be JSON resource requirements (${(err as Error).message})`);
  }

  const config: OperatorConfig = {
    version: PACKAGE_VERSION,
    pusherImage,
    imageAllowList,
    webhookPort,
    metricsPort,
    probePort,
    bindAddress,
    webhookUrl,
    webhookServiceName,
    webhookConfigName,
    certSecretName,
    certDir,
    webhookClientCaFile,
    certValidityMs,
    caValidityMs,
    certDnsNames,
    certIpAddresses,
    leaseName,
    leaderElection: bool("LEADER_ELECTION"),
    leaseDurationMs,
    leaseRenewDeadlineMs,
    leaseRetryPeriodMs,
    watchNamespaces,
    systemNamespaces: systemNamespaces(podNamespace),
    logLevel,
    rolloutMaxPerInterval: positiveInt("ROLLOUT_MAX_PER_INTERVAL", 1),
    rolloutIntervalMs: duration("ROLLOUT_INTERVAL"),
    driftRepair: bool("DRIFT_REPAIR"),
    resyncPeriodMs: duration("RESYNC_PERIOD"),
    sidecarRunAsUser,
    sidecarResources,
    podNamespace,
    podName: raw("POD_NAME") ?? hostname(),
  };
  if (problems.length > 0) throw new OperatorConfigError(problems);
  return deepFreeze(config);
}

function parseFlags(argv: readonly string[], problems: OperatorConfigProblem[]): Map<string, string> {
  const options = Object.fromEntries(Object.values(SETTINGS).map((s) => [s.flag, { type: "string" as const }]));
  const out = new Map<string, string>();
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    for (const [k, v] of Object.entries(values)) if (typeof v === "string") out.set(k, v);
  } catch (err) {
    problems.push({ setting: "flags", value: argv.join(" "), message: (err as Error).message });
  }
  return out;
}

// registry[:port]/path[:tag][@sha256:digest], lower-case path (the distribution reference grammar, loosely).
const IMAGE_REF =
  /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

export function isImageReference(s: string): boolean {
  return s.length <= 512 && IMAGE_REF.test(s);
}

function isResources(v: unknown): v is V1ResourceRequirements {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  for (const [k, section] of Object.entries(v as Record<string, unknown>)) {
    if (k !== "requests" && k !== "limits") return false;
    if (typeof section !== "object" || section === null) return false;
    // Quantities as the apiserver takes them: "64Mi" or a number of base units.
    for (const q of Object.values(section as Record<string, unknown>)) if (parseQuantity(q) === undefined) return false;
  }
  return true;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === "object" && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** `--help` text: every setting with its env name, flag and default. */
export function settingsHelp(): string {
  return Object.entries(SETTINGS)
    .map(
      ([name, s]: [string, SettingSpec]) =>
        `  --${s.flag} / ${name}${s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : ""}\n      ${s.description}`,
    )
    .join("\n");
}
