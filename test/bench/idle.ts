// Benchmark 3, idle sidecar: each sender pushes only its own metrics every second; RSS and CPU over the window.
// Ours runs in variants (Node heap flags) to show what each knob buys; a bare Node process that only keeps a timer is
// measured as the floor no Node sidecar can go below.
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds, memory, startProcess } from "./lib/procs.ts";
import { Better, log, median, MiB, type Row } from "./lib/report.ts";
import { measureSender, type Receiver, type SenderRun } from "./lib/measure.ts";
import { SenderKind, type SenderSpec } from "./lib/senders.ts";

export const IDLE_RSS_GOAL_MIB = 45;

/** Heap limits a sidecar that holds a few hundred series can live with. */
export const HEAP_FLAGS = ["--max-old-space-size=24", "--max-semi-space-size=1"] as const;
/**
 * V8's lite mode (no optimising compiler, lazy feedback allocation) on top: less code and metadata in memory, at a
 * CPU cost that only matters under load (see the forwarding benchmark).
 */
export const LITE_FLAGS = [...HEAP_FLAGS, "--lite-mode"] as const;

export const IDLE_SENDERS: SenderSpec[] = [
  { kind: SenderKind.ours, name: "ours" },
  { kind: SenderKind.ours, name: "ours+heap-flags", nodeFlags: HEAP_FLAGS },
  { kind: SenderKind.ours, name: "ours+lite", nodeFlags: LITE_FLAGS },
  { kind: SenderKind.vmagent, name: "vmagent" },
  { kind: SenderKind.promAgent, name: "prometheus-agent" },
];

export interface IdleOptions {
  receiver: Receiver;
  runs: number;
  warmupS: number;
  windowS: number;
  senders?: SenderSpec[];
  prefer?: "dist" | "source";
  drainS?: number;
  /** Also measure a bare Node process (the floor). */
  floor?: boolean;
}

export interface IdleResult {
  rows: Row[];
  runs: SenderRun[];
}

/** A Node process that only keeps a 1 s timer: what Node itself costs, before any code of ours. */
async function measureNodeFloor(windowS: number, flags: readonly string[]): Promise<SenderRun> {
  const proc = startProcess("node-floor", process.execPath, [...flags, "-e", "setInterval(() => {}, 1000)"]);
  try {
    await sleep(1000);
    const cpu0 = cpuSeconds(proc.pid);
    await sleep(windowS * 1000);
    const cpu1 = cpuSeconds(proc.pid);
    const mem = memory(proc.pid);
    return {
      name: flags.length ? "node-floor+heap-flags" : "node-floor",
      cpuS: cpu1 - cpu0,
      windowS,
      samples: 0,
      expected: Number.NaN,
      peakRss: mem.peakRss,
      rss: mem.rss,
      rssAnon: mem.rssAnon,
      series: 0,
      startupS: 0,
    };
  } finally {
    await proc.kill();
  }
}

export async function benchIdle(opts: IdleOptions): Promise<IdleResult> {
  const senders = opts.senders ?? IDLE_SENDERS;
  const runs: SenderRun[] = [];
  for (let run = 0; run < opts.runs; run++) {
    for (const spec of senders) {
      const r = await measureSender(spec, {
        receiver: opts.receiver,
        job: { intervalS: 1, senderLabel: `idle-${spec.name}-${run}-${Date.now()}` },
        warmupS: opts.warmupS,
        windowS: opts.windowS,
        drainS: opts.drainS ?? 2,
        prefer: opts.prefer,
      });
      runs.push(r);
      log(
        `idle run ${run + 1}/${opts.runs} ${spec.name}: RSS ${(r.rss / MiB).toFixed(1)} MiB (peak ${(r.peakRss / MiB).toFixed(1)}, ` +
          `private ${(r.rssAnon / MiB).toFixed(1)}), ` +
          `cpu ${r.cpuS.toFixed(2)} s over ${r.windowS.toFixed(0)} s, ${r.series} own series, ${r.samples} samples delivered`,
      );
    }
    if (opts.floor) {
      for (const flags of [[], HEAP_FLAGS]) {
        const r = await measureNodeFloor(Math.min(opts.windowS, 10), flags);
        runs.push(r);
        log(
          `idle run ${run + 1}/${opts.runs} ${r.name}: RSS ${(r.rss / MiB).toFixed(1)} MiB (peak ${(r.peakRss / MiB).toFixed(1)}, ` +
            `private ${(r.rssAnon / MiB).toFixed(1)})`,
        );
      }
    }
  }
  return { rows: idleRows(runs, senders), runs };
}

export function idleRows(runs: readonly SenderRun[], senders: readonly SenderSpec[]): Row[] {
  const of = (name: string): SenderRun[] => runs.filter((r) => r.name === name);
  const med = (name: string, f: (r: SenderRun) => number): number => median(of(name).map(f));
  const ours = senders.filter((s) => s.kind === SenderKind.ours);
  const peers = senders.filter((s) => s.kind !== SenderKind.ours);
  const rows: Row[] = [];
  for (const o of ours) {
    const peak = med(o.name, (r) => r.peakRss) / MiB;
    const cpuPerMin = (r: SenderRun): number => (r.cpuS / r.windowS) * 60;
    for (const p of peers) {
      rows.push({
        bench: "idle",
        metric: `peak RSS (${o.name})`,
        unit: "MiB",
        better: Better.lower,
        ours: peak,
        peer: { name: p.name, value: med(p.name, (r) => r.peakRss) / MiB },
        goal: { text: `≤ ${IDLE_RSS_GOAL_MIB} MiB`, met: peak <= IDLE_RSS_GOAL_MIB },
        runs: of(o.name).map((r) => r.peakRss / MiB),
      });
      rows.push({
        bench: "idle",
        metric: `private RSS, RssAnon (${o.name})`,
        unit: "MiB",
        better: Better.lower,
        ours: med(o.name, (r) => r.rssAnon) / MiB,
        peer: { name: p.name, value: med(p.name, (r) => r.rssAnon) / MiB },
        runs: of(o.name).map((r) => r.rssAnon / MiB),
      });
      rows.push({
        bench: "idle",
        metric: `CPU per minute (${o.name})`,
        unit: "s",
        better: Better.lower,
        ours: med(o.name, cpuPerMin),
        peer: { name: p.name, value: med(p.name, cpuPerMin) },
        runs: of(o.name).map(cpuPerMin),
      });
    }
  }
  for (const floor of ["node-floor", "node-floor+heap-flags"]) {
    const f = of(floor);
    if (f.length === 0) continue;
    rows.push({
      bench: "idle",
      metric: `RSS of a bare Node timer (${floor})`,
      unit: "MiB",
      better: Better.lower,
      ours: median(f.map((r) => r.rss)) / MiB,
    });
    rows.push({
      bench: "idle",
      metric: `private RSS of a bare Node timer (${floor})`,
      unit: "MiB",
      better: Better.lower,
      ours: median(f.map((r) => r.rssAnon)) / MiB,
    });
  }
  return rows;
}
