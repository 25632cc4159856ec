import { describe, it } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { Registry } from "prom-client";
import type { CoreV1Event } from "@kubernetes/client-node";
import { EventReason, EventType } from "./api/index.ts";
import { BUMP_INTERVAL_MS, createEventRecorder, EVENT_BURST, EVENT_REFILL_MS, pusherRef, quote } from "./events.ts";
import type { EventSink } from "./events.ts";
import { createOperatorMetrics } from "./metrics.ts";
import { pusher } from "./inject/testdata.test-fixtures.ts";

function fakeSink(opts: { failCreate?: boolean } = {}) {
  const created: CoreV1Event[] = [];
  const bumps: Array<{ name: string; count: number }> = [];
  const sink: EventSink = {
    async create(_ns, e) {
      if (opts.failCreate) throw new Error("apiserver down");
      created.push(e);
    },
    async bump(_ns, name, count) {
      bumps.push({ name, count });
    },
  };
  return { sink, created, bumps };
}

const log = pino({ level: "silent" });

describe("event recorder", () => {
  it("returns before any I/O and writes later", async () => {
    const f = fakeSink();
    const r = createEventRecorder({ sink: f.sink, log, instance: "op-0" });
    r.emit(pusherRef(pusher("mp")), EventType.Normal, EventReason.Injected, "Injected into pod x");
    assert.equal(f.created.length, 0);
    await r.flush();
    assert.equal(f.created.length, 1);
    const e = f.created[0]!;
    assert.deepEqual(e.involvedObject, {
      apiVersion: "metricspusher.dev/v1alpha1",
      kind: "MetricsPusher",
      namespace: "builds",
      name: "mp",
      uid: "uid-mp",
    });
    assert.equal(e.metadata.namespace, "builds");
    assert.equal(e.reportingInstance, "op-0");
    assert.equal(e.source?.component, "metrics-pusher-operator");
    assert.equal(e.reportingComponent, e.source?.component, "one component name");
  });

  it("aggregates repeats into count, bumping at most every 10 s", async () => {
    const f = fakeSink();
    let now = Date.parse("2026-01-01T00:00:00Z");
    const r = createEventRecorder({ sink: f.sink, log, instance: "op-0", now: () => new Date(now) });
    const emit = () => r.emit(pusherRef(pusher("mp")), EventType.Warning, EventReason.MultipleMatches, "same");
    emit(); // created
    emit(); // bumped to 2
    emit(); // within 10 s: counted, not sent
    emit();
    await r.flush();
    now += 11_000;
    emit(); // carries the 5th
    await r.flush();
    now += 11 * 60_000;
    emit(); // a new Event after the dedup window
    await r.flush();
    assert.equal(f.created.length, 2);
    assert.deepEqual(
      f.bumps.map((b) => b.count),
      [2, 5],
    );
    assert.equal(f.bumps[0]!.name, f.created[0]!.metadata.name);
  });

  it("rate-limits new Events per namespace and reason, counts what it suppressed, still bumps repeats", async () => {
    const f = fakeSink();
    let now = Date.parse("2026-01-01T00:00:00Z");
    const registry = new Registry();
    const metrics = createOperatorMetrics(registry);
    const r = createEventRecorder({ sink: f.sink, log, metrics, instance: "op-0", now: () => new Date(now) });
    const target = pusherRef(pusher("mp"));
    for (let i = 0; i < EVENT_BURST + 175; i++)
      r.emit(target, EventType.Warning, EventReason.InjectionSkipped, `forged message ${i}`);
    await r.flush();
    assert.equal(f.created.length, EVENT_BURST);
    assert.equal((await metrics.eventsSuppressed.get()).values[0]?.value, 175);
    // Another reason, and another namespace, have buckets of their own.
    r.emit(target, EventType.Normal, EventReason.Injected, "x");
    r.emit({ ...target, namespace: "other" }, EventType.Warning, EventReason.InjectionSkipped, "y");
    // A repeat of an Event already written takes no token.
    now += BUMP_INTERVAL_MS + 1;
    r.emit(target, EventType.Warning, EventReason.InjectionSkipped, "forged message 0");
    await r.flush();
    assert.equal(f.created.length, EVENT_BURST + 2);
    assert.equal(f.bumps.length, 1);
    // Refilled over time.
    now += EVENT_REFILL_MS;
    r.emit(target, EventType.Warning, EventReason.InjectionSkipped, "later");
    await r.flush();
    assert.equal(f.created.length, EVENT_BURST + 3);
  });

  const quotes = [
    { name: "short text, quoted", in: "builder", out: '"builder"' },
    { name: "line feed and quote escaped", in: 'a\n"b', out: '"a\\n\\"b"' },
    { name: "exactly 256 bytes kept", in: "x".repeat(256), out: `"${"x".repeat(256)}"` },
    { name: "257 bytes cut to 253 + ...", in: "x".repeat(257), out: `"${"x".repeat(253)}..."` },
    // 3 bytes each in UTF-8 (1 UTF-16 unit each): 100 chars = 300 bytes; 84 chars = 252 bytes fit before "...".
    { name: "multi-byte characters counted in bytes, never split", in: "€".repeat(100), out: `"${"€".repeat(84)}..."` },
    // 4 bytes, 2 UTF-16 units each.
    { name: "astral characters never split", in: "😀".repeat(70), out: `"${"😀".repeat(63)}..."` },
  ];
  for (const c of quotes) {
    it(`quote: ${c.name}`, () => {
      const q = quote(c.in);
      assert.equal(q, c.out);
      assert.ok(Buffer.byteLength(JSON.parse(q) as string, "utf8") <= 256);
    });
  }

  it("counts failures and never throws", async () => {
    const f = fakeSink({ failCreate: true });
    const registry = new Registry();
    const metrics = createOperatorMetrics(registry);
    const r = createEventRecorder({ sink: f.sink, log, metrics, instance: "op-0" });
    r.emit(pusherRef(pusher("mp")), EventType.Normal, EventReason.Injected, "x");
    await r.flush();
    assert.equal((await metrics.eventsFailed.get()).values[0]?.value, 1);
  });
});
