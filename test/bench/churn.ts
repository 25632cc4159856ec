// Churn: ours forwarding N series every second for M minutes while a tenth of the series is replaced every minute (a
// new value of one label, as a new pod or build id would bring). Memory must level off: it passes when the peak RSS
// over minutes 6–10 is at most 1.05× the peak over minutes 3–5, i.e. what the pusher holds for series that are gone
// is given back. Bench and `make soak` only (10 minutes), never `make test`.
import { createServer, type Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { listenLoopback } from "../lib/net.ts";
import { waitFor } from "../lib/wait.ts";
import { forwardSampleLimit } from "./forward.ts";
import type { Receiver } from "./lib/measure.ts";
import { cpuSeconds, isAlive, memory } from "./lib/procs.ts";
import { selector, seriesCount } from "./lib/promql.ts";
import { Better, log, MiB, type Row } from "./lib/report.ts";
import { SenderKind, startSender } from "./lib/senders.ts";
import { exposition, metricSeries, type LabelSet } from "./lib/workload.ts";

export interface ChurnOptions {
  receiver: Receiver;
  series: number;
  minutes: number;
}

export interface ChurnResult {
  rows: Row[];
  /** VmRSS once per second, MiB. */
  rssMiB: number[];
  cpuS: number;
}

export const CHURN_GOAL = 1.05;

/** The target: series i carries churn="<minute its tenth was last replaced>"; a tenth moves on every minute. */
async function startChurnTarget(series: number): Promise<{ address: string; close(): Promise<void> }> {
  const base = metricSeries(series);
  const started = Date.now();
  let minute = -1;
  let text: { render(tick: number): string } | undefined;
  const generation = new Array<number>(series).fill(0);
  const server: Server = createServer((req, res) => {
    if (req.url !== "/metrics") return void res.writeHead(404).end();
    const m = Math.floor((Date.now() - started) / 60_000);
    if (m !== minute || text === undefined) {
      // Minute m replaces tenth (m − 1) mod 10: after ten minutes every series has been replaced once.
      if (m > 0) {
        const tenth = (m - 1) % 10;
        for (let i = 0; i < series; i++) if (i % 10 === tenth) generation[i] = m;
      }
      minute = m;
      text = exposition(base.map((set, i): LabelSet => ({ ...set, churn: String(generation[i]) })));
    }
    const body = Buffer.from(text.render(Math.floor(Date.now() / 1000)));
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": body.length });
    res.end(body);
  });
  const { port, close } = await listenLoopback(server);
  return {
    address: `127.0.0.1:${port}`,
    close,
  };
}

export async function benchChurn(opts: ChurnOptions): Promise<ChurnResult> {
  const target = await startChurnTarget(opts.series);
  const senderLabel = `churn-${Date.now()}`;
  const sender = await startSender(
    { kind: SenderKind.ours, name: "ours" },
    {
      remoteWriteUrl: opts.receiver.remoteWriteUrl,
      intervalS: 1,
      target: target.address,
      senderLabel,
      sampleLimit: forwardSampleLimit(opts.series),
    },
  );
  const rssMiB: number[] = [];
  try {
    const sel = selector({ job: sender.job, sender: senderLabel });
    await waitFor(async () => ((await seriesCount(opts.receiver.url, sel)) >= opts.series ? true : undefined), {
      timeoutMs: 90_000,
      intervalMs: 500,
      message: `ours to deliver ${opts.series} series`,
    });
    const cpu0 = cpuSeconds(sender.proc.pid);
    const end = Date.now() + opts.minutes * 60_000;
    while (Date.now() < end) {
      if (!isAlive(sender.proc)) throw new Error(`ours exited during the churn:\n${sender.proc.tail()}`);
      rssMiB.push(memory(sender.proc.pid).rss / MiB);
      if (rssMiB.length % 60 === 0) {
        log(`churn minute ${rssMiB.length / 60}: RSS ${rssMiB.at(-1)!.toFixed(1)} MiB`);
      }
      await sleep(1000);
    }
    const cpuS = cpuSeconds(sender.proc.pid) - cpu0;
    // Minutes counted from 1: minutes 3–5 are seconds [120, 300), minutes 6–10 are [300, 600).
    const peak = (fromMin: number, toMin: number): number => Math.max(...rssMiB.slice((fromMin - 1) * 60, toMin * 60));
    const early = peak(3, 5);
    const late = peak(6, Math.max(6, opts.minutes));
    return {
      rows: [
        {
          bench: "churn",
          metric: `peak RSS, minutes 6–${opts.minutes} (ours, ${opts.series} series, a tenth replaced per minute)`,
          unit: "MiB",
          better: Better.lower,
          ours: late,
          peer: { name: "ours, minutes 3–5", value: early },
          goal: { text: `≤ ${CHURN_GOAL}× minutes 3–5`, met: late <= CHURN_GOAL * early },
          runs: [late],
        },
        {
          bench: "churn",
          metric: `CPU per minute (ours)`,
          unit: "s",
          better: Better.lower,
          ours: cpuS / opts.minutes,
          runs: [cpuS / opts.minutes],
        },
      ],
      rssMiB,
      cpuS,
    };
  } finally {
    await sender.proc.kill();
    await target.close();
  }
}
