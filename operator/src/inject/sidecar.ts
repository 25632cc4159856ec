// PURE: a MetricsPusher spec + operator defaults → the injected container, its volumes and the config hash. The
// webhook and the controller both call renderSidecar, so the hash stamped on workloads and the one written into the
// pod's `injected` annotation can never disagree.
import { createHash } from "node:crypto";
import type { V1Container, V1EnvVar, V1ResourceRequirements, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import {
  formatDuration,
  formatHeaders,
  formatLabels,
  parseDuration,
  PUSHER_NODE_OPTIONS,
} from "@metrics-pusher/pusher/config";
import type { EnvName } from "@metrics-pusher/pusher/config";
import { SIDECAR_CONTAINER_NAME, SidecarMode } from "../api/index.ts";
import type { MetricsPusher, SecretKeyRef } from "../api/index.ts";

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
}

export const SECRETS_DIR = "/etc/metrics-pusher/secrets";
export const BUFFER_MOUNT_PATH = "/var/lib/metrics-pusher/buffer";
const VOLUME_PREFIX = "metrics-pusher-";

export function resolveNative(mode: string | undefined, nativeSidecarsSupported: boolean): boolean {
  if (mode === SidecarMode.Native) return true;
  if (mode === SidecarMode.Container) return false;
  return nativeSidecarsSupported;
}

export function renderSidecar(pusher: MetricsPusher, defaults: SidecarDefaults): RenderedSidecar {
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
  const targets = spec.scrape?.targets ?? [];
  if (targets.length > 0) {
    set("SCRAPE_TARGETS", targets.map((t) => `http://127.0.0.1:${t.port}${normalizePath(t.path)}`).join(","));
    set("SCRAPE_JOB", spec.scrape?.job);
    set("SCRAPE_TIMEOUT", canonicalDuration(spec.scrape?.timeout));
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
    volumes.push({ name, emptyDir: { sizeLimit: spec.buffer.disk.sizeLimit } });
    mounts.push({ name, mountPath: BUFFER_MOUNT_PATH });
    set("BUFFER_DIR", BUFFER_MOUNT_PATH);
    const bytes = quantityBytes(spec.buffer.disk.sizeLimit);
    // Leave headroom below the emptyDir limit: exceeding it gets the whole pod evicted.
    if (bytes !== undefined) set("BUFFER_MAX_BYTES", String(Math.floor(bytes * 0.9)));
  }

  const native = resolveNative(spec.sidecarMode, defaults.nativeSidecarsSupported);
  const container: V1Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: spec.image ?? defaults.image,
    env,
    resources: structuredClone(spec.resources ?? defaults.resources),
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
  return { container, volumes, native, hash };
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

function normalizePath(p: string | undefined): string {
  if (!p) return "/metrics";
  return p.startsWith("/") ? p : `/${p}`;
}

function sorted(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const QUANTITY_SUFFIX: Readonly<Record<string, number>> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** A Kubernetes memory/storage quantity in bytes; undefined for forms the sidecar need not understand. */
export function quantityBytes(q: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q.trim());
  if (!m) return undefined;
  return Number(m[1]) * QUANTITY_SUFFIX[m[2] ?? ""]!;
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
