import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { Labels, Sample } from "../series.ts";
import type { SendResult } from "./client.ts";
import { toWriteRequest } from "./encode.ts";
import { decodeWriteRequest } from "./prompb.ts";
import { SendQueue, type QueueObserver } from "./queue.ts";

const seriesA: Labels = [{ name: "__name__", value: "a" }];
const seriesB: Labels = [{ name: "__name__", value: "b" }];

function tick(from: number, count: number, labels: Labels = seriesA): Sample[] {
  return Array.from({ length: count }, (_, i) => ({
    labels,
    value: from + i,
    timestampMs: 1_000_000 + (from + i) * 1000,
  }));
}

class Counts implements QueueObserver {
  sentN = 0;
  failedN = 0;
  droppedBy: Record<string, number> = {};
  retriesBy: Record<string, number> = {};
  attempts = 0;
  last = 0;
  sent(n: number): void {
    this.sentN += n;
  }
  failed(n: number): void {
    this.failedN += n;
  }
  dropped(n: number, reason: string): void {
    this.droppedBy[reason] = (this.droppedBy[reason] ?? 0) + n;
  }
  retried(reason: string): void {
    this.retriesBy[reason] = (this.retriesBy[reason] ?? 0) + 1;
  }
  attempt(): void {
    this.attempts++;
  }
  lastSuccess(ms: number): void {
    this.last = ms;
  }
  memoryOnlyBy: Record<string, number> = {};
  memoryOnly(n: number, reason: string): void {
    this.memoryOnlyBy[reason] = (this.memoryOnlyBy[reason] ?? 0) + n;
  }
}

interface Log {
  level: string;
  obj: object;
  msg: string;
}

/** A scripted receiver: answers from the script in turn, then `fallback`; records every request it decoded. */
function receiver(script: (SendResult | "hang")[], initialFallback: SendResult = ok()) {
  const state = { fallback: initialFallback };
  const received: { values: number[]; names: string[] }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const send = async (body: Uint8Array, signal: AbortSignal): Promise<SendResult> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      await sleep(1);
      const next = script.length > 0 ? script.shift()! : state.fallback;
      if (next === "hang") {
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
        return { kind: "error", reason: "network", message: "aborted" };
      }
      if (next.kind === "response" && next.status < 300) {
        const series = decodeWriteRequest(body);
        received.push({
          values: series.flatMap((s) => s.samples.map((x) => x.value)),
          names: series.map((s) => s.labels[0]!.value),
        });
      }
      return next;
    } finally {
      inFlight--;
    }
  };
  return { send, received, maxInFlight: () => maxInFlight, script, state };
}

function ok(status = 200): SendResult {
  return { kind: "response", status, retryAfter: undefined, body: "" };
}
function status(code: number, body = "", retryAfter?: string): SendResult {
  return { kind: "response", status: code, retryAfter, body };
}
const down: SendResult = { kind: "error", reason: "network", message: "ECONNREFUSED" };

function queue(
  send: ReturnType<typeof receiver>["send"],
  opts: {
    maxSamples?: number;
    maxPerSend?: number;
    now?: () => number;
    random?: () => number;
    forgetAfterMs?: number;
  } = {},
) {
  const counts = new Counts();
  const logs: Log[] = [];
  const mk = (level: string) => (obj: object, msg: string) => void logs.push({ level, obj, msg });
  const q = new SendQueue({
    maxSamples: opts.maxSamples ?? 1000,
    maxPerSend: opts.maxPerSend ?? 100,
    send,
    observer: counts,
    log: { debug: mk("debug"), info: mk("info"), warn: mk("warn"), error: mk("error") },
    random: opts.random ?? (() => 0), // shortest backoff: 15 ms, 30 ms, ...
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.forgetAfterMs !== undefined ? { forgetAfterMs: opts.forgetAfterMs } : {}),
  });
  return { q, counts, logs };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(5);
  }
}

describe("SendQueue", () => {
  it("delivers everything in order, in batches of at most maxPerSend, one request at a time", async () => {
    const r = receiver([]);
    const { q, counts } = queue(r.send, { maxPerSend: 7 });
    q.push(tick(0, 20));
    q.push(tick(20, 10));
    await until(() => counts.sentN === 30);
    assert.deepEqual(
      r.received.flatMap((x) => x.values),
      Array.from({ length: 30 }, (_, i) => i),
    );
    assert.ok(r.received.every((x) => x.values.length <= 7));
    assert.equal(r.maxInFlight(), 1);
    assert.equal(q.buffered, 0);
    assert.ok(counts.last > 0);
    await q.close(100);
  });

  it("push returns at once while the receiver hangs", async () => {
    const r = receiver(["hang"]);
    const { q } = queue(r.send);
    q.push(tick(0, 5));
    await sleep(10);
    const t0 = performance.now();
    q.push(tick(5, 5));
    assert.ok(performance.now() - t0 < 50);
    assert.equal(q.buffered, 10);
    await q.close(10);
  });

  it("retries 5xx and network errors with the same batch until success", async () => {
    const r = receiver([status(503, "busy"), down, status(500)]);
    const { q, counts, logs } = queue(r.send);
    q.push(tick(0, 3));
    await until(() => counts.sentN === 3);
    assert.deepEqual(counts.retriesBy, { server_error: 2, network: 1 });
    assert.equal(counts.failedN, 9);
    assert.deepEqual(
      r.received.map((x) => x.values),
      [[0, 1, 2]],
    );
    assert.equal(logs.filter((l) => l.level === "warn").length, 1, "one warning per outage, not per attempt");
    assert.ok(logs.some((l) => l.level === "info" && l.msg === "Remote write recovered"));
    await q.close(100);
  });

  it("waits Retry-After on 429", async () => {
    const r = receiver([status(429, "slow down", "1")]);
    const { q, counts } = queue(r.send);
    const t0 = Date.now();
    q.push(tick(0, 1));
    await until(() => counts.sentN === 1);
    const waited = Date.now() - t0;
    assert.ok(waited >= 950, `retried after ${waited} ms, Retry-After was 1 s`);
    assert.deepEqual(counts.retriesBy, { rate_limited: 1 });
    await q.close(100);
  });

  // The queue's clock is injected (a fixed instant), so "a date in the past" is past whatever the machine's time.
  for (const [what, retryAfter] of [
    ["Retry-After: 0", "0"],
    ["a Retry-After date in the past", "Fri, 27 Nov 2026 03:59:00 GMT"],
    ["a Retry-After that is not a delay", "garbage"],
  ] as const) {
    it(`429 with ${what} still backs off: the backoff is the floor`, async () => {
      const NOW = Date.parse("2026-11-27T04:00:00Z");
      const r = receiver([], status(429, "slow down", retryAfter));
      // random 1: the full backoff, 30, 60, 120, 240, 480 ms … (930 ms before the 6th retry).
      const { q, counts } = queue(r.send, { now: () => NOW, random: () => 1 });
      q.push(tick(0, 1));
      await sleep(1000);
      await q.close(0);
      const attempts = counts.attempts;
      // Without the floor this loop ran flat out: hundreds of attempts in a second.
      assert.ok(attempts >= 3 && attempts <= 8, `${attempts} attempts in 1 s with ${what}`);
      // Every attempt but the one cut by close() was answered 429 and retried.
      assert.ok(counts.retriesBy.rate_limited! >= attempts - 1, JSON.stringify(counts.retriesBy));
    });
  }

  it("drops a batch refused with 400, counts it, logs the status and body, and goes on", async () => {
    const r = receiver([status(400, "out of order sample")]);
    const { q, counts, logs } = queue(r.send, { maxPerSend: 2 });
    q.push(tick(0, 4));
    await until(() => counts.sentN === 2);
    assert.deepEqual(counts.droppedBy, { rejected: 2 });
    assert.deepEqual(
      r.received.map((x) => x.values),
      [[2, 3]],
    );
    const e = logs.find((l) => l.level === "error");
    assert.deepEqual(e?.obj, { status: 400, body: "out of order sample", samples: 2 });
    await q.close(100);
  });

  it("drops samples not newer than the last one of their series, and counts them", async () => {
    const r = receiver([]);
    const { q, counts } = queue(r.send);
    q.push([...tick(5, 1), ...tick(5, 1), ...tick(3, 1), ...tick(6, 1), ...tick(1, 1, seriesB)]);
    q.push([{ labels: seriesA, value: 0, timestampMs: 1_000_000 + 6000, stale: true }]);
    q.push([{ labels: seriesA, value: 0, timestampMs: 1_000_000 + 7000, stale: true }]);
    await until(() => counts.sentN === 4);
    assert.deepEqual(counts.droppedBy, { out_of_order: 3 });
    await q.close(100);
  });

  it("refuses samples over 10 minutes ahead of its clock (too_far_in_future), so vanished series are still forgotten", async () => {
    const t0 = Date.parse("2026-11-27T04:00:00Z");
    let now = t0;
    const r = receiver([]);
    const { q, counts } = queue(r.send, { now: () => now, forgetAfterMs: 60_000, maxPerSend: 1000 });
    const vanishes: Labels = [{ name: "__name__", value: "vanishes" }];
    const steady: Labels = [{ name: "__name__", value: "steady" }];
    const micro: Labels = [{ name: "__name__", value: "micro" }]; // one sample in microseconds, then gone
    const later: Labels = [{ name: "__name__", value: "later" }]; // appears after it, then vanishes
    const edge: Labels = [{ name: "__name__", value: "edge" }];
    const over: Labels = [{ name: "__name__", value: "over" }];
    q.push([
      { labels: vanishes, value: 1, timestampMs: now },
      { labels: micro, value: 1, timestampMs: now * 1000 },
      { labels: edge, value: 1, timestampMs: now + 10 * 60_000 }, // exactly 10 minutes ahead: accepted
      { labels: over, value: 1, timestampMs: now + 10 * 60_000 + 1 },
    ]);
    assert.equal(counts.droppedBy.too_far_in_future, 2);
    // Only "steady" goes on, for 20 minutes of the clock; the others vanish.
    for (let i = 1; i <= 120; i++) {
      now += 10_000;
      q.push([
        { labels: steady, value: i, timestampMs: now },
        ...(i === 1 ? [{ labels: later, value: 1, timestampMs: now }] : []),
      ]);
    }
    assert.equal(q.trackedSeries, 1, "series that vanished are still remembered: pruning stopped");
    // "steady" itself is still remembered: an older sample of it is refused.
    q.push([{ labels: steady, value: 0, timestampMs: now - 1 }]);
    assert.equal(counts.droppedBy.out_of_order, 1);
    await until(() => counts.sentN === 123);
    const names = new Set(r.received.flatMap((x) => x.names));
    assert.deepEqual([...names].sort(), ["edge", "later", "steady", "vanishes"]);
    await q.close(100);
  });

  it("a send that throws synchronously is a failed attempt: logged, counted as internal, retried, nothing lost", async () => {
    const r = receiver([]);
    let throws = 3;
    // Not async: the throw happens before any promise exists, as http.request's header check does.
    const send = (body: Uint8Array, signal: AbortSignal): Promise<SendResult> => {
      if (throws > 0) {
        throws--;
        throw new TypeError('Invalid character in header content ["X-Scope-OrgID"]');
      }
      return r.send(body, signal);
    };
    const { q, counts, logs } = queue(send, { maxPerSend: 5 });
    q.push(tick(0, 12));
    await until(() => counts.sentN === 12);
    assert.deepEqual(
      r.received.flatMap((x) => x.values),
      Array.from({ length: 12 }, (_, i) => i),
    );
    assert.deepEqual(counts.retriesBy, { internal: 3 });
    assert.equal(counts.failedN, 15, "each failed attempt counts its 5 samples");
    const errors = logs.filter((l) => l.level === "error");
    assert.equal(errors.length, 1, "the same exception is logged once, not per attempt");
    assert.match(JSON.stringify(errors[0]!.obj), /Invalid character in header content/);
    await q.close(100);
  });

  it("a send that rejects, or an encoder that throws, is retried the same way", async () => {
    const r = receiver([]);
    let rejects = 1;
    const send = async (body: Uint8Array, signal: AbortSignal): Promise<SendResult> => {
      if (rejects-- > 0) throw new Error("rejected");
      return r.send(body, signal);
    };
    const counts = new Counts();
    let encodeThrows = 1;
    const q = new SendQueue({
      maxSamples: 1000,
      maxPerSend: 100,
      send,
      observer: counts,
      log: { debug() {}, info() {}, warn() {}, error() {} },
      random: () => 0,
      encode: (samples) => {
        if (encodeThrows-- > 0) throw new RangeError("encoder bug");
        return toWriteRequest(samples);
      },
    });
    q.push(tick(0, 3));
    await until(() => counts.sentN === 3);
    assert.deepEqual(counts.retriesBy, { internal: 2 });
    assert.deepEqual(
      r.received.flatMap((x) => x.values),
      [0, 1, 2],
    );
    await q.close(100);
  });

  it("anything else escaping the send loop restarts it (counted as internal); delivery goes on", async () => {
    const r = receiver([]);
    const counts = new Counts();
    let blowUp = true;
    const observer: QueueObserver = {
      sent: (n) => {
        if (blowUp) {
          blowUp = false;
          throw new Error("observer bug");
        }
        counts.sent(n);
      },
      failed: (n) => counts.failed(n),
      dropped: (n, reason) => counts.dropped(n, reason),
      retried: (reason) => counts.retried(reason),
      attempt: () => counts.attempt(),
      lastSuccess: (ms) => counts.lastSuccess(ms),
    };
    const errors: string[] = [];
    const q = new SendQueue({
      maxSamples: 1000,
      maxPerSend: 100,
      send: r.send,
      observer,
      log: { debug() {}, info() {}, warn() {}, error: (_o, msg) => void errors.push(msg) },
      random: () => 0,
    });
    q.push(tick(0, 2));
    await until(() => counts.sentN === 2);
    q.push(tick(2, 2));
    await until(() => counts.sentN === 4);
    assert.deepEqual(counts.retriesBy, { internal: 1 });
    assert.deepEqual(errors, ["Send loop failed; restarting it"]);
    // The batch whose bookkeeping threw is sent again (an exact duplicate, which receivers accept), never lost.
    assert.deepEqual(
      r.received.flatMap((x) => x.values),
      [0, 1, 0, 1, 2, 3],
    );
    await q.close(100);
  });

  it("while the receiver is down, every sample waits and arrives afterwards, in order", async () => {
    const script: SendResult[] = Array.from({ length: 5 }, () => down);
    const r = receiver(script);
    const { q, counts } = queue(r.send, { maxPerSend: 4 });
    for (let i = 0; i < 10; i++) {
      q.push([...tick(i, 1), ...tick(i, 1, seriesB)]);
      await sleep(10);
    }
    await until(() => counts.sentN === 20);
    // Batches of 4 keep pairs (a, b) together: a's values are every other value, in order.
    const all = r.received.flatMap((x) => x.values);
    assert.deepEqual(
      all.filter((_, i) => i % 2 === 0),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.deepEqual(
      all.filter((_, i) => i % 2 === 1),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(counts.droppedBy.buffer_full ?? 0, 0);
    await q.close(100);
  });

  it("when full, drops the oldest — the batch being retried first — and keeps the newest, contiguous", async () => {
    const r = receiver([], down);
    const { q, counts } = queue(r.send, { maxSamples: 10, maxPerSend: 4 });
    for (let i = 0; i < 25; i++) {
      q.push(tick(i, 1));
      assert.ok(q.buffered <= 10, `buffered ${q.buffered}`);
      await sleep(3);
    }
    assert.equal(q.buffered, 10);
    // Everything else was dropped for room; nothing silently.
    assert.equal(counts.droppedBy.buffer_full, 15);
    assert.ok((counts.retriesBy.network ?? 0) > 0);
    // Receiver back: the newest ten arrive, in order.
    r.state.fallback = ok();
    await until(() => counts.sentN === 10);
    assert.deepEqual(
      r.received.flatMap((x) => x.values),
      [15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
    );
    await q.close(100);
  });

  it("an evicted batch that was on the wire and succeeded counts as sent, not dropped", async () => {
    let release: (r: SendResult) => void = () => {};
    let calls = 0;
    const counts = new Counts();
    const q = new SendQueue({
      maxSamples: 4,
      maxPerSend: 4,
      send: () => {
        calls++;
        return calls === 1 ? new Promise<SendResult>((res) => (release = res)) : Promise.resolve(ok());
      },
      observer: counts,
      log: { debug() {}, info() {}, warn() {}, error() {} },
      random: () => 0,
    });
    q.push(tick(0, 4));
    await sleep(5);
    q.push(tick(4, 2)); // over the bound: the batch on the wire makes room
    assert.equal(q.buffered, 2);
    release(ok());
    await until(() => counts.sentN === 6);
    assert.deepEqual(counts.droppedBy, {});
    await q.close(100);
  });

  it("journals every accepted sample and acknowledges each one once as it leaves, in stream order", async () => {
    const r = receiver([status(400), down], down);
    let appended = 0;
    let acked = 0;
    const counts = new Counts();
    const q = new SendQueue({
      maxSamples: 6,
      maxPerSend: 2,
      send: r.send,
      observer: counts,
      log: { debug() {}, info() {}, warn() {}, error() {} },
      random: () => 0,
      journal: {
        append: (s) => (appended += s.length),
        ack: (n) => {
          acked += n;
          assert.ok(acked <= appended, "acknowledged more than was appended");
        },
      },
    });
    q.push([...tick(0, 3), ...tick(0, 1)]); // the repeated sample is refused before the journal
    assert.equal(appended, 3);
    for (let i = 3; i < 12; i++) {
      q.push(tick(i, 1));
      await sleep(5);
    }
    r.state.fallback = ok();
    await until(() => q.buffered === 0);
    assert.equal(appended, 12);
    assert.equal(acked, 12, "every appended sample acknowledged exactly once");
    assert.equal(counts.sentN + (counts.droppedBy.rejected ?? 0) + (counts.droppedBy.buffer_full ?? 0), 12);
    await q.close(100);
  });

  it("with a disk journal that cannot write, counts the samples held in memory only and, at close, as lost", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const nodeFs = await import("node:fs");
    const { openDiskBuffer } = await import("./disk.ts");
    const dir = mkdtempSync(path.join(tmpdir(), "mp-queue-journal-"));
    try {
      let full = false;
      const fs = {
        ...nodeFs,
        writeSync: ((...a: Parameters<typeof nodeFs.writeSync>) => {
          if (full) throw Object.assign(new Error("ENOSPC: injected"), { code: "ENOSPC" });
          return (nodeFs.writeSync as (...x: unknown[]) => number)(...a);
        }) as typeof nodeFs.writeSync,
      };
      const journal = openDiskBuffer({ dir, maxBytes: 1 << 20, log: { info() {}, warn() {} }, fs });
      journal.readAll();
      const counts = new Counts();
      const q = new SendQueue({
        maxSamples: 100,
        maxPerSend: 10,
        send: receiver([], down).send,
        observer: counts,
        log: { debug() {}, info() {}, warn() {}, error() {} },
        random: () => 0,
        journal,
      });
      q.push(tick(0, 3));
      full = true;
      q.push(tick(3, 4));
      full = false;
      q.push(tick(7, 2));
      assert.deepEqual(counts.memoryOnlyBy, { write_failed: 4 });
      const { lost, kept } = await q.close(50);
      assert.deepEqual({ lost, kept }, { lost: 4, kept: 5 });
      assert.equal(counts.droppedBy.shutdown, 4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("with a journal, close() keeps what is left there instead of counting it lost; restore() refills the buffer", async () => {
    const r = receiver([], down);
    const journal = {
      appended: 0,
      acked: 0,
      append: (s: readonly Sample[]) => (journal.appended += s.length),
      ack: (n: number) => void (journal.acked += n),
    };
    const counts = new Counts();
    const mk = () =>
      new SendQueue({
        maxSamples: 100,
        maxPerSend: 10,
        send: r.send,
        observer: counts,
        log: { debug() {}, info() {}, warn() {}, error() {} },
        random: () => 0,
        journal,
      });
    const q = mk();
    q.push(tick(0, 5));
    const { lost, kept } = await q.close(50);
    assert.deepEqual({ lost, kept }, { lost: 0, kept: 5 });
    assert.equal(counts.droppedBy.shutdown, undefined);
    assert.equal(journal.acked, 0);
    r.state.fallback = ok();
    const q2 = mk();
    q2.restore(tick(0, 5));
    assert.equal(journal.appended, 5, "restored samples are not journaled twice");
    q2.push(tick(5, 1));
    await until(() => counts.sentN === 6);
    assert.deepEqual(
      r.received.flatMap((x) => x.values),
      [0, 1, 2, 3, 4, 5],
    );
    assert.equal(journal.acked, 6);
    await q2.close(100);
  });

  it("close() flushes what is buffered when the receiver answers", async () => {
    const r = receiver([down]);
    const { q, counts } = queue(r.send, { maxPerSend: 3 });
    q.push(tick(0, 10));
    const { lost } = await q.close(2000);
    assert.equal(lost, 0);
    assert.equal(counts.sentN, 10);
  });

  it("close() retries quickly during the flush, so a receiver back within SHUTDOWN_TIMEOUT still gets everything", async () => {
    const r = receiver([], down);
    const { q, counts } = queue(r.send, { maxPerSend: 5 });
    q.push(tick(0, 10));
    // Let the backoff grow well beyond the flush window (15 ms doubling: the 8th wait is ~1.9 s).
    await until(() => counts.attempts >= 8, 10_000);
    setTimeout(() => (r.state.fallback = ok()), 300);
    const t0 = Date.now();
    const { lost } = await q.close(1500);
    assert.equal(lost, 0, `flush missed the receiver's return (took ${Date.now() - t0} ms)`);
    assert.equal(counts.sentN, 10);
  });

  it("close() gives up at the deadline, aborts the request in flight and counts the loss", async () => {
    const r = receiver(["hang"], down);
    const { q, counts } = queue(r.send, { maxPerSend: 3 });
    q.push(tick(0, 10));
    await sleep(10);
    const t0 = Date.now();
    const { lost } = await q.close(200);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(lost, 10);
    assert.equal(counts.droppedBy.shutdown, 10);
    assert.equal(q.buffered, 0);
  });
});
