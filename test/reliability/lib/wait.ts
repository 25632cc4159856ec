// Every wait in the reliability suites is a poll with a deadline and a message that says what did not happen.
import { setTimeout as sleep } from "node:timers/promises";

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** What we were waiting for, in words; the failure message starts with it. */
  message: string;
}

/**
 * Polls `check` until it returns a value other than undefined/false, or throws after timeoutMs with the message and
 * the last value or error seen (so a failure says what the state was, not only that time ran out).
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: WaitOptions,
): Promise<T> {
  const deadline = performance.now() + opts.timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${opts.timeoutMs} ms: ${opts.message} (last: ${describe(last)})`);
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
