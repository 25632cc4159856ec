// SIGTERM while the receiver is down: a last flush is tried within SHUTDOWN_TIMEOUT, the loss (if any) is logged with
// a count, and the process exits 0. When the receiver comes back inside the window, the flush delivers everything.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startFaultProxy, type FaultProxy } from "./lib/faultproxy.ts";
import { startPusher, type LogLine, type PusherProcess } from "./lib/pusher.ts";
import { PM } from "./lib/pushermetrics.ts";
import { TICK_METRIC, tickTarget, type Target } from "./lib/targets.ts";
import { waitFor } from "../lib/wait.ts";

const SHUTDOWN_MS = 3000;

/** A log line that reports lost samples with a count, or undefined. */
function lossLine(logs: readonly LogLine[]): { line: LogLine; count: number } | undefined {
  for (const l of logs) {
    for (const [k, v] of Object.entries(l)) {
      if (
        typeof v === "number" &&
        v > 0 &&
        /lost|undelivered|dropped|unsent|remaining|left/i.test(k) &&
        /shut|exit|lost|undelivered|flush/i.test(String(l.msg))
      ) {
        return { line: l, count: v };
      }
    }
  }
  return undefined;
}

describe("SIGTERM during an outage", () => {
  let proxy: FaultProxy;
  let target: Target;
  let pusher: PusherProcess | undefined;
  before(async () => {
    proxy = await startFaultProxy();
    target = await tickTarget();
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    await target?.close();
  });

  const start = (): Promise<PusherProcess> =>
    startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "1s",
        TIMEOUT: "1s",
        SHUTDOWN_TIMEOUT: `${SHUTDOWN_MS}ms`,
        SCRAPE_TARGETS: target.url,
      },
    });

  it("receiver still down: exits 0 within SHUTDOWN_TIMEOUT and logs how many samples were lost", async () => {
    await pusher?.stop(); // a previous case that failed midway
    pusher = await start();
    await waitFor(async () => (await pusher!.metric(PM.sent)) > 0, {
      timeoutMs: 20_000,
      message: "a first successful push",
    });
    await proxy.down();
    await sleep(3000);
    const buffered = await pusher.metric(PM.buffered);
    assert.ok(buffered > 0, "nothing buffered after 3 s of outage");
    const t0 = Date.now();
    pusher.signal("SIGTERM");
    const exit = await pusher.exited;
    const took = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM: ${JSON.stringify(exit)}\n${pusher.tail()}`);
    assert.ok(took <= SHUTDOWN_MS + 2000, `shutdown took ${took} ms with SHUTDOWN_TIMEOUT ${SHUTDOWN_MS} ms`);
    const loss = lossLine(pusher.logs);
    assert.ok(loss, `no log line reports the lost samples with a count:\n${pusher.tail(10)}`);
    assert.ok(loss.count >= buffered, `logged loss ${loss.count} < ${buffered} samples buffered before SIGTERM`);
    await proxy.up();
    pusher = undefined;
  });

  it("receiver back when SIGTERM arrives: the last flush, tried at once, delivers every tick taken", async () => {
    proxy.requests.length = 0;
    await pusher?.stop(); // a previous case that failed midway
    pusher = await start();
    await waitFor(async () => (await pusher!.metric(PM.sent)) > 0, {
      timeoutMs: 20_000,
      message: "a first successful push",
    });
    await proxy.down();
    await sleep(3000);
    // Back at the moment of the signal: the pusher is deep in retry backoff (seconds); the shutdown must not wait for
    // it but try at once. (A receiver that returns only after the signal may still miss the window: the backoff is not
    // shortened during shutdown — noted in the report, not promised by the issue.)
    await proxy.up();
    pusher.signal("SIGTERM");
    const exit = await pusher.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, pusher.tail());
    const ticks = proxy
      .delivered()
      .filter((s) => s.labels.includes(`__name__="${TICK_METRIC}"`) && !s.stale)
      .map((s) => s.value);
    const taken = target.hits;
    // The final collection scrapes once more; every scrape served must have been delivered, in order.
    const sinceRestart = ticks.filter((v, i) => i === 0 || v > ticks[i - 1]!);
    assert.equal(sinceRestart.at(-1), taken, `last delivered tick ${sinceRestart.at(-1)}, target served ${taken}`);
    for (let i = 1; i < ticks.length; i++)
      assert.equal(
        ticks[i],
        ticks[i - 1]! + 1,
        `tick gap or repeat at ${i}: ${ticks.slice(Math.max(0, i - 3), i + 2).join(",")}`,
      );
    const loss = lossLine(pusher.logs);
    assert.equal(loss, undefined, `a loss was logged although the flush succeeded: ${JSON.stringify(loss?.line)}`);
    pusher = undefined;
  });

  it("a second signal exits at once", async () => {
    await pusher?.stop(); // a previous case that failed midway
    pusher = await start();
    await proxy.down();
    await sleep(1500);
    pusher.signal("SIGTERM");
    await sleep(100);
    const t0 = Date.now();
    pusher.signal("SIGTERM");
    const exit = await pusher.exited;
    assert.ok(Date.now() - t0 < 1000, `second signal: exit took ${Date.now() - t0} ms`);
    assert.notEqual(exit.code, null, `killed by a signal instead of exiting: ${JSON.stringify(exit)}`);
    await proxy.up();
    pusher = undefined;
  });
});
