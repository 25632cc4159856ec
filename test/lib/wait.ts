// The one poller of the tests, the demo and the benchmarks: every wait has a deadline and a message that says what
// did not happen, with the last value or error seen (so a failure says what the state was, not only that time ran out).
import { setTimeout as sleep } from "node:timers/promises";

export interface WaitOptions {
  timeoutMs: number;
  /** Pause between checks (default 200 ms). */
  intervalMs?: number;
  /** What we wait for, in words: the failure reads "timed out after N ms waiting for <message>". */
  message: string;
}

/** Thrown by a check to end the wait at once (e.g. the process it waits on exited); waitFor rethrows it as it is. */
export class WaitAborted extends Error {}

/** The deadline passed; callers that add context (log tails) to a failed wait tell it apart by its class. */
export class WaitTimeout extends Error {}

/**
 * Polls `check` until it returns a truthy value, which it resolves to. A check that throws is "not yet" (its error is
 * kept for the failure message), unless it throws a WaitAborted.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: WaitOptions,
): Promise<Exclude<T, undefined | null | false | 0 | "">> {
  const deadline = performance.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as Exclude<T, undefined | null | false | 0 | "">;
      last = v;
    } catch (e) {
      if (e instanceof WaitAborted) throw e;
      last = e instanceof Error ? e.message : e;
    }
    if (performance.now() >= deadline) {
      throw new WaitTimeout(
        `timed out after ${opts.timeoutMs} ms waiting for ${opts.message} (last: ${describe(last)})`,
      );
    }
    await sleep(opts.intervalMs ?? 200);
  }
}

function describe(v: unknown): string {
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/**
 * waitFor for checks that answer `undefined` until the thing is there, and then the thing itself, which may be
 * falsy (0, "", false): the node bed's tests read values from the kubelet's status that way.
 */
export async function eventually<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  intervalMs = 1000,
): Promise<T> {
  const box = await waitFor(
    async () => {
      const value = await check();
      return value === undefined ? undefined : { value };
    },
    { timeoutMs, intervalMs, message: what },
  );
  return box.value;
}
