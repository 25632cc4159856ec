// Capped exponential backoff, shared by the pusher's retry policy and the operator's work queue and informers
// (exported as @metrics-pusher/pusher/backoff, as the environment contract is): one formula, tested once.

/**
 * The delay before retry number `attempt` (0 = first retry): `initialMs` doubling up to `maxMs`. With `random`,
 * "equal jitter" — half fixed, half random — so that many clients that failed together do not retry in lockstep, yet
 * none retries sooner than half the delay. Without it, the bare delay (a work queue's per-key retries).
 */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random?: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return random ? Math.round(base / 2 + (base / 2) * random()) : base;
}
