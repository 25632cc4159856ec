// The MetricsPusher API, group metricspusher.dev version v1alpha1. crds/ is generated from crds/generate.ts, which
// mirrors these types; keep both in step (crds/crd.test.ts fails when the committed YAML drifts).
import type { V1Condition, V1LabelSelector, V1ObjectMeta, V1ResourceRequirements } from "@kubernetes/client-node";
import type { Quantity } from "./quantity.ts";

export const GROUP = "metricspusher.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = "metricspusher.dev/v1alpha1";
export const KIND = "MetricsPusher";
export const LIST_KIND = "MetricsPusherList";
export const PLURAL = "metricspushers";
export const SINGULAR = "metricspusher";
export const SHORT_NAMES = ["mp"] as const;
export const CRD_NAME = `${PLURAL}.${GROUP}`;

export const SidecarMode = {
  /** Native sidecar when the apiserver and every node's kubelet are >= 1.29, else a regular container. */
  Auto: "Auto",
  /** Always an init container with restartPolicy Always (Kubernetes >= 1.29). */
  Native: "Native",
  /** Always a regular container. */
  Container: "Container",
} as const;
export type SidecarMode = (typeof SidecarMode)[keyof typeof SidecarMode];

export const RolloutStrategy = {
  /** Stamp the config hash on matching workloads' pod templates so Kubernetes rolls them. */
  Workload: "Workload",
  /** Only new pods get the new config. */
  None: "None",
} as const;
export type RolloutStrategy = (typeof RolloutStrategy)[keyof typeof RolloutStrategy];

export const DiscoveryMode = {
  /** Only spec.scrape.targets. */
  None: "None",
  /** The pod's prometheus.io/scrape, port, path and scheme annotations, as Prometheus' kubernetes-pods example. */
  Annotations: "Annotations",
  /** Every TCP container port named metrics or http-metrics. */
  Ports: "Ports",
  /** Annotations and Ports together, each port once. */
  Auto: "Auto",
} as const;
export type DiscoveryMode = (typeof DiscoveryMode)[keyof typeof DiscoveryMode];

/** The most scrape targets of one sidecar, listed and discovered together: each has its own limits, so their memory
 * adds up (docs/pusher.md). */
export const MAX_SCRAPE_TARGETS = 16;

/** A scrape path's `.` or `..` segment before any query, plain or percent-encoded: refused in listed and discovered
 * paths alike (a URL would resolve it away, scraping another path than the one written). RE2 and JavaScript alike. */
export const DOT_SEGMENT_PATTERN = "^[^?]*/([.]|%2[eE]){1,2}([/?]|$)";

export const LogLevel = { debug: "debug", info: "info", warn: "warn", error: "error" } as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** A key of a Secret in the MetricsPusher's own namespace (no namespace field on purpose). */
export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface BasicAuth {
  /** A literal user name; usernameSecret wins when both are set. */
  username?: string;
  usernameSecret?: SecretKeyRef;
  passwordSecret: SecretKeyRef;
}

export interface RemoteWriteSpec {
  /** http:// or https:// Remote-Write endpoint. */
  url: string;
  /** Go-style duration, e.g. "30s". */
  timeout?: string;
  headers?: Record<string, string>;
  bearerTokenSecret?: SecretKeyRef;
  basicAuth?: BasicAuth;
  tlsCASecret?: SecretKeyRef;
  insecureSkipVerify?: boolean;
}

export interface ScrapeTarget {
  /** Port of the main container, scraped on 127.0.0.1. */
  port: number;
  /** Default "/metrics". */
  path?: string;
}

export interface ScrapeSpec {
  /** Listed targets; optional when discovery finds them. */
  targets?: ScrapeTarget[];
  /** Where else targets come from: the pod's own annotations or named ports. Default None. */
  discovery?: DiscoveryMode;
  /** The job label of scraped series; the pusher's default when unset. */
  job?: string;
  timeout?: string;
  /** Most samples of one scrape (the pusher's SCRAPE_SAMPLE_LIMIT); the pusher's default when unset, 0 = none. */
  sampleLimit?: number;
  /** Most labels of one scraped series (SCRAPE_LABEL_LIMIT); the pusher's default when unset, 0 = none. */
  labelLimit?: number;
  /** Longest label value (SCRAPE_LABEL_VALUE_LENGTH_LIMIT); the pusher's default when unset, 0 = none. */
  labelValueLengthLimit?: number;
  /** Largest exposition body, a quantity ("4Mi" or bytes): the pusher's SCRAPE_MAX_BYTES; its default when unset. */
  bodySizeLimit?: Quantity;
}

export interface DiskBufferSpec {
  /** emptyDir size limit, a quantity: "256Mi" or a number of bytes (the apiserver keeps either form). */
  sizeLimit: Quantity;
}

export interface BufferSpec {
  /** Samples held in memory while the receiver is unreachable. */
  maxSamples?: number;
  /** Keep unsent samples in an emptyDir so they survive a pusher restart. */
  disk?: DiskBufferSpec;
}

export interface MetricsPusherSpec {
  selector: V1LabelSelector;
  remoteWrite: RemoteWriteSpec;
  pushInterval?: string;
  logLevel?: LogLevel;
  externalLabels?: Record<string, string>;
  scrape?: ScrapeSpec;
  buffer?: BufferSpec;
  image?: string;
  resources?: V1ResourceRequirements;
  sidecarMode?: SidecarMode;
  rolloutStrategy?: RolloutStrategy;
}

export interface MetricsPusherStatus {
  observedGeneration?: number;
  conditions?: V1Condition[];
  matchedWorkloads?: number;
  updatedWorkloads?: number;
  /** The hash of the sidecar this MetricsPusher renders now (what the webhook writes into `injected`). */
  configHash?: string;
}

export interface MetricsPusher {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: MetricsPusherSpec;
  status?: MetricsPusherStatus;
}
