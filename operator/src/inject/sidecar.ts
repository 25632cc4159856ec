// PURE: a MetricsPusher spec + operator defaults → the injected container, its volumes and the config hash. The
// webhook and the controller both call renderSidecar, so the hash stamped on workloads and the one written into the
// pod's `injected` annotation can never disagree.
import { createHash } from "node:crypto";
import type { V1Container, V1EnvVar, V1ResourceRequirements, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import {
  ConfigError,
  formatDuration,
  formatHeaders,
  formatLabels,
  formatTargets,
  parse,
  parseDuration,
  PUSHER_NODE_OPTIONS,
} from "@metrics-pusher/pusher/config";
import type { Config, EnvName } from "@metrics-pusher/pusher/config";
import { SIDECAR_CONTAINER_NAME, SidecarMode, formatQuantity, parseQuantity } from "../api/index.ts";
import type { MetricsPusher, Quantity, ScrapeSpec, SecretKeyRef } from "../api/index.ts";
import type { DiscoveredTarget } from "./discovery.ts";

export interface SidecarDefaults {
  /** The operator's default pusher image. */
  readonly image: string;
  readonly runAsUser: number;
  readonly resources: V1ResourceRequirements;
  /** Whether the apiserver and every node's kubelet are >= 1.29 (sidecarMode Auto). */
  readonly nativeSidecarsSupported: boolean;
}

export interface RenderedSidecar {
  readonly container: V1Container;
  readonly volumes: readonly V1Volume[];
  /** true: goes into initContainers with restartPolicy Always; false: into containers. */
  readonly native: boolean;
  /** 16 hex characters of SHA-256 over the container, its volumes and its placement. */
  readonly hash: string;
  /** The URLs in SCRAPE_TARGETS: the listed targets, then the discovered ones. */
  readonly scrapeTargets: readonly string[];
}

/** What discovery found in the pod (discovery.ts), for renderSidecar. */
export interface PodTargets {
  readonly targets: readonly DiscoveredTarget[];
  /** The pod asked not to be scraped (prometheus.io/scrape: "false"): no target at all, listed ones included. */
  readonly optedOut: boolean;
}

const NO_POD_TARGETS: PodTargets = { targets: [], optedOut: false };

export const SECRETS_DIR = "/etc/metrics-pusher/secrets";
export const BUFFER_MOUNT_PATH = "/var/lib/metrics-pusher/buffer";
const VOLUME_PREFIX = "metrics-pusher-";

export function resolveNative(mode: string | undefined, nativeSidecarsSupported: boolean): boolean {
  if (mode === SidecarMode.Native) return true;
  if (mode === SidecarMode.Container) return false;
  return nativeSidecarsSupported;
}

/**
 * The sidecar for `pusher`. `found` is what discovery found in the pod (or its workload's template): the result
 * then depends on the pod too, and pods of one template get the same sidecar and hash.
 */
export function renderSidecar(
  pusher: MetricsPusher,
  defaults: SidecarDefaults,
  found: PodTargets = NO_POD_TARGETS,
): RenderedSidecar {
  const spec = pusher.spec;
  const rw = spec.remoteWrite;
  const env: V1EnvVar[] = [];
  const set = (name: EnvName, value: string | undefined): void => {
    if (value !== undefined) env.push({ name, value });
  };
  const fromField = (name: EnvName, fieldPath: string): void => {
    env.push({ name, valueFrom: { fieldRef: { apiVersion: "v1", fieldPath } } });
  };

  // Secrets: one optional volume per Secret, exposing only the referenced keys, so a missing Secret never blocks the
  // pod and a rotated one reaches the pusher (which re-reads the files) without a restart.
  const secretVolumes = new Map<string, { volume: string; keys: Set<string> }>();
  const secretFile = (ref: SecretKeyRef): string => {
    let v = secretVolumes.get(ref.name);
    if (!v) {
      v = { volume: `${VOLUME_PREFIX}secret-${secretVolumes.size}`, keys: new Set() };
      secretVolumes.set(ref.name, v);
    }
    v.keys.add(ref.key);
    return `${SECRETS_DIR}/${v.volume}/${ref.key}`;
  };

  set("PROMETHEUS_REMOTE_WRITE_URL", rw.url);
  set("PUSH_INTERVAL", canonicalDuration(spec.pushInterval));
  set("TIMEOUT", canonicalDuration(rw.timeout));
  set("LOG_LEVEL", spec.logLevel);
  fromField("NAMESPACE", "metadata.namespace");
  fromField("POD_NAME", "metadata.name");
  fromField("NODE_NAME", "spec.nodeName");
  if (spec.externalLabels && Object.keys(spec.externalLabels).length > 0)
    set("EXTERNAL_LABELS", formatLabels(sorted(spec.externalLabels)));
  if (rw.headers && Object.keys(rw.headers).length > 0) set("REMOTE_WRITE_HEADERS", formatHeaders(sorted(rw.headers)));
  if (rw.bearerTokenSecret) set("BEARER_TOKEN_FILE", secretFile(rw.bearerTokenSecret));
  if (rw.basicAuth) {
    if (rw.basicAuth.usernameSecret) set("BASIC_AUTH_USERNAME_FILE", secretFile(rw.basicAuth.usernameSecret));
    else set("BASIC_AUTH_USERNAME", rw.basicAuth.username);
    set("BASIC_AUTH_PASSWORD_FILE", secretFile(rw.basicAuth.passwordSecret));
  }
  if (rw.tlsCASecret) set("TLS_CA_FILE", secretFile(rw.tlsCASecret));
  if (rw.insecureSkipVerify) set("TLS_INSECURE_SKIP_VERIFY", "true");
  const targets = scrapeTargets(spec.scrape, found);
  if (targets.length > 0) {
    // The JSON form: a path can never split into a second target (the comma form would read one).
    set("SCRAPE_TARGETS", formatTargets(targets));
    set("SCRAPE_JOB", spec.scrape?.job);
    set("SCRAPE_TIMEOUT", canonicalDuration(spec.scrape?.timeout));
    // Only when set, so that the pusher's measured defaults apply otherwise.
    if (spec.scrape?.sampleLimit !== undefined) set("SCRAPE_SAMPLE_LIMIT", String(spec.scrape.sampleLimit));
    if (spec.scrape?.labelLimit !== undefined) set("SCRAPE_LABEL_LIMIT", String(spec.scrape.labelLimit));
    if (spec.scrape?.labelValueLengthLimit !== undefined) {
      set("SCRAPE_LABEL_VALUE_LENGTH_LIMIT", String(spec.scrape.labelValueLengthLimit));
    }
    if (spec.scrape?.bodySizeLimit !== undefined) {
      const bytes = parseQuantity(spec.scrape.bodySizeLimit);
      // Whole bytes, rounded up as Kubernetes rounds a quantity's value; an unreadable one is passed on for the
      // pusher's parse to refuse (checkSidecar reports it), as with the disk buffer's size limit below.
      set(
        "SCRAPE_MAX_BYTES",
        bytes === undefined ? formatQuantity(spec.scrape.bodySizeLimit) : String(Math.ceil(bytes)),
      );
    }
  }
  if (spec.buffer?.maxSamples !== undefined) set("BUFFER_MAX_SAMPLES", String(spec.buffer.maxSamples));
  // The pod is going away with the sidecar: its series end here (a standalone pusher's default is no markers).
  set("STALE_MARKERS_ON_SHUTDOWN", "true");
  // Node's own settings, as the image sets them (a user's own image may not): less idle memory at no CPU cost.
  env.push({ name: "NODE_OPTIONS", value: PUSHER_NODE_OPTIONS });

  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  for (const [secretName, v] of secretVolumes) {
    volumes.push({
      name: v.volume,
      secret: { secretName, optional: true, items: [...v.keys].sort().map((key) => ({ key, path: key })) },
    });
    mounts.push({ name: v.volume, mountPath: `${SECRETS_DIR}/${v.volume}`, readOnly: true });
  }
  if (spec.buffer?.disk) {
    const name = `${VOLUME_PREFIX}buffer`;
    const sizeLimit: Quantity = spec.buffer.disk.sizeLimit;
    volumes.push({ name, emptyDir: { sizeLimit: formatQuantity(sizeLimit) } });
    mounts.push({ name, mountPath: BUFFER_MOUNT_PATH });
    set("BUFFER_DIR", BUFFER_MOUNT_PATH);
    const bytes = parseQuantity(sizeLimit);
    // An unreadable limit is passed on as it is: the pusher's parse refuses it, so checkSidecar reports it instead
    // of the pusher falling back to a default that may exceed the emptyDir (which would get the pod evicted).
    set("BUFFER_MAX_BYTES", bytes === undefined ? formatQuantity(sizeLimit) : String(diskBufferBytes(bytes)));
  }

  const native = resolveNative(spec.sidecarMode, defaults.nativeSidecarsSupported);
  const container: V1Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: spec.image ?? defaults.image,
    env,
    resources: normalizeResources(spec.resources ?? defaults.resources),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: defaults.runAsUser,
      runAsGroup: defaults.runAsUser,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
    terminationMessagePolicy: "FallbackToLogsOnError",
    ...(mounts.length > 0 ? { volumeMounts: mounts } : {}),
    ...(native ? { restartPolicy: "Always" } : {}),
  };
  const hash = configHash({ container, volumes, native });
  return { container, volumes, native, hash, scrapeTargets: targets };
}

/**
 * The listed targets in their order, then the discovered ones on ports no listed target uses: for a port both name,
 * the MetricsPusher's own path wins over the pod's (README, Zero-config scraping).
 */
function scrapeTargets(scrape: ScrapeSpec | undefined, found: PodTargets): string[] {
  if (found.optedOut) return [];
  const listed = scrape?.targets ?? [];
  const ports = new Set(listed.map((t) => t.port));
  return [
    ...listed.map((t) => `${SCRAPE_ORIGIN}:${t.port}${normalizePath(t.path)}`),
    ...found.targets.filter((t) => !ports.has(t.port)).map((t) => `${t.scheme}://${SCRAPE_HOST}:${t.port}${t.path}`),
  ];
}

/** Stable across key order and processes: sorted-key JSON, SHA-256, first 16 hex characters. */
export function configHash(value: unknown): string {
  return createHash("sha256").update(stableStringify(value)).digest("hex").slice(0, 16);
}

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

function canonicalDuration(d: string | undefined): string | undefined {
  if (d === undefined) return undefined;
  try {
    return formatDuration(parseDuration(d));
  } catch {
    // The CRD's CEL rules refuse bad durations; pass anything else through and let the pusher report it.
    return d;
  }
}

/** The path scraped when a target names none. */
export const DEFAULT_SCRAPE_PATH = "/metrics";

function normalizePath(p: string | undefined): string {
  if (!p) return DEFAULT_SCRAPE_PATH;
  return p.startsWith("/") ? p : `/${p}`;
}

function sorted(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Scrape targets are always on the pod's own loopback: a MetricsPusher can never make the pusher scrape elsewhere. */
export const SCRAPE_ORIGIN = "http://127.0.0.1";
const SCRAPE_HOST = "127.0.0.1";

/** Share of the emptyDir's sizeLimit the pusher may fill (BUFFER_MAX_BYTES): exceeding the limit evicts the pod. */
export const DISK_BUFFER_FRACTION = 0.9;

export function diskBufferBytes(sizeLimitBytes: number): number {
  return Math.floor(sizeLimitBytes * DISK_BUFFER_FRACTION);
}

/** Quantities as strings (an int-or-string field may hold 268435456), everything else as it was. */
function normalizeResources(r: V1ResourceRequirements): V1ResourceRequirements {
  const out = structuredClone(r);
  const strings = (m: Record<string, Quantity> | undefined) =>
    m && Object.fromEntries(Object.entries(m).map(([k, v]) => [k, formatQuantity(v)]));
  if (out.requests) out.requests = strings(out.requests)!;
  if (out.limits) out.limits = strings(out.limits)!;
  return out;
}

/** The pod-supplied variables (downward API), as the kubelet would fill them in, for checkSidecar. */
function downwardValues(namespace: string): Record<string, string> {
  return { NAMESPACE: namespace, POD_NAME: "pod", NODE_NAME: "node" };
}

/**
 * Would the rendered sidecar start? The pusher's own parse on the rendered environment (credentials are file paths:
 * parse never opens them), plus the operator's promise that it scrapes only the pod's loopback. Returns the pusher's
 * message, or undefined when the sidecar can start.
 */
export function checkSidecar(container: V1Container, namespace: string): string | undefined {
  const env: Record<string, string> = downwardValues(namespace);
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  let config: Config;
  try {
    config = parse(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => p.message).join("; ");
    return `the pusher cannot read its configuration: ${(e as Error).message}`;
  }
  const away = config.scrapeTargets.filter((t) => URL.parse(t)?.hostname !== SCRAPE_HOST);
  if (away.length > 0) return `SCRAPE_TARGETS: ${away.join(", ")} not on ${SCRAPE_HOST}`;
  return undefined;
}

/** Whether `image` may be used as spec.image under `allowList` (see IMAGE_ALLOW_LIST). */
export function isImageAllowed(image: string, allowList: readonly string[], defaultImage: string): boolean {
  if (image === defaultImage) return true;
  return allowList.some((p) => {
    if (p === "*") return true;
    if (p.endsWith("*")) return image.startsWith(p.slice(0, -1));
    return image === p || image.startsWith(`${p}:`) || image.startsWith(`${p}@`);
  });
}
