// A work queue of keys ("namespace/name"), client-go style: a key is queued at most once, is never processed by two
// workers at once (a key added while processing runs again afterwards), and failures retry with per-key exponential
// backoff.
import { backoffMs } from "@metrics-pusher/pusher/backoff";

export interface ProcessResult {
  readonly requeueAfterMs?: number | undefined;
}

/** Where the queue reports what it does; the controller binds it to the workqueue_* metrics. */
export interface WorkQueueObserver {
  /** A key was added that was not waiting already. */
  added(): void;
  /** Keys waiting now (not those being processed). */
  depth(keys: number): void;
  /** A failed key was scheduled to run again after its backoff. */
  retried(): void;
  /** A key left the queue to be processed after waiting this long. */
  waited(seconds: number): void;
  /** Processing one key took this long, whatever its outcome. */
  worked(seconds: number): void;
}

export interface WorkQueueOptions {
  /**
   * Processes one key; a rejection retries it with backoff. A result with `requeueAfterMs` runs the key again after
   * that long (work held back on purpose, not a failure: the backoff does not grow).
   */
  readonly process: (key: string) => Promise<ProcessResult | void>;
  readonly onError?: (key: string, err: unknown, attempt: number) => void;
  readonly concurrency?: number;
  readonly observer?: WorkQueueObserver;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

export class WorkQueue {
  readonly #opts: WorkQueueOptions;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #active = new Set<string>();
  /** Keys added while being processed: queued again when their run ends. */
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  readonly #failures = new Map<string, number>();
  /** When each waiting key entered the queue (performance.now()). */
  readonly #addedAt = new Map<string, number>();
  #running = 0;
  #pumpScheduled = false;
  #stopped = false;
  #idleWaiters: (() => void)[] = [];

  constructor(opts: WorkQueueOptions) {
    this.#opts = opts;
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#active.has(key)) {
      if (!this.#dirty.has(key)) this.#opts.observer?.added();
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#opts.observer?.added();
    this.#enqueue(key);
  }

  #enqueue(key: string): void {
    this.#queued.add(key);
    this.#queue.push(key);
    this.#addedAt.set(key, performance.now());
    this.#opts.observer?.depth(this.#queue.length);
    // Start on the next turn so that a burst of adds from one informer callback run coalesces.
    if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      setImmediate(() => {
        this.#pumpScheduled = false;
        this.#pump();
      });
    }
  }

  /** Adds the key after `ms`; an earlier pending addAfter for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) return this.add(key);
    const due = Date.now() + ms;
    const existing = this.#timers.get(key);
    if (existing) {
      if (existing.due <= due) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref?.();
    this.#timers.set(key, { timer, due });
  }

  get length(): number {
    return this.#queue.length;
  }

  /** Resolves when nothing is queued or running (tests). */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && this.#running === 0 && !this.#pumpScheduled) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Drops queued keys and timers and waits for running work to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t.timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
    this.#dirty.clear();
    this.#addedAt.clear();
    this.#opts.observer?.depth(0);
    await this.idle();
  }

  #pump(): void {
    const concurrency = this.#opts.concurrency ?? 1;
    while (!this.#stopped && this.#running < concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#queued.delete(key);
      const addedAt = this.#addedAt.get(key);
      this.#addedAt.delete(key);
      this.#opts.observer?.waited(addedAt === undefined ? 0 : (performance.now() - addedAt) / 1000);
      this.#opts.observer?.depth(this.#queue.length);
      this.#active.add(key);
      this.#running++;
      void this.#run(key);
    }
    if (this.#queue.length === 0 && this.#running === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  async #run(key: string): Promise<void> {
    const started = performance.now();
    try {
      const result = await this.#opts.process(key);
      this.#failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const attempt = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, attempt);
      this.#opts.onError?.(key, err, attempt);
      const initial = this.#opts.backoffInitialMs ?? 500;
      const max = this.#opts.backoffMaxMs ?? 300_000;
      this.#opts.observer?.retried();
      this.addAfter(key, backoffMs(attempt - 1, initial, max));
    } finally {
      this.#opts.observer?.worked((performance.now() - started) / 1000);
      this.#active.delete(key);
      this.#running--;
      // Counted as added when it was marked dirty.
      if (this.#dirty.delete(key) && !this.#stopped && !this.#queued.has(key)) this.#enqueue(key);
      this.#pump();
    }
  }
}
