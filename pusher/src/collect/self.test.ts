import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Sample } from "../series.ts";
import { RegistryCollector, registerSelfMetrics, selfTargetLabels } from "./self.ts";

const P = "knative_lambda_metric_pusher";

function asMap(samples: Sample[]): Map<string, Sample> {
  const m = new Map<string, Sample>();
  for (const s of samples) m.set(s.labels.map((l) => `${l.name}=${l.value}`).join(","), s);
  return m;
}
function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) =>
      s.labels.some((l) => l.name === "__name__" && l.value === name) &&
      Object.entries(labels).every(([k, v]) => s.labels.some((l) => l.name === k && l.value === v)),
  );
}

describe("selfTargetLabels", () => {
  it("job, instance = POD_NAME, namespace, pod; external labels never override them", () => {
    assert.deepEqual(
      selfTargetLabels({
        namespace: "ns",
        podName: "p-1",
        externalLabels: { cluster: "c", job: "x", instance: "y", namespace: "z", pod: "w" },
      }),
      { cluster: "c", job: "metrics-pusher", instance: "p-1", namespace: "ns", pod: "p-1" },
    );
  });
  it("instance falls back to the host name; no pod label without POD_NAME", () => {
    assert.deepEqual(selfTargetLabels({ namespace: "ns", host: "box" }), {
      job: "metrics-pusher",
      instance: "box",
      namespace: "ns",
    });
  });
});

describe("registerSelfMetrics + RegistryCollector", () => {
  it("collects the seed's metrics, the Node equivalents, default metrics and health, with one timestamp and the target labels", async () => {
    const registry = new Registry();
    const self = registerSelfMetrics(registry, P, () => 42);
    try {
      self.observer.sent(10);
      self.observer.dropped(3, "buffer_full");
      self.observer.retried("network");
      self.observer.attempt(0.02);
      self.observer.lastSuccess(1_700_000_000_000);
      const c = new RegistryCollector(
        registry,
        selfTargetLabels({ namespace: "ns", podName: "pod-1", externalLabels: { cluster: "c1" } }),
      );
      const now = 1_764_000_000_000;
      const samples = await c.collect(now);
      assert.ok(
        samples.every((s) => s.timestampMs === now),
        "one timestamp per collection",
      );
      for (const name of [
        `${P}_heartbeat`,
        `${P}_uptime_seconds`,
        `${P}_system_memory_alloc_bytes`,
        `${P}_system_memory_total_alloc_bytes`,
        `${P}_system_memory_sys_bytes`,
        `${P}_system_active_handles`,
        `${P}_system_event_loop_lag_seconds`,
        `${P}_samples_sent_total`,
        `${P}_samples_failed_total`,
        `${P}_buffered_samples`,
        `${P}_last_success_timestamp_seconds`,
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "nodejs_heap_size_used_bytes",
      ]) {
        assert.equal(find(samples, name).length, 1, `${name} missing or repeated`);
      }
      assert.equal(find(samples, `${P}_samples_sent_total`)[0]!.value, 10);
      assert.equal(find(samples, `${P}_buffered_samples`)[0]!.value, 42);
      assert.equal(find(samples, `${P}_last_success_timestamp_seconds`)[0]!.value, 1_700_000_000);
      assert.equal(find(samples, `${P}_samples_dropped_total`, { reason: "buffer_full" })[0]!.value, 3);
      assert.equal(
        find(samples, `${P}_samples_dropped_total`, { reason: "rejected" })[0]!.value,
        0,
        "every reason exists from the start",
      );
      assert.equal(find(samples, `${P}_retries_total`, { reason: "network" })[0]!.value, 1);
      assert.equal(find(samples, `${P}_push_duration_seconds_bucket`, { le: "+Inf" })[0]!.value, 1);
      assert.equal(find(samples, `${P}_push_duration_seconds_bucket`, { le: "0.025" })[0]!.value, 1);
      assert.equal(find(samples, `${P}_push_duration_seconds_count`).length, 1);
      const rss = find(samples, `${P}_system_memory_sys_bytes`)[0]!.value;
      assert.ok(rss > 10_000_000, `rss ${rss}`);
      const heap = find(samples, `${P}_system_memory_alloc_bytes`)[0]!.value;
      const totalAlloc = find(samples, `${P}_system_memory_total_alloc_bytes`)[0]!.value;
      assert.ok(totalAlloc >= heap, "total allocated is at least what is live");
      for (const s of samples) {
        const names = s.labels.map((l) => l.name);
        assert.deepEqual(names, [...names].sort(), "labels sorted");
        assert.equal(new Set(names).size, names.length, "labels unique");
        assert.ok(
          s.labels.every((l) => l.value !== ""),
          "no empty values",
        );
        const lab = Object.fromEntries(s.labels.map((l) => [l.name, l.value]));
        assert.equal(lab.job, "metrics-pusher");
        assert.equal(lab.instance, "pod-1");
        assert.equal(lab.namespace, "ns");
        assert.equal(lab.pod, "pod-1");
        assert.equal(lab.cluster, "c1");
      }
      // Allocation makes total_alloc grow even after the garbage is collected.
      let junk: unknown[] = [];
      for (let i = 0; i < 200_000; i++) junk.push({ i, s: `x${i}` });
      junk = [];
      void junk;
      const later = await c.collect(now + 1000);
      assert.ok(
        find(later, `${P}_system_memory_total_alloc_bytes`)[0]!.value > totalAlloc + 5_000_000,
        "total_alloc grows with allocation",
      );
    } finally {
      self.close();
    }
  });

  it("reuses label objects between collections, marks vanished series stale, and staleAll marks everything", async () => {
    const registry = new Registry();
    const g = new Gauge({ name: "g", help: "h", labelNames: ["k"], registers: [registry] });
    const c2 = new Counter({ name: "c_total", help: "h", registers: [registry] });
    new Histogram({ name: "h_seconds", help: "h", buckets: [1], registers: [registry] });
    g.set({ k: "a" }, 1);
    g.set({ k: "b" }, 2);
    c2.inc();
    const col = new RegistryCollector(registry, { job: "metrics-pusher", instance: "i" });
    const first = asMap(await col.collect(1000));
    g.remove({ k: "b" });
    const second = await col.collect(2000);
    const stale = second.filter((s) => s.stale);
    assert.equal(stale.length, 1);
    assert.deepEqual(Object.fromEntries(stale[0]!.labels.map((l) => [l.name, l.value])), {
      __name__: "g",
      instance: "i",
      job: "metrics-pusher",
      k: "b",
    });
    assert.equal(stale[0]!.timestampMs, 2000);
    const secondMap = asMap(second.filter((s) => !s.stale));
    for (const [key, s] of secondMap) assert.equal(s.labels, first.get(key)?.labels, `labels of ${key} reused`);
    const third = await col.collect(3000);
    assert.equal(third.filter((s) => s.stale).length, 0, "a stale marker is sent once");
    const all = col.staleAll(4000);
    assert.equal(all.length, third.length);
    assert.ok(all.every((s) => s.stale && s.timestampMs === 4000));
    assert.deepEqual(col.staleAll(5000), []);
  });

  it("keeps a metric's own job/instance label as exported_*", async () => {
    const registry = new Registry();
    new Gauge({ name: "g", help: "h", labelNames: ["job"], registers: [registry] }).set({ job: "mine" }, 1);
    const [s] = await new RegistryCollector(registry, { job: "metrics-pusher", instance: "i" }).collect(1);
    assert.deepEqual(Object.fromEntries(s!.labels.map((l) => [l.name, l.value])), {
      __name__: "g",
      exported_job: "mine",
      instance: "i",
      job: "metrics-pusher",
    });
  });
});
