// One measured run of one sender: start it, wait until the receiver has its data, let it warm up, then take CPU and
// memory from /proc over a fixed window and count in the receiver the samples it delivered for that window.
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds, isAlive, memory } from "./procs.ts";
import { waitFor, WaitAborted } from "../../lib/wait.ts";
import { samplesBetween, selector, seriesCount } from "./promql.ts";
import { startSender, type SendJob, type SenderSpec } from "./senders.ts";
import { MiB } from "./report.ts";

export interface Receiver {
  /** Base URL of the receiving Prometheus (queries). */
  url: string;
  remoteWriteUrl: string;
}

export interface SenderRun {
  name: string;
  /** CPU seconds (utime + stime) the sender used during the window. */
  cpuS: number;
  windowS: number;
  /** Samples stored by the receiver with timestamps inside the window. */
  samples: number;
  /** Samples the window should hold: series × window / interval (NaN when unknown). */
  expected: number;
  /** VmHWM at the end of the window: peak RSS since start. */
  peakRss: number;
  /** VmRSS at the end of the window. */
  rss: number;
  /** RssAnon at the end of the window (private memory; the rest of RSS is the executable's shared pages). */
  rssAnon: number;
  /** Series of this sender present in the receiver. */
  series: number;
  startupS: number;
}

export interface MeasureOptions {
  receiver: Receiver;
  job: Omit<SendJob, "remoteWriteUrl">;
  warmupS: number;
  windowS: number;
  /** Time after the window for in-flight samples to land before the sender is killed. */
  drainS: number;
  /** Series the sender should deliver per interval, for `expected`; and the minimum before the window starts. */
  expectSeries?: number;
  startTimeoutS?: number;
  prefer?: "dist" | "source";
}

export async function measureSender(spec: SenderSpec, opts: MeasureOptions): Promise<SenderRun> {
  const started = Date.now();
  const sender = await startSender(spec, { ...opts.job, remoteWriteUrl: opts.receiver.remoteWriteUrl }, opts.prefer);
  const sel = selector({ job: sender.job, sender: opts.job.senderLabel });
  const alive = (): void => {
    if (isAlive(sender.proc)) return;
    const limit = sender.proc.memoryLimit;
    const oom = limit && limit.oomKills() > 0 ? ` (OOM-killed at its memory limit of ${limit.bytes / MiB} MiB)` : "";
    throw new WaitAborted(`${spec.name} exited early${oom}:\n${sender.proc.tail()}`);
  };
  try {
    // Started = the receiver holds (nearly) all of its series, so warm-up begins from steady state.
    const want = opts.expectSeries ?? 1;
    await waitFor(
      async () => {
        alive();
        return (await seriesCount(opts.receiver.url, sel)) >= want ? true : undefined;
      },
      {
        timeoutMs: (opts.startTimeoutS ?? 60) * 1000,
        intervalMs: 500,
        message: `${spec.name} to deliver ${want} series to the receiver`,
      },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${spec.name} log:\n${sender.proc.tail()}`);
    });
    const startupS = (Date.now() - started) / 1000;
    await sleep(opts.warmupS * 1000);
    alive();
    const t0 = Date.now();
    const cpu0 = cpuSeconds(sender.proc.pid);
    await sleep(opts.windowS * 1000);
    alive();
    const cpu1 = cpuSeconds(sender.proc.pid);
    const t1 = Date.now();
    const mem = memory(sender.proc.pid);
    await sleep(opts.drainS * 1000);
    alive();
    const samples = await samplesBetween(opts.receiver.url, sel, t0, t1);
    const series = await seriesCount(opts.receiver.url, sel);
    const windowS = (t1 - t0) / 1000;
    return {
      name: spec.name,
      cpuS: cpu1 - cpu0,
      windowS,
      samples,
      expected: opts.expectSeries ? (opts.expectSeries * windowS) / opts.job.intervalS : Number.NaN,
      peakRss: mem.peakRss,
      rss: mem.rss,
      rssAnon: mem.rssAnon,
      series,
      startupS,
    };
  } finally {
    // A profiled run must exit by itself for V8 to write the profile; others are killed, so no shutdown flush
    // delivers samples whose CPU was not counted.
    if (spec.cpuProfileDir) await sender.proc.stop(15_000);
    else await sender.proc.kill();
  }
}
