// A token bucket for rollouts: at most `capacity` workloads restarted at once, refilled at capacity per interval, so
// a config change (or an operator upgrade changing the default image) never restarts a whole cluster at once.

export class TokenBucket {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #clock: () => number;
  #tokens: number;
  #last: number;

  constructor(capacity: number, intervalMs: number, clock: () => number = Date.now) {
    this.#capacity = capacity;
    this.#refillPerMs = capacity / intervalMs;
    this.#clock = clock;
    this.#tokens = capacity;
    this.#last = clock();
  }

  #refill(): void {
    const now = this.#clock();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#last) * this.#refillPerMs);
    this.#last = now;
  }

  /** Takes a token when one is available. */
  tryTake(): boolean {
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }

  /** Milliseconds until the next token (0 when one is available). */
  waitMs(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#refillPerMs);
  }
}
