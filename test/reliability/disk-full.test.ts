// The disk buffer on a disk that fills up and frees again, with the real pusher and a real tmpfs mounted by this test
// (root is required: without it the test fails, it never skips). The receiver is down throughout the first run, and
// BUFFER_MAX_SAMPLES is small, so the oldest samples — those whose write failed first — leave the buffer for room
// while newer ones sit on disk: their acknowledgements must not consume the disk copies of the newer ones. After a
// SIGTERM and a restart with the receiver up, every sample the first pusher reported kept in BUFFER_DIR arrives,
// and every sample that was not on disk was counted (memory-only counter, lost at shutdown).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startFaultProxy, type FaultProxy } from "./lib/faultproxy.ts";
import { findLog, startPusher, type PusherProcess } from "./lib/pusher.ts";
import { PM } from "./lib/pushermetrics.ts";
import { TICK_METRIC, tickTarget, type Target } from "./lib/targets.ts";
import { waitFor } from "../lib/wait.ts";

const INTERVAL_MS = 300;

/** Writes zeros into `file` until the file system refuses (ENOSPC); returns the bytes written. */
function fillUp(file: string): number {
  const fd = openSync(file, "w");
  const block = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  } finally {
    closeSync(fd);
  }
  return written;
}

describe("disk buffer on a disk that fills up (tmpfs)", () => {
  let mnt = "";
  let mounted = false;
  let proxy: FaultProxy | undefined;
  let target: Target | undefined;
  let pusher: PusherProcess | undefined;

  before(async () => {
    if (process.getuid?.() !== 0) {
      throw new Error("this test mounts a tmpfs and must run as root (uid 0); it does not skip");
    }
    mnt = mkdtempSync(join(tmpdir(), "mp-diskfull-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]);
    mounted = true;
    proxy = await startFaultProxy();
    target = await tickTarget();
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    await target?.close();
    if (mounted) {
      try {
        execFileSync("umount", [mnt]);
      } catch {
        execFileSync("umount", ["-l", mnt]);
      }
    }
    if (mnt !== "") rmSync(mnt, { recursive: true, force: true });
  });

  it("keeps the journal consistent through ENOSPC: what was kept comes back, what was not is counted", async (t) => {
    const bufferDir = join(mnt, "buffer");
    mkdirSync(bufferDir);
    const env = {
      PROMETHEUS_REMOTE_WRITE_URL: proxy!.remoteWriteUrl,
      PUSH_INTERVAL: `${INTERVAL_MS}ms`,
      SCRAPE_TIMEOUT: `${INTERVAL_MS}ms`,
      TIMEOUT: "1s",
      SHUTDOWN_TIMEOUT: "500ms",
      SCRAPE_TARGETS: target!.url,
      BUFFER_DIR: bufferDir,
      BUFFER_MAX_SAMPLES: "1000",
      MAX_SAMPLES_PER_SEND: "500",
    };
    await proxy!.down();
    pusher = await startPusher({ env });
    await sleep(1000);

    // The disk fills up: appends fail, their samples are in memory only and counted.
    const filler = join(mnt, "filler");
    const filled = fillUp(filler);
    const fullAt = target!.hits;
    await waitFor(async () => (await pusher!.metric(PM.memoryOnly, { reason: "write_failed" })) > 0, {
      timeoutMs: 10_000,
      message: "samples counted as memory_only{reason=write_failed} once the disk is full",
    });
    await sleep(2000);
    const unwritten = await pusher.metric(PM.memoryOnly, { reason: "write_failed" });
    assert.ok(findLog(pusher.logs, /Disk buffer write failed/), `no warning about the failed write\n${pusher.tail()}`);

    // Space returns: writing resumes. The buffer (1000 samples, a few cycles) then drops its oldest samples — those
    // in memory only first — while newer ones are on disk.
    rmSync(filler);
    const freedAt = target!.hits;
    await waitFor(() => findLog(pusher!.logs, /Disk buffer writable again/) !== undefined, {
      timeoutMs: 10_000,
      message: "the log line saying the disk buffer is writable again",
    });
    await waitFor(async () => (await pusher!.metric(PM.memoryOnlyNow)) === 0, {
      timeoutMs: 20_000,
      message: "every memory-only sample out of the buffer (dropped for room) while newer ones are on disk",
    });
    await sleep(1000);
    const bufferFull = await pusher.metric(PM.dropped, { reason: "buffer_full" });
    assert.ok(bufferFull > unwritten, `only ${bufferFull} samples left for room, ${unwritten} were memory only`);
    assert.deepEqual(
      readdirSync(bufferDir).filter((f) => f.endsWith(".tmp")),
      [],
      "a failed write left a temporary file behind",
    );

    const lastTick = target!.hits;
    pusher.signal("SIGTERM");
    assert.deepEqual(await pusher.exited, { code: 0, signal: null }, pusher.tail());
    const exitAt = Date.now();
    const shutdown = findLog(pusher.logs, /^Shutdown/);
    assert.ok(shutdown, `no shutdown line\n${pusher.tail()}`);
    const kept = Number(shutdown.undelivered ?? 0);
    const lost = Number(shutdown.lost ?? 0);
    t.diagnostic(
      `filled ${filled} bytes at tick ${fullAt}, freed at tick ${freedAt}, SIGTERM after tick ${lastTick}; ` +
        `memory only ${unwritten}, buffer_full ${bufferFull}, kept ${kept}, lost ${lost}`,
    );
    assert.ok(kept > 0, `nothing kept in BUFFER_DIR: ${JSON.stringify(shutdown)}`);
    assert.equal(lost, 0, "samples in memory only at shutdown, though all had left the buffer");

    // The restart, the receiver up: every sample reported kept is delivered, the newest ticks of the first run too.
    await proxy!.up();
    pusher = await startPusher({ env });
    const fromFirstRun = (): { labels: string; timestampMs: number; value: number; stale: boolean }[] =>
      proxy!.delivered().filter((s) => s.timestampMs <= exitAt);
    await waitFor(() => fromFirstRun().length >= kept, {
      timeoutMs: 20_000,
      message: `the ${kept} samples kept in BUFFER_DIR delivered after the restart (got ${fromFirstRun().length})`,
    }).catch((e: Error) => {
      throw new Error(`${e.message}; delivered from the first run: ${fromFirstRun().length} of ${kept}`);
    });
    await sleep(1000);
    assert.equal(fromFirstRun().length, kept, "more samples from the first run than it reported kept");
    const ticks = new Set(
      fromFirstRun()
        .filter((s) => !s.stale && s.labels.includes(`__name__="${TICK_METRIC}"`))
        .map((s) => s.value),
    );
    for (let v = lastTick - 2; v <= lastTick; v++) assert.ok(ticks.has(v), `tick ${v}, taken before SIGTERM, is lost`);
    for (const v of ticks) assert.ok(v > freedAt - 1, `tick ${v}, taken while the disk was full, came back`);
  });
});
