// The bounded buffer between collection and the receiver, and the one sender that drains it.
//
// - push() never waits: collection must not wait for delivery.
// - One request in flight; batches of at most maxPerSend samples, oldest first, so each series' samples arrive in
//   order.
// - A sample whose timestamp is not newer than the last one accepted for its series is dropped at once and counted
//   (Prometheus refuses the whole request for one such sample). Accepted samples reach the receiver in order, so
//   "newer than the last accepted" implies "newer than the last sent".
// - When more than maxSamples are buffered, the oldest go first — the batch being retried (or on the wire) before
//   anything else — and are counted. A batch dropped while on the wire counts as sent if that attempt succeeds.
// - Answers are judged by retry.ts: success, retry after a delay, or drop (counted, logged with ≤1 KiB of body).
// - close() flushes within a deadline; what is left is counted and returned.
import { setTimeout as sleep } from "node:timers/promises";
import { seriesKey, type Sample } from "../series.ts";
import type { SendResult } from "./client.ts";
import { toWriteRequest } from "./encode.ts";
import { RetryReason, backoffMs, decide } from "./retry.ts";

/**
 * Samples further ahead of the pusher's clock are refused. One such sample would otherwise become its series' "last
 * timestamp" (every later sample of it refused as out of order) and the reference time of pruning (no series ever
 * forgotten again). Prometheus' TSDB refuses samples this far ahead too (its out-of-bounds window is similar).
 */
export const MAX_FUTURE_MS = 10 * 60_000;

/** Longest wait between two attempts of the last flush, once shutdown started. */
const SHUTDOWN_RETRY_MS = 250;

export const DropReason = {
  /** The buffer was full: the oldest samples made room for new ones. */
  BufferFull: "buffer_full",
  /** Timestamp not newer than the last sample accepted for the series. */
  OutOfOrder: "out_of_order",
  /** The receiver refused the batch with a 4xx other than 429. */
  Rejected: "rejected",
  /** Still buffered when the shutdown deadline passed, and not kept in BUFFER_DIR (none, or their write failed). */
  Shutdown: "shutdown",
  /** Found in BUFFER_DIR after a restart, too old for a receiver to accept (over an hour). */
  TooOld: "too_old",
  /** Timestamp more than MAX_FUTURE_MS ahead of the pusher's clock (e.g. a target exposing microseconds). */
  TooFarInFuture: "too_far_in_future",
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Where the queue reports what happens to samples; main.ts binds it to prom-client metrics. */
export interface QueueObserver {
  sent(samples: number): void;
  /** Samples in a request that failed (each failed attempt counts). */
  failed(samples: number): void;
  dropped(samples: number, reason: DropReason): void;
  retried(reason: RetryReason): void;
  /** Duration of one request attempt, whatever its outcome. */
  attempt(seconds: number): void;
  lastSuccess(ms: number): void;
  /**
   * Samples the journal holds in memory only (write failed, or evicted for BUFFER_MAX_BYTES): still delivered, but a
   * restart before that loses them.
   */
  memoryOnly?(samples: number, reason: MemoryOnlyReason): void;
}

export const MemoryOnlyReason = {
  /** The disk refused the write (full, I/O error). */
  WriteFailed: "write_failed",
  /** Removed from disk to stay within BUFFER_MAX_BYTES. */
  MaxBytes: "max_bytes",
} as const;
export type MemoryOnlyReason = (typeof MemoryOnlyReason)[keyof typeof MemoryOnlyReason];

export interface QueueLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * A durable copy of the buffer (disk.ts): every accepted sample is appended in order, and every sample that leaves
 * the front — delivered, refused or dropped — is acknowledged by count.
 */
export interface Journal {
  /** May return disk.ts's AppendResult: { evicted, unwritten } samples now held in memory only. */
  append(samples: readonly Sample[]): unknown;
  ack(count: number): void;
  /** Samples appended, not acknowledged and not on disk: what a restart would lose. */
  notDurable?(): number;
}

export interface QueueOptions {
  readonly maxSamples: number;
  readonly maxPerSend: number;
  readonly send: (body: Uint8Array, signal: AbortSignal) => Promise<SendResult>;
  readonly observer: QueueObserver;
  readonly log: QueueLog;
  readonly encode?: (samples: readonly Sample[]) => Uint8Array;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Series not seen for this long are forgotten by the order check (default one hour). */
  readonly forgetAfterMs?: number;
  readonly journal?: Journal;
}

interface Batch {
  /** Oldest first; the oldest are cut when room is needed while the batch waits for its retry. */
  readonly samples: Sample[];
  body: Uint8Array | undefined;
  retries: number;
  onWire: boolean;
  /** Made room for newer samples; its fate is counted when its attempt ends. */
  evicted: boolean;
  /** Aborts the wait before the next attempt (room needed, or shutdown). */
  wait: AbortController | undefined;
}

export class SendQueue {
  readonly #o: QueueOptions;
  readonly #now: () => number;
  readonly #encode: (samples: readonly Sample[]) => Uint8Array;
  #buf: Sample[] = [];
  #head = 0;
  #batch: Batch | undefined;
  readonly #last = new Map<string, number>();
  #lastPrune = 0;
  #wake: (() => void) | undefined;
  readonly #abort = new AbortController();
  #closing = false;
  #loop: Promise<void>;
  /** Failure streak, for one warning per outage instead of one per attempt. */
  #failingSince: number | undefined;
  #failedAttempts = 0;
  #journalFailing = false;
  /** The first line of the last exception a send threw: each distinct one is logged once, with its stack. */
  #lastThrow = "";

  constructor(options: QueueOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#encode = options.encode ?? toWriteRequest;
    this.#loop = this.#supervise();
  }

  /** Samples waiting for delivery (the batch on the wire included). */
  get buffered(): number {
    return (
      this.#buf.length -
      this.#head +
      (this.#batch !== undefined && !this.#batch.evicted ? this.#batch.samples.length : 0)
    );
  }

  /** Series the order check remembers (forgotten after forgetAfterMs without a sample). */
  get trackedSeries(): number {
    return this.#last.size;
  }

  /** Adds samples in order; returns at once. */
  push(samples: readonly Sample[]): void {
    if (this.#closing && this.#abort.signal.aborted) {
      this.#o.observer.dropped(samples.length, DropReason.Shutdown);
      return;
    }
    const accepted = this.#accept(samples);
    if (accepted.length > 0) {
      this.#journal((j) => {
        const r = j.append(accepted) as { evicted?: unknown; unwritten?: unknown } | null | undefined;
        if (typeof r !== "object" || r === null) return;
        if (typeof r.unwritten === "number" && r.unwritten > 0)
          this.#o.observer.memoryOnly?.(r.unwritten, MemoryOnlyReason.WriteFailed);
        if (typeof r.evicted === "number" && r.evicted > 0)
          this.#o.observer.memoryOnly?.(r.evicted, MemoryOnlyReason.MaxBytes);
      });
    }
    this.#after(accepted);
  }

  /** Puts samples recovered from the journal at the end of the buffer, without journaling them again. */
  restore(samples: readonly Sample[]): void {
    const accepted = this.#accept(samples);
    // The journal holds only samples accepted in order, so none should be refused here. If one is anyway, it is
    // acknowledged at once so that the totals stay aligned (the cursor then runs ahead by that many until they leave).
    const refused = samples.length - accepted.length;
    if (refused > 0) this.#journal((j) => j.ack(refused));
    this.#after(accepted);
  }

  /** A journal that fails (disk full, I/O error) must not stop delivery from memory: log once per streak. */
  #journal(op: (j: Journal) => unknown): void {
    const j = this.#o.journal;
    if (j === undefined) return;
    try {
      op(j);
      if (this.#journalFailing) {
        this.#journalFailing = false;
        this.#o.log.info({}, "Disk buffer writable again");
      }
    } catch (e) {
      if (!this.#journalFailing) {
        this.#journalFailing = true;
        this.#o.log.error({ err: (e as Error).message }, "Disk buffer write failed; samples are kept in memory only");
      }
    }
  }

  #accept(samples: readonly Sample[]): Sample[] {
    const accepted: Sample[] = [];
    let outOfOrder = 0;
    let future = 0;
    const latestAllowed = this.#now() + MAX_FUTURE_MS;
    for (const s of samples) {
      if (!(s.timestampMs <= latestAllowed)) {
        future++;
        continue;
      }
      const key = seriesKey(s.labels);
      const last = this.#last.get(key);
      if (last !== undefined && !(s.timestampMs > last)) {
        outOfOrder++;
        continue;
      }
      this.#last.set(key, s.timestampMs);
      accepted.push(s);
    }
    if (outOfOrder > 0) {
      this.#o.observer.dropped(outOfOrder, DropReason.OutOfOrder);
      this.#o.log.debug({ samples: outOfOrder }, "Dropped samples not newer than the last one of their series");
    }
    if (future > 0) {
      this.#o.observer.dropped(future, DropReason.TooFarInFuture);
      this.#o.log.debug(
        { samples: future, maxAheadMs: MAX_FUTURE_MS },
        "Dropped samples timestamped too far ahead of the clock (microseconds instead of milliseconds?)",
      );
    }
    return accepted;
  }

  #after(accepted: Sample[]): void {
    let newest = 0;
    for (const s of accepted) {
      this.#buf.push(s);
      if (s.timestampMs > newest) newest = s.timestampMs;
    }
    this.#enforceBound();
    this.#forgetOldSeries(newest);
    this.#wake?.();
  }

  #enforceBound(): void {
    let excess = this.buffered - this.#o.maxSamples;
    if (excess <= 0) return;
    const b = this.#batch;
    if (b !== undefined && !b.evicted) {
      if (b.onWire) {
        // Its fate is known when the attempt ends: counted then as sent or dropped.
        b.evicted = true;
        excess -= b.samples.length;
        this.#journal((j) => j.ack(b.samples.length));
      } else if (excess < b.samples.length) {
        b.samples.splice(0, excess);
        b.body = undefined;
        this.#o.observer.dropped(excess, DropReason.BufferFull);
        this.#journal((j) => j.ack(excess));
        excess = 0;
      } else {
        b.evicted = true;
        excess -= b.samples.length;
        this.#o.observer.dropped(b.samples.length, DropReason.BufferFull);
        this.#journal((j) => j.ack(b.samples.length));
        b.wait?.abort();
      }
    }
    if (excess > 0) {
      this.#head += excess;
      this.#o.observer.dropped(excess, DropReason.BufferFull);
      this.#journal((j) => j.ack(excess));
      this.#compact();
    }
    this.#o.log.debug({ buffered: this.buffered }, "Buffer full: dropped the oldest samples");
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#buf.length) {
      this.#buf = this.#buf.slice(this.#head);
      this.#head = 0;
    }
  }

  #forgetOldSeries(newestMs: number): void {
    const window = this.#o.forgetAfterMs ?? 3_600_000;
    if (newestMs - this.#lastPrune < window / 4) return;
    this.#lastPrune = newestMs;
    for (const [key, ts] of this.#last) if (ts < newestMs - window) this.#last.delete(key);
  }

  #take(): Batch | undefined {
    const n = Math.min(this.#o.maxPerSend, this.#buf.length - this.#head);
    if (n === 0) return undefined;
    const samples = this.#buf.slice(this.#head, this.#head + n);
    this.#head += n;
    if (this.#head === this.#buf.length) {
      this.#buf = [];
      this.#head = 0;
    } else this.#compact();
    return { samples, body: undefined, retries: 0, onWire: false, evicted: false, wait: undefined };
  }

  /**
   * The root of the send path: whatever escapes #run (a bug) is logged, counted as a retry with reason "internal", and
   * the loop restarted after a backoff with its state (the batch, the buffer) as it was. It never ends the process.
   */
  async #supervise(): Promise<void> {
    for (let failures = 0; ; failures++) {
      try {
        await this.#run();
        return;
      } catch (e) {
        if (this.#batch !== undefined) this.#batch.onWire = false;
        this.#o.log.error({ err: errorText(e) }, "Send loop failed; restarting it");
        this.#o.observer.retried(RetryReason.Internal);
        try {
          await sleep(backoffMs(failures, this.#o.random), undefined, { signal: this.#abort.signal });
        } catch {
          return; // aborted at the shutdown deadline: close() counts what is left
        }
      }
    }
  }

  /** One attempt: encode (once) and send. A throw, synchronous or not, is a failed attempt like any other. */
  async #attempt(b: Batch, signal: AbortSignal): Promise<SendResult> {
    try {
      b.body ??= this.#encode(b.samples); // encoded once, unless cut meanwhile
      b.onWire = true;
      return await this.#o.send(b.body, signal);
    } catch (e) {
      const stack = errorText(e);
      const message = firstLine(stack);
      if (message !== this.#lastThrow) {
        this.#lastThrow = message;
        this.#o.log.error({ err: stack }, "Remote write threw (a bug); retrying the batch");
      }
      return { kind: "error", reason: RetryReason.Internal, message };
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      if (this.#batch === undefined) this.#batch = this.#take();
      const b = this.#batch;
      if (b === undefined) {
        if (this.#closing) return;
        await new Promise<void>((resolve) => {
          const onAbort = (): void => resolve();
          this.#wake = () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          };
          signal.addEventListener("abort", onAbort, { once: true });
        });
        this.#wake = undefined;
        continue;
      }
      const t0 = performance.now();
      const result = await this.#attempt(b, signal);
      b.onWire = false;
      this.#o.observer.attempt((performance.now() - t0) / 1000);
      if (signal.aborted) return; // close() counts what is left
      const n = b.samples.length;
      const decision = decide(result, b.retries, this.#now(), this.#o.random);
      if (decision.action === "success") {
        this.#o.observer.sent(n);
        this.#o.observer.lastSuccess(this.#now());
        if (!b.evicted) this.#journal((j) => j.ack(n)); // an evicted batch was acknowledged when it made room
        this.#recovered();
        this.#batch = undefined;
        continue;
      }
      this.#o.observer.failed(n);
      if (decision.action === "drop") {
        const body = result.kind === "response" ? result.body : "";
        this.#o.log.error(
          { status: decision.status, body, samples: n },
          "Receiver refused the batch; dropped it (not retried)",
        );
        this.#o.observer.dropped(n, b.evicted ? DropReason.BufferFull : DropReason.Rejected);
        if (!b.evicted) this.#journal((j) => j.ack(n));
        this.#batch = undefined;
        continue;
      }
      if (b.evicted) {
        // Made room while on the wire and the attempt failed: it is gone.
        this.#o.observer.dropped(n, DropReason.BufferFull);
        this.#batch = undefined;
        continue;
      }
      // Shutting down, the backoff would outlast a short SHUTDOWN_TIMEOUT: a receiver back within it must still get
      // the last flush. A receiver's own Retry-After is still honoured (the deadline bounds it).
      const delayMs =
        this.#closing && decision.reason !== RetryReason.RateLimited
          ? Math.min(decision.delayMs, SHUTDOWN_RETRY_MS)
          : decision.delayMs;
      this.#failing(result, decision.reason, delayMs);
      this.#o.observer.retried(decision.reason);
      b.retries++;
      b.wait = new AbortController();
      try {
        await sleep(delayMs, undefined, { signal: AbortSignal.any([signal, b.wait.signal]) });
      } catch {
        /* aborted: dropped for room, or shutting down */
      }
      b.wait = undefined;
      if (b.evicted) this.#batch = undefined;
    }
  }

  #failing(result: SendResult, reason: RetryReason, delayMs: number): void {
    this.#failedAttempts++;
    const detail =
      result.kind === "response"
        ? { status: result.status, body: result.body, reason }
        : { err: result.message, reason };
    if (this.#failingSince === undefined) {
      this.#failingSince = this.#now();
      this.#o.log.warn({ ...detail, retryInMs: delayMs, buffered: this.buffered }, "Remote write failed; retrying");
    } else {
      this.#o.log.debug(
        { ...detail, retryInMs: delayMs, buffered: this.buffered },
        "Remote write failed again; retrying",
      );
    }
  }

  #recovered(): void {
    if (this.#failingSince === undefined) return;
    this.#o.log.info(
      { failedAttempts: this.#failedAttempts, outageMs: this.#now() - this.#failingSince, buffered: this.buffered },
      "Remote write recovered",
    );
    this.#failingSince = undefined;
    this.#failedAttempts = 0;
  }

  /**
   * Stops taking new work once everything buffered is delivered, or at the deadline: then the request in flight is
   * aborted and what is left is dropped, counted (reason "shutdown") and returned as `lost` — or, with a journal,
   * left in it for the next start and returned as `kept`; what the journal holds in memory only is `lost`.
   */
  async close(timeoutMs: number): Promise<{ lost: number; kept: number }> {
    this.#closing = true;
    this.#wake?.();
    // A batch waiting for its retry is tried now: the deadline is what is left.
    this.#batch?.wait?.abort();
    const deadline = sleep(timeoutMs, "deadline" as const, { ref: false });
    const outcome = await Promise.race([this.#loop.then(() => "done" as const), deadline]);
    if (outcome === "deadline") {
      this.#abort.abort();
      await this.#loop;
    }
    const left = this.buffered;
    this.#buf = [];
    this.#head = 0;
    this.#batch = undefined;
    // With a journal, what is left stays there for the next start: not lost, except what never reached the disk (or
    // was evicted from it).
    const lost = this.#o.journal === undefined ? left : Math.min(left, this.#o.journal.notDurable?.() ?? 0);
    if (lost > 0) this.#o.observer.dropped(lost, DropReason.Shutdown);
    return { lost, kept: left - lost };
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
}

function firstLine(text: string): string {
  const i = text.indexOf("\n");
  return i < 0 ? text : text.slice(0, i);
}
