// What to do with the answer to a Remote-Write request: a pure policy, kept apart from HTTP so that every status code
// can be tested on its own. Rules from the Remote-Write spec and Prometheus' queue manager:
//   2xx → delivered. 5xx and network errors → retry the same batch with exponential backoff and jitter, forever while
//   the process lives. 429 → wait Retry-After (seconds or an HTTP date) when it is longer than the backoff, else the
//   backoff: a receiver may ask us to wait longer, never to hammer it (`Retry-After: 0`, a date in the past, or a clock
//   behind ours would otherwise turn the backoff off: 1,200 requests in 3 s were measured). Any other answer
//   (4xx, and 1xx/3xx that should never reach us) → drop the batch: resending cannot succeed.

import { backoffMs as exponentialBackoffMs } from "../backoff.ts";

export const BACKOFF_MIN_MS = 30;
export const BACKOFF_MAX_MS = 5000;
/** A receiver asking for longer than this is not waited for longer: data keeps piling up meanwhile. */
export const RETRY_AFTER_MAX_MS = 5 * 60_000;

/** Why a batch is retried; a label of the retries counter. */
export const RetryReason = {
  ServerError: "server_error",
  RateLimited: "rate_limited",
  Network: "network",
  Timeout: "timeout",
  Credentials: "credentials",
  /** The send threw (a bug): logged with its stack, retried like a network error. */
  Internal: "internal",
} as const;
export type RetryReason = (typeof RetryReason)[keyof typeof RetryReason];

export type Decision =
  | { readonly action: "success" }
  | { readonly action: "retry"; readonly delayMs: number; readonly reason: RetryReason }
  | { readonly action: "drop"; readonly status: number };

/** The outcome of one attempt as the client saw it. */
export type Attempt =
  | { readonly kind: "response"; readonly status: number; readonly retryAfter?: string | undefined }
  | { readonly kind: "error"; readonly reason: "network" | "timeout" | "credentials" | "internal" };

/**
 * Backoff before retry number `attempt` (0 = first retry): 30 ms doubling up to 5 s, with "equal jitter" (half fixed,
 * half random) so that many pushers behind one receiver do not retry in lockstep but never retry too early.
 */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return exponentialBackoffMs(attempt, BACKOFF_MIN_MS, BACKOFF_MAX_MS, random);
}

/**
 * Parses a Retry-After header: delay-seconds (a non-negative integer) or an HTTP date. Returns milliseconds to wait
 * (0 for a date in the past), or undefined when absent or unparsable.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date always names a weekday and GMT; Date.parse alone would accept "5.5" or "1 2".
  if (!/[A-Za-z]{3}/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

export function decide(
  attempt: Attempt,
  retryNumber: number,
  nowMs: number,
  random: () => number = Math.random,
): Decision {
  if (attempt.kind === "error") {
    return { action: "retry", delayMs: backoffMs(retryNumber, random), reason: attempt.reason };
  }
  const { status } = attempt;
  if (status >= 200 && status < 300) return { action: "success" };
  if (status === 429 || status >= 500) {
    const reason = status === 429 ? RetryReason.RateLimited : RetryReason.ServerError;
    // Retry-After may come with 503 too (RFC 9110); honour it wherever it is sent with a retryable status.
    const after = parseRetryAfter(attempt.retryAfter, nowMs);
    // The backoff is the floor whatever the header says; the receiver can only lengthen the wait (up to the cap).
    const floor = backoffMs(retryNumber, random);
    const delayMs = after === undefined ? floor : Math.max(floor, Math.min(after, RETRY_AFTER_MAX_MS));
    return { action: "retry", delayMs, reason };
  }
  return { action: "drop", status };
}
