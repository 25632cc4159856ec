// The disk buffer (BUFFER_DIR, BUFFER_MAX_BYTES) with the real pusher and a real Prometheus behind the proxy:
// samples taken during an outage survive a pusher restart (SIGTERM whose flush fails, and SIGKILL) and are sent after
// it, in order, none refused; the files stay within BUFFER_MAX_BYTES; samples too old for Prometheus are dropped and
// counted instead of poisoning a batch; a corrupt buffer file is skipped with a log line.
import { strict as assert } from "node:assert";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { openDiskBuffer } from "../../pusher/src/remote-write/disk.ts";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import { startFaultProxy, type FaultProxy } from "./lib/faultproxy.ts";
import { startPusher, type PusherProcess } from "./lib/pusher.ts";
import { PM } from "./lib/pushermetrics.ts";
import { TICK_METRIC, tickTarget, type Target } from "./lib/targets.ts";
import { waitFor } from "../lib/wait.ts";

const MAX_BYTES = 2 * 1024 * 1024;

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

describe("disk buffer across pusher restarts", () => {
  let prom: Receiver;
  let proxy: FaultProxy;
  let target: Target;
  let dir = "";
  let pusher: PusherProcess | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "mp-diskbuf-"));
    prom = await startPrometheus();
    proxy = await startFaultProxy({ upstream: prom.url });
    target = await tickTarget();
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    await target?.close();
    await prom?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (bufferDir: string): Promise<PusherProcess> =>
    startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "1s",
        TIMEOUT: "1s",
        SHUTDOWN_TIMEOUT: "1s",
        SCRAPE_TARGETS: target.url,
        BUFFER_DIR: bufferDir,
        BUFFER_MAX_BYTES: String(MAX_BYTES),
      },
    });

  async function ticksInPrometheus(): Promise<number[]> {
    const s = await prom.samples(`${TICK_METRIC}{instance="${target.instance}"}`, 3_600_000);
    return s[0]?.values ?? [];
  }

  for (const how of ["SIGTERM", "SIGKILL"] as const) {
    it(`samples taken during an outage survive a restart by ${how} and arrive afterwards, in order`, async () => {
      const bufferDir = join(dir, how);
      pusher = await start(bufferDir);
      await waitFor(async () => (await ticksInPrometheus()).length > 0, {
        timeoutMs: 30_000,
        message: "first ticks in Prometheus",
      });
      await proxy.down();
      await sleep(5000);
      const beforeRestart = target.hits;
      pusher.signal(how);
      const exit = await pusher.exited;
      if (how === "SIGTERM") assert.deepEqual(exit, { code: 0, signal: null }, pusher.tail());
      assert.ok(dirBytes(bufferDir) > 0, "nothing written to BUFFER_DIR during the outage");
      assert.ok(
        dirBytes(bufferDir) <= MAX_BYTES + 64 * 1024,
        `BUFFER_DIR holds ${dirBytes(bufferDir)} bytes > ${MAX_BYTES}`,
      );

      pusher = await start(bufferDir); // still down: the restarted pusher buffers on top of what it found
      await sleep(2000);
      await proxy.up();
      const taken = target.hits;
      const stored = await waitFor(
        async () => {
          const v = await ticksInPrometheus();
          return v.includes(taken) ? v : undefined;
        },
        { timeoutMs: 45_000, message: `tick ${taken} in Prometheus after the restart` },
      );
      const missing: number[] = [];
      for (let v = 1; v <= taken; v++) if (!stored.includes(v)) missing.push(v);
      assert.deepEqual(missing, [], `ticks lost across the restart (taken before the restart: ${beforeRestart})`);
      for (let i = 1; i < stored.length; i++) assert.ok(stored[i]! > stored[i - 1]!, "ticks out of order");
      const refused = proxy.requests.filter((r) => r.status >= 400 && r.status < 500);
      assert.deepEqual(
        refused.map((r) => r.status),
        [],
        "Prometheus refused a request after the restart",
      );
      await pusher.stop();
      pusher = undefined;
      // The next case starts from a fresh series of ticks in its own directory; Prometheus keeps the old ones.
    });
  }

  it("stays within BUFFER_MAX_BYTES during an outage; the newest samples are the ones that survive a restart", async (t) => {
    const bufferDir = join(dir, "small");
    const small = 64 * 1024;
    const startSmall = (): Promise<PusherProcess> =>
      startPusher({
        env: {
          PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
          PUSH_INTERVAL: "500ms",
          TIMEOUT: "1s",
          SHUTDOWN_TIMEOUT: "500ms",
          SCRAPE_TARGETS: target.url,
          BUFFER_DIR: bufferDir,
          BUFFER_MAX_BYTES: String(small),
        },
      });
    pusher = await startSmall();
    await waitFor(async () => (await pusher!.metric(PM.sent)) > 0, {
      timeoutMs: 20_000,
      message: "a first successful push",
    });
    await proxy.down();
    let maxSeen = 0;
    for (let i = 0; i < 16; i++) {
      await sleep(500);
      maxSeen = Math.max(maxSeen, dirBytes(bufferDir));
    }
    const lastBeforeKill = target.hits;
    pusher.signal("SIGKILL");
    await pusher.exited;
    assert.ok(
      pusher.logs.some((l) => /Disk buffer full/.test(String(l.msg))),
      "the outage never filled the 64 KiB disk buffer, so the bound was not exercised",
    );
    // Segments within the bound, plus the small cursor file and at most one temporary file being renamed.
    t.diagnostic(`BUFFER_DIR peak ${maxSeen} bytes with BUFFER_MAX_BYTES ${small}`);
    assert.ok(maxSeen <= small + 8 * 1024, `BUFFER_DIR reached ${maxSeen} bytes with BUFFER_MAX_BYTES ${small}`);
    pusher = await startSmall();
    await proxy.up();
    await waitFor(async () => (await ticksInPrometheus()).includes(lastBeforeKill), {
      timeoutMs: 30_000,
      message: `the newest tick taken before the kill (${lastBeforeKill}) delivered from the bounded disk buffer`,
    });
    await pusher.stop();
    pusher = undefined;
  });

  it("drops and counts samples too old for Prometheus, and skips a corrupt buffer file with a log line", async () => {
    const bufferDir = join(dir, "old-and-corrupt");
    // Samples from 3 hours ago: Prometheus answers 400 (out of bounds) for the whole request that carries one.
    const old = openDiskBuffer({ dir: bufferDir, maxBytes: MAX_BYTES, log: { info: () => {}, warn: () => {} } });
    old.readAll();
    const threeHoursAgo = Date.now() - 3 * 3_600_000;
    old.append(
      Array.from({ length: 50 }, (_, i) => ({
        labels: [
          { name: "__name__", value: "reliability_old" },
          { name: "job", value: "reliability" },
        ],
        value: i,
        timestampMs: threeHoursAgo + i * 1000,
      })),
    );
    writeFileSync(join(bufferDir, "seg-0000000000000050.mpb"), "this is not a segment");
    proxy.requests.length = 0;
    pusher = await start(bufferDir);
    await waitFor(async () => (await pusher!.metric(PM.sent)) > 0, {
      timeoutMs: 20_000,
      message: "a successful push with an old and a corrupt buffer file",
    });
    const droppedOld = await pusher.metric(PM.dropped, { reason: "too_old" });
    assert.equal(droppedOld, 50, `too-old samples not counted as dropped{reason="too_old"}`);
    const line = pusher.logs.find((l) => /corrupt/i.test(String(l.msg)));
    assert.ok(line, "no log line about the corrupt buffer file");
    const refused = proxy.requests.filter((r) => r.status >= 400 && r.status < 500);
    assert.deepEqual(
      refused.map((r) => r.status),
      [],
      "a too-old sample reached Prometheus and poisoned a batch",
    );
    assert.equal(pusher.exitInfo, undefined);
  });
});
