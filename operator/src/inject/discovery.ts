// PURE: where a pod says its metrics are (spec.scrape.discovery), read from the pod the webhook admits, or from a
// workload's pod template, which gives the same answer for every pod made from it. No I/O.
//
// Annotations follows Prometheus' kubernetes-pods example job: prometheus.io/scrape must be "true"; prometheus.io/port
// replaces the port (here a comma list of ports may stand); without it every declared port is scraped;
// prometheus.io/path and prometheus.io/scheme set the path and scheme of those targets. Ports takes every TCP
// container port named metrics or http-metrics. Every target stays on the pod's loopback (sidecar.ts SCRAPE_HOST).
import type { V1Container, V1ObjectMeta, V1PodSpec } from "@kubernetes/client-node";
import { PATTERNS } from "@metrics-pusher/pusher/config";
import { DOT_SEGMENT_PATTERN, DiscoveryMode, MAX_SCRAPE_TARGETS, SIDECAR_CONTAINER_NAME } from "../api/index.ts";

export const PrometheusAnnotations = {
  scrape: "prometheus.io/scrape",
  port: "prometheus.io/port",
  path: "prometheus.io/path",
  scheme: "prometheus.io/scheme",
} as const;

/** Container port names that Ports discovery takes, in the order of the Prometheus community's conventions. */
export const METRICS_PORT_NAMES: readonly string[] = ["metrics", "http-metrics"];

/** The path of a discovered target without prometheus.io/path (Prometheus' default metrics_path). */
export const DISCOVERED_DEFAULT_PATH = "/metrics";

/** A path longer than this is refused: the same bound as spec.scrape.targets[].path. */
export const MAX_PATH_LENGTH = 1024;

const SCRAPE_PATH = new RegExp(PATTERNS.scrapePath);
const DOT_SEGMENT = new RegExp(DOT_SEGMENT_PATTERN);
/** The most characters of a refused annotation value quoted in a message (Events and warnings stay short). */
const QUOTE_MAX = 64;

export interface DiscoveredTarget {
  readonly scheme: "http" | "https";
  readonly port: number;
  readonly path: string;
}

export type Discovery =
  | {
      readonly kind: "targets";
      readonly targets: readonly DiscoveredTarget[];
      /** prometheus.io/scrape: "false" under Annotations or Auto: the pod asks not to be scraped at all, explicit
       * spec.scrape.targets included. */
      readonly optedOut: boolean;
    }
  | { readonly kind: "invalid"; readonly message: string };

interface PodView {
  readonly metadata?: Pick<V1ObjectMeta, "annotations"> | undefined;
  readonly spec?: Pick<V1PodSpec, "containers" | "initContainers"> | undefined;
}

const NONE: Discovery = { kind: "targets", targets: [], optedOut: false };

/** The targets `mode` finds in `pod`, in a fixed order (annotation ports as written, then named ports in container
 * order), each port once; or why the pod's own declaration cannot be used. */
export function discover(mode: string | undefined, pod: PodView): Discovery {
  if (mode === undefined || mode === DiscoveryMode.None) return NONE;
  const annotations = pod.metadata?.annotations ?? {};
  const useAnnotations = mode === DiscoveryMode.Annotations || mode === DiscoveryMode.Auto;
  const usePorts = mode === DiscoveryMode.Ports || mode === DiscoveryMode.Auto;
  const scrape = annotations[PrometheusAnnotations.scrape];
  if (useAnnotations && scrape?.trim() === "false") return { kind: "targets", targets: [], optedOut: true };

  // Each port once, the first finding wins; counting stops past the cap, so a pod declaring a million ports costs
  // no more than one declaring seventeen.
  const found = new Map<number, DiscoveredTarget>();
  const add = (t: DiscoveredTarget): boolean => {
    if (!found.has(t.port)) found.set(t.port, t);
    return found.size <= MAX_SCRAPE_TARGETS;
  };
  const tooMany = (): Discovery => ({
    kind: "invalid",
    message: `more than ${MAX_SCRAPE_TARGETS} metrics endpoints, the most one sidecar scrapes`,
  });
  // Prometheus keeps a pod only when the annotation says "true" (its keep rule's regex).
  if (useAnnotations && scrape?.trim() === "true") {
    const fromAnnotations = annotationTargets(annotations, containersOf(pod));
    if (typeof fromAnnotations === "string") return { kind: "invalid", message: fromAnnotations };
    for (const t of fromAnnotations) if (!add(t)) return tooMany();
  }
  if (usePorts) {
    for (const port of tcpPorts(containersOf(pod))) {
      if (port.name === undefined || !METRICS_PORT_NAMES.includes(port.name)) continue;
      if (!add({ scheme: "http", port: port.containerPort, path: DISCOVERED_DEFAULT_PATH })) return tooMany();
    }
  }
  return { kind: "targets", targets: [...found.values()], optedOut: false };
}

function annotationTargets(
  annotations: Readonly<Record<string, string>>,
  containers: readonly V1Container[],
): DiscoveredTarget[] | string {
  const schemeText = annotations[PrometheusAnnotations.scheme];
  let scheme: "http" | "https" = "http";
  // An empty value is unset, as for the port and the path.
  if (schemeText !== undefined && schemeText.trim() !== "") {
    const s = schemeText.trim();
    if (s !== "http" && s !== "https") return refused(PrometheusAnnotations.scheme, schemeText, "is not http or https");
    scheme = s;
  }

  const pathText = annotations[PrometheusAnnotations.path];
  let path = DISCOVERED_DEFAULT_PATH;
  if (pathText !== undefined && pathText.trim() !== "") {
    const p = pathText.trim();
    // A URL is not a path: the target stays on the pod's loopback whatever the annotation says.
    if (/^[A-Za-z][-A-Za-z0-9+.]*:/.test(p))
      return refused(PrometheusAnnotations.path, pathText, "is a URL, not a path: the target stays on 127.0.0.1");
    // Prometheus reads "metrics" as /metrics (a URL's path always starts at the root).
    path = p.startsWith("/") ? p : `/${p}`;
    if (path.length > MAX_PATH_LENGTH)
      return refused(PrometheusAnnotations.path, pathText, `is longer than ${MAX_PATH_LENGTH} characters`);
    if (!SCRAPE_PATH.test(path)) {
      return refused(
        PrometheusAnnotations.path,
        pathText,
        "is not a path: RFC 3986 path characters and an optional ?query, no comma, no #fragment",
      );
    }
    if (DOT_SEGMENT.test(path)) return refused(PrometheusAnnotations.path, pathText, "holds a . or .. segment");
  }

  const portText = annotations[PrometheusAnnotations.port];
  if (portText === undefined || portText.trim() === "") {
    // As Prometheus' pod role: a target for every declared port; with none, the scheme's own port.
    const declared = tcpPorts(containers).map((p) => p.containerPort);
    const ports = declared.length > 0 ? declared : [scheme === "https" ? 443 : 80];
    return ports.map((port) => ({ scheme, port, path }));
  }
  const ports = parsePorts(portText);
  if (typeof ports === "string") return refused(PrometheusAnnotations.port, portText, ports);
  return ports.map((port) => ({ scheme, port, path }));
}

/** "8080" or "8080, 9090": each a decimal port 1-65535. Linear in the text, and stops at the first bad entry. */
function parsePorts(text: string): number[] | string {
  const ports: number[] = [];
  for (const part of text.split(",")) {
    const p = part.trim();
    if (!/^[0-9]{1,5}$/.test(p)) return "is not a port or a comma-separated list of ports";
    const n = Number(p);
    if (n < 1 || n > 65535) return `holds ${n}, outside 1-65535`;
    if (!ports.includes(n)) ports.push(n);
    if (ports.length > MAX_SCRAPE_TARGETS) return `lists more than ${MAX_SCRAPE_TARGETS} ports`;
  }
  return ports;
}

function refused(annotation: string, value: string, why: string): string {
  const quoted = value.length > QUOTE_MAX ? `${JSON.stringify(value.slice(0, QUOTE_MAX))}…` : JSON.stringify(value);
  return `annotation ${annotation} ${quoted} ${why}`;
}

/** The app's containers and its native sidecars (init containers that keep running): the ones that can serve
 * metrics while the pusher scrapes. Never the pusher itself. */
function containersOf(pod: PodView): V1Container[] {
  const spec = pod.spec;
  return [
    ...(spec?.containers ?? []),
    ...(spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always"),
  ].filter((c) => c.name !== SIDECAR_CONTAINER_NAME);
}

/** Declared TCP ports with a valid number, in container order. */
function tcpPorts(containers: readonly V1Container[]): { name?: string | undefined; containerPort: number }[] {
  return containers.flatMap((c) =>
    (c.ports ?? []).filter(
      (p) =>
        (p.protocol === undefined || p.protocol === "TCP") &&
        Number.isInteger(p.containerPort) &&
        p.containerPort >= 1 &&
        p.containerPort <= 65535,
    ),
  );
}
