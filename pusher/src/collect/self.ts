// The pusher's own metrics: the seed's names where their meaning carries over to Node, Node equivalents of the Go
// runtime figures, prom-client's default process/Node metrics, and the pusher's health — all in a Registry of its own,
// turned into Samples with one timestamp per collection.
import { hostname } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import v8 from "node:v8";
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from "prom-client";
import type { DropReason, MemoryOnlyReason, QueueObserver } from "../remote-write/queue.ts";
import type { RetryReason } from "../remote-write/retry.ts";
import type { Label, Labels, Sample } from "../series.ts";

export const SELF_JOB = "metrics-pusher";

/** Labels every own series carries; external labels are added but never override them. */
export function selfTargetLabels(opts: {
  namespace: string;
  podName?: string | undefined;
  externalLabels?: Readonly<Record<string, string>>;
  host?: string;
}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.externalLabels ?? {})) if (v !== "") out[k] = v;
  out.job = SELF_JOB;
  out.instance = opts.podName ?? opts.host ?? hostname();
  if (opts.namespace !== "") out.namespace = opts.namespace;
  if (opts.podName) out.pod = opts.podName;
  return out;
}

/**
 * Go's runtime.MemStats.TotalAlloc counts every byte ever allocated on the heap. V8 has no such counter; the honest
 * equivalent is what the heap holds now plus everything garbage collections have freed since start, which V8's
 * GCProfiler reports per collection. The profiler is restarted at each read so its record never grows.
 */
class TotalAllocated {
  #profiler = new v8.GCProfiler();
  #freed = 0;
  constructor() {
    this.#profiler.start();
  }
  read(): number {
    const data = this.#profiler.stop() as unknown as {
      statistics: {
        beforeGC: { heapStatistics: { usedHeapSize: number } };
        afterGC: { heapStatistics: { usedHeapSize: number } };
      }[];
    };
    for (const gc of data.statistics ?? []) {
      this.#freed += Math.max(0, gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize);
    }
    this.#profiler = new v8.GCProfiler();
    this.#profiler.start();
    return this.#freed + process.memoryUsage().heapUsed;
  }
  stop(): void {
    this.#profiler.stop();
  }
}

export interface SelfMetrics {
  /** Binds the queue's events to the health metrics. */
  readonly observer: QueueObserver;
  /** Counts a source of one collection that threw ("self", "scrape", "push"). */
  collectionFailed(source: string): void;
  /** Stops the event-loop monitor and GC profiler. */
  close(): void;
}

/**
 * Registers the pusher's own metrics into `registry`. `buffered` and `memoryOnly` (samples buffered whose BUFFER_DIR
 * copy is missing) are read at each collection.
 */
export function registerSelfMetrics(
  registry: Registry,
  prefix: string,
  buffered: () => number,
  memoryOnly: () => number = () => 0,
): SelfMetrics {
  const started = Date.now();
  const p = prefix;
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: `${p}_heartbeat`,
    help: "Time of the last collection, in seconds since the epoch: a push older than a few intervals means the pusher is stuck.",
    registers: [registry],
    collect() {
      this.set(Date.now() / 1000);
    },
  });
  new Gauge({
    name: `${p}_uptime_seconds`,
    help: "Seconds since the pusher started.",
    registers: [registry],
    collect() {
      this.set((Date.now() - started) / 1000);
    },
  });
  new Gauge({
    name: `${p}_system_memory_alloc_bytes`,
    help: "Bytes of live objects on the V8 heap (heapUsed; Go: MemStats.Alloc).",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  const total = new TotalAllocated();
  new Gauge({
    name: `${p}_system_memory_total_alloc_bytes`,
    help: "Bytes allocated on the V8 heap since start: heap used now plus all bytes freed by garbage collection (Go: MemStats.TotalAlloc). Only grows.",
    registers: [registry],
    collect() {
      this.set(total.read());
    },
  });
  new Gauge({
    name: `${p}_system_memory_sys_bytes`,
    help: "Resident set size of the process in bytes (Go: MemStats.Sys, memory obtained from the OS).",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  // Node has no goroutines: the two figures that answer the same questions ("is work piling up?", "is the runtime
  // keeping up?") are the live libuv handles and requests, and how late the event loop runs.
  new Gauge({
    name: `${p}_system_active_handles`,
    help: "Live libuv handles and requests keeping the event loop busy (sockets, timers, file operations); a steady rise means work is piling up.",
    registers: [registry],
    collect() {
      this.set(process.getActiveResourcesInfo().length);
    },
  });
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  new Gauge({
    name: `${p}_system_event_loop_lag_seconds`,
    help: "Largest event-loop delay since the previous collection, in seconds (how late timers and I/O callbacks ran).",
    registers: [registry],
    collect() {
      this.set(lag.count > 0 ? lag.max / 1e9 : 0);
      lag.reset();
    },
  });

  const sent = new Counter({
    name: `${p}_samples_sent_total`,
    help: "Samples the receiver accepted (2xx).",
    registers: [registry],
  });
  const failed = new Counter({
    name: `${p}_samples_failed_total`,
    help: "Samples in Remote-Write requests that failed (network error, timeout, 5xx, 429, other 4xx); every failed attempt counts.",
    registers: [registry],
  });
  const dropped = new Counter({
    name: `${p}_samples_dropped_total`,
    help: "Samples that will never be delivered, by reason: buffer_full, out_of_order, rejected (4xx), shutdown, too_old (found in BUFFER_DIR over an hour old), too_far_in_future (timestamp over 10 minutes ahead of the pusher's clock).",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of [
    "buffer_full",
    "out_of_order",
    "rejected",
    "shutdown",
    "too_old",
    "too_far_in_future",
  ] satisfies DropReason[])
    dropped.inc({ reason }, 0);
  const retries = new Counter({
    name: `${p}_retries_total`,
    help: "Remote-Write requests retried, by reason: server_error (5xx), rate_limited (429), network, timeout, credentials (a credential or CA file unreadable, or its content unsendable), internal (the send threw: a bug, logged).",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of [
    "server_error",
    "rate_limited",
    "network",
    "timeout",
    "credentials",
    "internal",
  ] satisfies RetryReason[]) {
    retries.inc({ reason }, 0);
  }
  const collectionFailures = new Counter({
    name: `${p}_collection_failures_total`,
    help: "Collections in which a source threw (a bug, logged with its stack), by source: self, scrape, push. That source's samples of that cycle are lost; the loop goes on.",
    labelNames: ["source"],
    registers: [registry],
  });
  for (const source of ["self", "scrape", "push"]) collectionFailures.inc({ source }, 0);
  const duration = new Histogram({
    name: `${p}_push_duration_seconds`,
    help: "Duration of one Remote-Write request attempt, whatever its outcome.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: `${p}_buffered_samples`,
    help: "Samples waiting for delivery, the request in flight included.",
    registers: [registry],
    collect() {
      this.set(buffered());
    },
  });
  const memoryOnlyTotal = new Counter({
    name: `${p}_disk_buffer_memory_only_samples_total`,
    help: "Buffered samples without a copy in BUFFER_DIR, by reason: write_failed (disk full, I/O error), max_bytes (removed to stay within BUFFER_MAX_BYTES). Still delivered from memory; lost if the pusher restarts first.",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of ["write_failed", "max_bytes"] satisfies MemoryOnlyReason[]) memoryOnlyTotal.inc({ reason }, 0);
  new Gauge({
    name: `${p}_disk_buffer_memory_only_samples`,
    help: "Samples buffered now without a copy in BUFFER_DIR: what a restart would lose.",
    registers: [registry],
    collect() {
      this.set(memoryOnly());
    },
  });
  const lastSuccess = new Gauge({
    name: `${p}_last_success_timestamp_seconds`,
    help: "Time of the last successful Remote-Write request, in seconds since the epoch (0 = none yet).",
    registers: [registry],
  });
  lastSuccess.set(0);

  return {
    observer: {
      sent: (n) => sent.inc(n),
      failed: (n) => failed.inc(n),
      dropped: (n, reason) => dropped.inc({ reason }, n),
      retried: (reason) => retries.inc({ reason }),
      attempt: (seconds) => duration.observe(seconds),
      lastSuccess: (ms) => lastSuccess.set(ms / 1000),
      memoryOnly: (n, reason) => memoryOnlyTotal.inc({ reason }, n),
    },
    collectionFailed: (source) => collectionFailures.inc({ source }),
    close() {
      lag.disable();
      total.stop();
    },
  };
}

function labelValue(v: unknown): string {
  if (typeof v === "number") {
    if (Number.isFinite(v)) return String(v);
    return Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
  }
  return String(v);
}

interface MetricJSON {
  name: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/**
 * Turns a registry into Samples, one timestamp per collection, and emits stale markers for series that were there
 * at the previous collection and are gone now. Label objects are reused from one collection to the next, which lets
 * the encoder skip re-encoding them.
 */
export class RegistryCollector {
  readonly #registry: Registry;
  readonly #target: Readonly<Record<string, string>>;
  #live = new Map<string, Labels>();

  constructor(registry: Registry, targetLabels: Readonly<Record<string, string>>) {
    this.#registry = registry;
    this.#target = targetLabels;
  }

  async collect(nowMs: number): Promise<Sample[]> {
    const metrics = (await this.#registry.getMetricsAsJSON()) as unknown as MetricJSON[];
    const out: Sample[] = [];
    const next = new Map<string, Labels>();
    for (const m of metrics) {
      for (const v of m.values) {
        const name = v.metricName ?? m.name;
        let key = name;
        const keys = Object.keys(v.labels).sort();
        for (const k of keys) key += `\u0000${k}\u0001${labelValue(v.labels[k])}`;
        if (next.has(key)) continue; // a repeated series would make the receiver refuse the request
        const labels = this.#live.get(key) ?? this.#labels(name, v.labels);
        next.set(key, labels);
        out.push({ labels, value: v.value, timestampMs: nowMs });
      }
    }
    for (const [key, labels] of this.#live) {
      if (!next.has(key)) out.push({ labels, value: Number.NaN, timestampMs: nowMs, stale: true });
    }
    this.#live = next;
    return out;
  }

  /** Stale markers for every series of the last collection (graceful shutdown). */
  staleAll(nowMs: number): Sample[] {
    const out: Sample[] = [];
    for (const labels of this.#live.values()) out.push({ labels, value: Number.NaN, timestampMs: nowMs, stale: true });
    this.#live = new Map();
    return out;
  }

  #labels(name: string, own: Record<string, string | number>): Labels {
    const all = new Map<string, string>();
    for (const [k, v] of Object.entries(own)) all.set(k, labelValue(v));
    // Target labels win over a metric's own labels of the same name, as job/instance/namespace/pod must stay true;
    // the metric's value is kept as exported_<name>, the way Prometheus keeps it.
    for (const [k, v] of Object.entries(this.#target)) {
      const mine = all.get(k);
      if (mine !== undefined && mine !== v) all.set(`exported_${k}`, mine);
      all.set(k, v);
    }
    all.set("__name__", name);
    const labels: Label[] = [];
    for (const [n, value] of all) if (value !== "") labels.push({ name: n, value });
    labels.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return labels;
  }
}
