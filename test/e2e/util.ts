// Helpers shared by the end-to-end tests: every wait is a poll with a deadline and a message saying what was awaited.
import { setTimeout as sleep } from "node:timers/promises";

/** Polls `check` until it returns true (or a truthy value, returned); fails with `what` and the last detail. */
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${(lastError as Error).message?.split("\n")[0]})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}
