// The receiver — a real Prometheus 2.42 behind the fault-injecting proxy — goes away and comes back.
// 1. Within the buffer: every sample taken during the outage arrives afterwards, in order, and Prometheus refuses
//    none of them (it rolls back a whole request for one out-of-order sample); memory stays bounded.
// 2. Longer than the buffer holds: the oldest are dropped and counted, the newest arrive, memory stays flat.
// Short mode (make test): 20 s and 15 s outages at PUSH_INTERVAL=1s. Soak (npm run soak): 2 minutes and 4 minutes.
import { strict as assert } from "node:assert";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import { startFaultProxy, type FaultProxy } from "./lib/faultproxy.ts";
import { soak } from "./lib/mode.ts";
import { startPusher, type PusherProcess } from "./lib/pusher.ts";
import { PM } from "./lib/pushermetrics.ts";
import { TICK_METRIC, tickTarget, type Target } from "./lib/targets.ts";
import { waitFor } from "../lib/wait.ts";

const MiB = 1024 * 1024;
const mb = (b: number): string => (b / MiB).toFixed(1);

/** Tick values stored in Prometheus for the target, oldest first, with their timestamps. */
async function storedTicks(prom: Receiver, target: Target): Promise<{ values: number[]; timestampsMs: number[] }> {
  const series = await prom.samples(`${TICK_METRIC}{instance="${target.instance}"}`, 3_600_000);
  if (series.length === 0) return { values: [], timestampsMs: [] };
  assert.equal(series.length, 1, `expected one tick series, got ${series.length}`);
  return { values: series[0]!.values, timestampsMs: series[0]!.timestampsMs };
}

interface OutageFigures {
  rssBeforeMiB: string;
  rssMaxMiB: string;
  rssFirstHalfMaxMiB: string;
  rssSecondHalfMaxMiB: string;
  bufferedMax: number;
  taken: number;
}

/** Cuts the receiver for `ms`, sampling RSS and the buffered-samples gauge every second. */
async function outage(
  pusher: PusherProcess,
  proxy: FaultProxy,
  ms: number,
): Promise<{ rss: number[]; buffered: number[] }> {
  const rss: number[] = [];
  const buffered: number[] = [];
  await proxy.down();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await sleep(1000);
    assert.equal(
      pusher.exitInfo,
      undefined,
      `the pusher died during the outage: ${JSON.stringify(pusher.exitInfo)}\n${pusher.tail()}`,
    );
    rss.push(pusher.rssBytes());
    buffered.push(await pusher.metric(PM.buffered));
  }
  await proxy.up();
  return { rss, buffered };
}

function report(t: TestContext, name: string, f: OutageFigures & Record<string, unknown>): void {
  t.diagnostic(`${name}: ${JSON.stringify(f)}`);
}

describe("receiver outage against a real Prometheus", () => {
  let prom: Receiver;
  let proxy: FaultProxy;
  let target: Target;
  let pusher: PusherProcess | undefined;

  before(async () => {
    prom = await startPrometheus();
    proxy = await startFaultProxy({ upstream: prom.url });
    target = await tickTarget();
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    await target?.close();
    await prom?.stop();
  });

  it(`delivers every sample taken during a ${soak("20 s", "2 min")} outage, in order, none refused, memory bounded`, async (t) => {
    const OUTAGE_MS = soak(20_000, 120_000);
    const BUFFER = 100_000;
    await pusher?.stop(); // a previous case that failed midway
    pusher = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "1s",
        TIMEOUT: "2s",
        SCRAPE_TARGETS: target.url,
        BUFFER_MAX_SAMPLES: String(BUFFER),
        MAX_SAMPLES_PER_SEND: "500",
      },
    });
    await waitFor(async () => (await storedTicks(prom, target)).values.length >= 3, {
      timeoutMs: 30_000,
      message: "three tick samples stored in Prometheus before the outage",
    });
    const rssBefore = pusher.rssBytes();
    const { rss, buffered } = await outage(pusher, proxy, OUTAGE_MS);
    const taken = target.hits; // every scrape served up to here is a sample that must arrive

    const stored = await waitFor(
      async () => {
        const s = await storedTicks(prom, target);
        return s.values.filter((v) => v <= taken).length >= taken ? s : undefined;
      },
      {
        timeoutMs: 60_000 + OUTAGE_MS / 2,
        message: `all ${taken} tick samples (1..${taken}) stored in Prometheus after the outage`,
      },
    );
    const upTo = stored.values.filter((v) => v <= taken);
    assert.deepEqual(
      upTo,
      Array.from({ length: taken }, (_, i) => i + 1),
      "missing or repeated tick values",
    );
    for (let i = 1; i < stored.timestampsMs.length; i++) {
      assert.ok(stored.timestampsMs[i]! > stored.timestampsMs[i - 1]!, `timestamps not increasing at ${i}`);
    }
    const refused = proxy.requests.filter((r) => r.status >= 400 && r.status < 500);
    assert.deepEqual(
      refused.map((r) => r.status),
      [],
      "Prometheus refused requests (out of order or duplicate samples?)",
    );
    assert.equal(await pusher.metric(PM.dropped), 0, "samples were dropped although the buffer was large enough");

    // Bounded: the buffer never exceeds its limit, and memory grows by far less than the data would suggest.
    assert.ok(Math.max(...buffered) <= BUFFER, `buffered ${Math.max(...buffered)} > ${BUFFER}`);
    assert.ok(Math.max(...buffered) > 0, "the buffered-samples gauge never rose during the outage");
    const half = Math.floor(rss.length / 2);
    const figures = {
      outageMs: OUTAGE_MS,
      taken,
      bufferedMax: Math.max(...buffered),
      rssBeforeMiB: mb(rssBefore),
      rssMaxMiB: mb(Math.max(...rss)),
      rssFirstHalfMaxMiB: mb(Math.max(...rss.slice(0, half))),
      rssSecondHalfMaxMiB: mb(Math.max(...rss.slice(half))),
      requests: proxy.requests.length,
    };
    report(t, "outage within the buffer", figures);
    assert.ok(
      Math.max(...rss) - rssBefore < 64 * MiB,
      `RSS grew by ${mb(Math.max(...rss) - rssBefore)} MiB during the outage`,
    );
    await pusher.stop();
    pusher = undefined;
  });

  it(`drops and counts the oldest when a ${soak("15 s", "4 min")} outage outlasts the buffer; the newest arrive; memory flat`, async (t) => {
    const OUTAGE_MS = soak(15_000, 240_000);
    const BUFFER = 600;
    proxy.requests.length = 0;
    await pusher?.stop(); // a previous case that failed midway
    pusher = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "1s",
        TIMEOUT: "2s",
        SCRAPE_TARGETS: target.url,
        BUFFER_MAX_SAMPLES: String(BUFFER),
        MAX_SAMPLES_PER_SEND: "200",
      },
    });
    await waitFor(async () => (await pusher!.metric(PM.sent)) > 0, {
      timeoutMs: 30_000,
      message: "a first successful push",
    });
    const rssBefore = pusher.rssBytes();
    const hitsAtDown = target.hits;
    const { rss, buffered } = await outage(pusher, proxy, OUTAGE_MS);
    const taken = target.hits;

    const dropped = await waitFor(async () => (await pusher!.metric(PM.dropped)) || undefined, {
      timeoutMs: 10_000,
      message: "dropped samples counted",
    });
    // The newest samples of the outage arrive.
    const stored = await waitFor(
      async () => {
        const s = await storedTicks(prom, target);
        return s.values.includes(taken) ? s : undefined;
      },
      { timeoutMs: 60_000, message: `the newest tick (${taken}) stored in Prometheus` },
    );
    const duringOutage = stored.values.filter((v) => v > hitsAtDown && v <= taken);
    const lost = taken - hitsAtDown - duringOutage.length;
    assert.ok(
      lost > 0,
      "no tick sample was lost although the outage outlasted the buffer: the buffer is not bounded as configured",
    );
    // What was lost is the oldest: the kept ones are the tail of the outage, contiguous.
    assert.deepEqual(
      duringOutage,
      Array.from({ length: duringOutage.length }, (_, i) => taken - duringOutage.length + 1 + i),
      "kept samples are not the newest, contiguous ones",
    );
    assert.ok(
      dropped >= lost,
      `dropped counter ${dropped} < ${lost} tick samples lost: something was dropped silently`,
    );
    const refused = proxy.requests.filter((r) => r.status >= 400 && r.status < 500);
    assert.deepEqual(
      refused.map((r) => r.status),
      [],
      "Prometheus refused requests after the overflow",
    );

    assert.ok(Math.max(...buffered) <= BUFFER, `buffered ${Math.max(...buffered)} > ${BUFFER}`);
    const half = Math.floor(rss.length / 2);
    const firstHalf = Math.max(...rss.slice(0, half));
    const secondHalf = Math.max(...rss.slice(half));
    report(t, "outage beyond the buffer", {
      outageMs: OUTAGE_MS,
      taken,
      lostTicks: lost,
      droppedCounter: dropped,
      bufferedMax: Math.max(...buffered),
      rssBeforeMiB: mb(rssBefore),
      rssMaxMiB: mb(Math.max(...rss)),
      rssFirstHalfMaxMiB: mb(firstHalf),
      rssSecondHalfMaxMiB: mb(secondHalf),
    });
    assert.ok(
      secondHalf - firstHalf < 16 * MiB,
      `memory not flat while full: ${mb(firstHalf)} → ${mb(secondHalf)} MiB`,
    );
  });
});
