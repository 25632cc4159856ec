// Realistic series for the benchmarks: what a builder pod's sidecar sees (HTTP server histograms and counters,
// build metrics, process metrics), with the labels a scrape plus external labels give them. Deterministic, so every
// run and every peer gets the same input.
import type { Label, Sample } from "../../../pusher/src/series.ts";

export type LabelSet = Record<string, string>;

const ROUTES = [
  "/api/v1/builds",
  "/api/v1/builds/{id}",
  "/api/v1/builds/{id}/logs",
  "/api/v1/functions",
  "/api/v1/functions/{name}",
  "/healthz",
  "/readyz",
  "/metrics",
] as const;
const METHODS = ["GET", "POST", "PUT", "DELETE"] as const;
const CODES = ["200", "201", "204", "400", "404", "409", "500", "503"] as const;
const BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"] as const;
const STAGES = ["fetch", "resolve", "compile", "package", "push", "deploy"] as const;
const RUNTIMES = ["nodejs20", "python3.12", "go1.22", "java21"] as const;

/** Labels the scrape and the pusher add to every series. */
export const TARGET_LABELS: LabelSet = {
  job: "builder",
  instance: "127.0.0.1:8080",
  namespace: "knative-lambda",
  pod: "knative-lambda-builder-7f9c8d6b5-x2k4q",
  node: "ip-10-0-12-34.eu-west-1.compute.internal",
  cluster: "prod-eu-west-1",
};

/** The metric-level labels (name and own labels) of `count` distinct series, before target labels. */
export function metricSeries(count: number): LabelSet[] {
  const out: LabelSet[] = [];
  const push = (set: LabelSet): boolean => {
    out.push(set);
    return out.length >= count;
  };
  // Cycle over families until enough series exist; a growing `shard` label keeps later rounds distinct, like the
  // per-worker series of a busy builder.
  for (let shard = 0; ; shard++) {
    const sh: LabelSet = shard === 0 ? {} : { shard: String(shard) };
    for (const route of ROUTES) {
      for (const method of METHODS) {
        for (const le of BUCKETS) {
          if (push({ __name__: "http_server_request_duration_seconds_bucket", method, route, le, ...sh })) return out;
        }
        if (push({ __name__: "http_server_request_duration_seconds_sum", method, route, ...sh })) return out;
        if (push({ __name__: "http_server_request_duration_seconds_count", method, route, ...sh })) return out;
        for (const code of CODES) {
          if (push({ __name__: "http_server_requests_total", method, route, status_code: code, ...sh })) return out;
        }
      }
    }
    for (const stage of STAGES) {
      for (const runtime of RUNTIMES) {
        for (const le of BUCKETS) {
          if (push({ __name__: "knative_lambda_builder_stage_duration_seconds_bucket", stage, runtime, le, ...sh }))
            return out;
        }
        if (push({ __name__: "knative_lambda_builder_builds_total", stage, runtime, result: "success", ...sh }))
          return out;
        if (push({ __name__: "knative_lambda_builder_builds_total", stage, runtime, result: "failure", ...sh }))
          return out;
      }
    }
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_open_fds",
      "nodejs_eventloop_lag_seconds",
      "nodejs_heap_size_used_bytes",
      "nodejs_active_handles",
    ]) {
      if (push({ __name__: name, ...sh })) return out;
    }
  }
}

/** Full label sets as the receiver stores them: metric labels plus target and external labels. */
export function fullSeries(count: number): LabelSet[] {
  return metricSeries(count).map((set) => ({ ...set, ...TARGET_LABELS }));
}

function compareBytes(a: string, b: string): number {
  // Label names are ASCII here, so UTF-16 order is byte order.
  return a < b ? -1 : a > b ? 1 : 0;
}

export function toLabels(set: LabelSet): Label[] {
  return Object.keys(set)
    .sort(compareBytes)
    .map((name) => ({ name, value: set[name]! }));
}

/** A value that looks like what the series would carry (counters grow, gauges wander). */
export function valueFor(index: number, tick: number): number {
  return ((index * 7919) % 100_000) + tick * ((index % 13) + 1) + (index % 3 === 0 ? 0.25 : 0);
}

export function toSamples(sets: readonly LabelSet[], timestampMs: number, tick = 0): Sample[] {
  return sets.map((set, i) => ({ labels: toLabels(set), value: valueFor(i, tick), timestampMs }));
}

/** Prometheus text exposition of the metric-level series (what a scrape target serves). */
export function exposition(sets: readonly LabelSet[]): { render(tick: number): string } {
  // Precompute each line's prefix once; a scrape only appends values.
  const families = new Map<string, string[]>();
  const prefixes = sets.map((set) => {
    const { __name__: name, ...rest } = set;
    const labels = Object.entries(rest)
      .map(([k, v]) => `${k}="${v}"`)
      .join(",");
    const base = name!.replace(/_(bucket|sum|count)$/, "");
    if (!families.has(base)) families.set(base, []);
    return `${name}${labels ? `{${labels}}` : ""} `;
  });
  // Group lines by family so HELP/TYPE headers precede their samples, as real exporters do.
  const order = sets
    .map((set, i) => ({ base: set.__name__!.replace(/_(bucket|sum|count)$/, ""), i }))
    .sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : a.i - b.i));
  const typeOf = (base: string): string =>
    sets.some((s) => s.__name__ === `${base}_bucket`) ? "histogram" : base.endsWith("_total") ? "counter" : "gauge";
  const headers = new Map<string, string>();
  for (const base of families.keys())
    headers.set(base, `# HELP ${base} ${base.replaceAll("_", " ")}.\n# TYPE ${base} ${typeOf(base)}\n`);
  return {
    render(tick: number): string {
      const parts: string[] = [];
      let current = "";
      for (const { base, i } of order) {
        if (base !== current) {
          parts.push(headers.get(base)!);
          current = base;
        }
        parts.push(prefixes[i]!, String(valueFor(i, tick)), "\n");
      }
      return parts.join("");
    },
  };
}
