// Scraped targets that misbehave — one that hangs, one that returns 10 MB of garbage, one whose exposition is not
// UTF-8 — cost the real pusher bounded time and memory: every cycle still runs on time, each bad target reports
// up 0 with the failure counted by reason, a well-behaved target beside them keeps up 1, and the process stays up.
// Hostile but well-formed expositions (80,000 labels on a line, 16 MiB of tiny series, one 16 MiB label value) hit
// the sample and label limits while they are parsed: /health keeps answering quickly and SIGTERM is quick.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startFaultProxy, type FaultProxy } from "./lib/faultproxy.ts";
import { soak } from "./lib/mode.ts";
import { startPusher, type PusherProcess } from "./lib/pusher.ts";
import {
  bodyTarget,
  garbageTarget,
  hangingTarget,
  hostileBodies,
  invalidUtf8Target,
  tickTarget,
  type Target,
} from "./lib/targets.ts";
import { waitFor } from "../lib/wait.ts";
import { PUSHER_NODE_OPTIONS, SCRAPE_LIMITS, SCRAPE_MAX_BYTES_DEFAULT } from "../../pusher/src/config.ts";

const INTERVAL_MS = 2000;
const SCRAPE_TIMEOUT_MS = 1000;
const CYCLES = soak(8, 60);
const PREFIX = "knative_lambda_metric_pusher";

describe("scrape targets that hang, flood or send invalid UTF-8", () => {
  let proxy: FaultProxy;
  let pusher: PusherProcess | undefined;
  const targets: Record<"tick" | "hang" | "garbage" | "utf8", Target> = {} as never;

  before(async () => {
    // No upstream: the proxy accepts everything (204) and keeps the decoded samples to inspect.
    proxy = await startFaultProxy();
    targets.tick = await tickTarget();
    targets.hang = await hangingTarget();
    targets.garbage = await garbageTarget(10 * 1024 * 1024);
    targets.utf8 = await invalidUtf8Target();
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    for (const t of Object.values(targets)) await t?.close();
  });

  it(`keeps its cycle, reports up 0 for each bad target and stays within memory over ${CYCLES} cycles`, async (t) => {
    pusher = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: `${INTERVAL_MS}ms`,
        SCRAPE_TIMEOUT: `${SCRAPE_TIMEOUT_MS}ms`,
        TIMEOUT: "2s",
        SCRAPE_TARGETS: [targets.tick.url, targets.hang.url, targets.garbage.url, targets.utf8.url].join(","),
      },
    });
    const rss: number[] = [];
    const started = Date.now();
    for (let i = 0; i < CYCLES; i++) {
      await sleep(INTERVAL_MS);
      assert.equal(
        pusher.exitInfo,
        undefined,
        `the pusher exited: ${JSON.stringify(pusher.exitInfo)}\n${pusher.tail()}`,
      );
      rss.push(pusher.rssBytes());
    }
    const elapsed = Date.now() - started;

    // `up` per target, as delivered by Remote-Write: the last value of each.
    const lastUp = (instance: string): number | undefined => {
      const ups = proxy
        .delivered()
        .filter((s) => s.labels.includes(`__name__="up"`) && s.labels.includes(`instance="${instance}"`));
      return ups.at(-1)?.value;
    };
    await waitFor(() => lastUp(targets.tick.instance) !== undefined, {
      timeoutMs: 10_000,
      message: "an up sample for the good target delivered",
    });
    assert.equal(lastUp(targets.tick.instance), 1, "the well-behaved target is not up");
    for (const name of ["hang", "garbage", "utf8"] as const) {
      assert.equal(lastUp(targets[name].instance), 0, `target ${name}: up is not 0`);
    }

    // Every cycle ran: the good target was scraped about once per interval despite the others.
    const expected = Math.floor(elapsed / INTERVAL_MS);
    assert.ok(
      targets.tick.hits >= expected - 2,
      `good target scraped ${targets.tick.hits} times in ${elapsed} ms (expected ~${expected})`,
    );

    // The hanging target was cut off by the scrape timeout: its scrape_duration_seconds stays near the timeout.
    const durations = proxy
      .delivered()
      .filter(
        (s) =>
          s.labels.includes(`__name__="scrape_duration_seconds"`) &&
          s.labels.includes(`instance="${targets.hang.instance}"`),
      )
      .map((s) => s.value);
    assert.ok(durations.length > 0, "no scrape_duration_seconds for the hanging target");
    assert.ok(
      Math.max(...durations) < (SCRAPE_TIMEOUT_MS + 500) / 1000,
      `hanging scrape took up to ${Math.max(...durations)} s`,
    );

    // Counted by reason.
    const failures = (await pusher.metrics()).filter((s) => s.name === `${PREFIX}_scrape_failures_total`);
    const reasonFor = (instance: string): string[] =>
      failures.filter((s) => s.labels.target === instance && s.value > 0).map((s) => s.labels.reason!);
    t.diagnostic(
      `scrape failures: ${failures
        .filter((s) => s.value > 0)
        .map((s) => `${s.labels.target}/${s.labels.reason}=${s.value}`)
        .join(" ")}; hanging scrape took up to ${Math.max(...durations)} s`,
    );
    assert.deepEqual(reasonFor(targets.hang.instance), ["timeout"], `hang: ${JSON.stringify(failures)}`);
    assert.ok(reasonFor(targets.garbage.instance).length === 1, `garbage: ${JSON.stringify(failures)}`);
    assert.deepEqual(reasonFor(targets.utf8.instance), ["invalid_utf8"], `utf8: ${JSON.stringify(failures)}`);
    assert.deepEqual(reasonFor(targets.tick.instance), [], "the good target has failures");

    // Memory: 10 MB of garbage every cycle must not accumulate. Compare the second half with the first.
    const mb = (b: number): number => Math.round(b / 1024 / 1024);
    const half = Math.floor(rss.length / 2);
    const firstHalfMax = Math.max(...rss.slice(0, half));
    const secondHalfMax = Math.max(...rss.slice(half));
    t.diagnostic(`RSS per cycle (MiB): ${rss.map(mb).join(" ")}`);
    assert.ok(Math.max(...rss) < 256 * 1024 * 1024, `RSS reached ${mb(Math.max(...rss))} MiB`);
    assert.ok(
      secondHalfMax - firstHalfMax < 32 * 1024 * 1024,
      `RSS grew from ${mb(firstHalfMax)} to ${mb(secondHalfMax)} MiB`,
    );
    assert.ok(
      proxy.requests.some((r) => r.status === 204),
      "nothing was pushed",
    );
  });
});

describe("hostile expositions: the worst input for each scrape limit", () => {
  let proxy: FaultProxy;
  let pusher: PusherProcess | undefined;
  const targets: Partial<Record<"tick" | "labels" | "series" | "value", Target>> = {};

  before(async () => {
    proxy = await startFaultProxy();
    targets.tick = await tickTarget();
    targets.labels = await bodyTarget(hostileBodies.manyLabels());
    targets.series = await bodyTarget(hostileBodies.tinySeries());
    targets.value = await bodyTarget(hostileBodies.hugeValue());
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    for (const t of Object.values(targets)) await t?.close();
  });

  /** Polls /health every 50 ms for `ms`; returns the slowest answer in ms (a request that fails counts as Infinity). */
  async function slowestHealth(p: PusherProcess, ms: number): Promise<number> {
    let slowest = 0;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const t0 = performance.now();
      try {
        const r = await fetch(`http://127.0.0.1:${p.httpPort}/health`, { signal: AbortSignal.timeout(10_000) });
        await r.text();
        if (r.status !== 200) slowest = Infinity;
      } catch {
        slowest = Infinity;
      }
      slowest = Math.max(slowest, performance.now() - t0);
      await sleep(50);
    }
    return slowest;
  }

  const lastUp = (instance: string): number | undefined =>
    proxy
      .delivered()
      .filter((s) => s.labels.includes(`__name__="up"`) && s.labels.includes(`instance="${instance}"`))
      .at(-1)?.value;

  it("with the default limits: up 0 by reason, /health answers within 2 s, SIGTERM exits within 4 s", async (t) => {
    pusher = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "2s",
        SCRAPE_TIMEOUT: "2s",
        SHUTDOWN_TIMEOUT: "1s",
        SCRAPE_TARGETS: [targets.tick!, targets.labels!, targets.series!, targets.value!].map((x) => x.url).join(","),
      },
    });
    const rss: number[] = [];
    let slowest = 0;
    for (let i = 0; i < 4; i++) {
      slowest = Math.max(slowest, await slowestHealth(pusher, 2000));
      rss.push(pusher.rssBytes());
    }
    await waitFor(() => lastUp(targets.series!.instance) !== undefined, {
      timeoutMs: 10_000,
      message: "an up sample for the hostile targets delivered",
    });
    const failures = (await pusher.metrics()).filter(
      (s) => s.name === `${PREFIX}_scrape_failures_total` && s.value > 0,
    );
    const reasons = (tg: Target): string[] =>
      failures.filter((s) => s.labels.target === tg.instance).map((s) => s.labels.reason!);
    const mib = (b: number): number => Math.round(b / 1024 / 1024);
    t.diagnostic(
      `slowest /health ${slowest.toFixed(0)} ms; RSS per cycle (MiB) ${rss.map(mib).join(" ")}; failures ${failures
        .map((s) => `${s.labels.target}/${s.labels.reason}=${s.value}`)
        .join(" ")}`,
    );
    assert.equal(lastUp(targets.tick!.instance), 1, "the well-behaved target is not up");
    assert.equal(lastUp(targets.labels!.instance), 0);
    assert.equal(lastUp(targets.series!.instance), 0);
    assert.deepEqual(reasons(targets.labels!), ["label_limit"]);
    assert.deepEqual(reasons(targets.series!), ["sample_limit"]);
    // One 16 MiB label value: refused by the label value length limit once the line outgrows what 20 labels of 2,048
    // characters can fill (it was forwarded before, and peaked at 242–309 MiB).
    assert.equal(lastUp(targets.value!.instance), 0, "the huge label value is up");
    assert.deepEqual(reasons(targets.value!), ["label_value_length_limit"]);
    // Every hostile body is refused while it is read: the pusher stays within the sidecar's default memory limit.
    assert.ok(Math.max(...rss) < 192 * 1024 ** 2, `RSS per cycle (MiB) ${rss.map(mib).join(" ")}, over 192 MiB`);
    // Loose: the shared 2-core machine runs other work (a load of 15 was seen); the quadratic parse made it 16 s.
    assert.ok(slowest < 2000, `/health took ${slowest.toFixed(0)} ms during the hostile scrapes`);

    const t0 = Date.now();
    pusher.signal("SIGTERM");
    const exit = await pusher.exited;
    const ms = Date.now() - t0;
    t.diagnostic(`SIGTERM to exit: ${ms} ms`);
    assert.deepEqual(exit, { code: 0, signal: null }, pusher.tail());
    assert.ok(ms < 4000, `SIGTERM took ${ms} ms to exit (SHUTDOWN_TIMEOUT 1s, plus a margin for a loaded machine)`);
    pusher = undefined;
  });

  it("with the label limit off, 80,000 labels on a line parse in linear time: /health and SIGTERM stay quick", async (t) => {
    pusher = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "2s",
        SCRAPE_TIMEOUT: "2s",
        SHUTDOWN_TIMEOUT: "1s",
        SCRAPE_LABEL_LIMIT: "0",
        SCRAPE_TARGETS: targets.labels!.url,
      },
    });
    const slowest = await slowestHealth(pusher, 6000);
    t.diagnostic(`slowest /health ${slowest.toFixed(0)} ms`);
    assert.equal(lastUp(targets.labels!.instance), 1, "80,000 labels within no limit: the scrape should succeed");
    assert.ok(slowest < 2000, `/health took ${slowest.toFixed(0)} ms (the quadratic parse made it wait 16 s)`);
    const t0 = Date.now();
    pusher.signal("SIGTERM");
    assert.deepEqual(await pusher.exited, { code: 0, signal: null }, pusher.tail());
    const ms = Date.now() - t0;
    t.diagnostic(`SIGTERM to exit: ${ms} ms`);
    assert.ok(ms < 4000, `SIGTERM took ${ms} ms to exit (it took 9.8 s with the quadratic parse)`);
    pusher = undefined;
  });
});

describe("the largest exposition the default limits accept", () => {
  let proxy: FaultProxy;
  let target: Target;
  let pusher: PusherProcess | undefined;
  const { sampleLimit, labelLimit, labelValueLengthLimit } = SCRAPE_LIMITS;

  before(async () => {
    proxy = await startFaultProxy();
    // 4,000 series of label values of up to 2,048 characters, as many bytes as SCRAPE_MAX_BYTES lets through (two
    // 2,048-character values a series filled the 16 MiB of the default before issue 12, and peaked at 277 MiB).
    const body = hostileBodies.longValues(
      SCRAPE_MAX_BYTES_DEFAULT,
      sampleLimit.default,
      labelLimit.default,
      labelValueLengthLimit.default,
    );
    assert.ok(body.length <= SCRAPE_MAX_BYTES_DEFAULT && body.length > 0.99 * SCRAPE_MAX_BYTES_DEFAULT);
    target = await bodyTarget(body);
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    await target?.close();
  });

  it("is forwarded whole, with a peak RSS within the sidecar's default memory limit of 192 MiB", async (t) => {
    pusher = await startPusher({
      // As the image runs it (Dockerfile.pusher's ENTRYPOINT and ENV).
      nodeArgs: ["--no-maglev"],
      env: {
        NODE_OPTIONS: PUSHER_NODE_OPTIONS,
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "2s",
        SCRAPE_TIMEOUT: "2s",
        LOG_LEVEL: "warn",
        SCRAPE_TARGETS: target.url,
      },
    });
    const up = (): number[] =>
      proxy
        .delivered()
        .filter((s) => s.labels.includes(`__name__="up"`) && s.labels.includes(`instance="${target.instance}"`))
        .map((s) => s.value);
    await waitFor(() => up().length >= 4, { timeoutMs: 30_000, message: "four scrapes of the target delivered" });
    const peak = pusher.peakRssBytes();
    const series = new Set(
      proxy
        .delivered()
        .filter((s) => s.labels.includes(`__name__="long_values"`))
        .map((s) => /id="(\d+)"/.exec(s.labels)?.[1]),
    );
    const mib = (b: number): string => (b / 1024 ** 2).toFixed(1);
    t.diagnostic(`peak RSS ${mib(peak)} MiB; up ${up().join(" ")}; ${series.size} series delivered`);
    assert.deepEqual([...new Set(up())], [1], "every scrape of the target is up");
    assert.equal(series.size, sampleLimit.default, "every series of the body delivered");
    assert.ok(peak < 192 * 1024 ** 2, `peak RSS ${mib(peak)} MiB, over the default limit of 192 MiB`);
  });
});
