// Benchmark 2, forwarding: a local target exposing N series scraped every second and pushed to a real Prometheus,
// ours vs vmagent vs Prometheus in agent mode, run in turn (A B C A B C ...) so they never share the cores.
import { Better, log, median, MiB, type Row } from "./lib/report.ts";
import { measureSender, type Receiver, type SenderRun } from "./lib/measure.ts";
import { SenderKind, type SenderSpec } from "./lib/senders.ts";
import { startTarget } from "./lib/target.ts";

export interface ForwardOptions {
  receiver: Receiver;
  series: number;
  runs: number;
  warmupS: number;
  windowS: number;
  intervalS?: number;
  /** After the window, time for in-flight samples to land (default 3 intervals). */
  drainS?: number;
  senders?: SenderSpec[];
  prefer?: "dist" | "source";
  /**
   * Also measure each sender idle (its own metrics only, same interval) in every run, for bytes per series:
   * (peak RSS forwarding − idle peak RSS) ÷ series. The name of the rows' benchmark ("forward" by default).
   */
  idleBaseline?: { windowS: number };
  bench?: string;
}

/** Ours as users get it (in the sidecar's default memory limit), the peers, and ours without any limit: Node sizes
 * its heap from the limit, which moves both CPU and memory (docs/benchmarks.md, "Ours in its memory limit"). */
export const FORWARD_SENDERS: SenderSpec[] = [
  { kind: SenderKind.ours, name: "ours" },
  { kind: SenderKind.vmagent, name: "vmagent" },
  { kind: SenderKind.promAgent, name: "prometheus-agent" },
  { kind: SenderKind.ours, name: "ours-unlimited", memoryLimit: null },
];

export interface ForwardResult {
  rows: Row[];
  runs: SenderRun[];
  /** Idle runs of each sender, when idleBaseline was asked for. */
  idle: SenderRun[];
}

/**
 * The sample limit a user scraping `series` would set: the series with room to grow (a tenth). The pusher's default of
 * 4,000 would refuse the benchmark's 10,000-series target (up 0, nothing forwarded).
 */
export const forwardSampleLimit = (series: number): number => Math.ceil(series * 1.1);

/** BUFFER_MAX_SAMPLES when the default (100,000) is below three scrapes of the target; undefined = the default. */
export const forwardBufferSamples = (series: number): number | undefined =>
  3 * forwardSampleLimit(series) > 100_000 ? 3 * forwardSampleLimit(series) : undefined;

export const cpuPerMillion = (r: SenderRun): number =>
  r.samples > 0 ? r.cpuS / (r.samples / 1e6) : Number.POSITIVE_INFINITY;

export async function benchForward(opts: ForwardOptions): Promise<ForwardResult> {
  const senders = opts.senders ?? FORWARD_SENDERS;
  const intervalS = opts.intervalS ?? 1;
  const target = await startTarget(opts.series);
  const runs: SenderRun[] = [];
  const idle: SenderRun[] = [];
  try {
    for (let run = 0; run < opts.runs; run++) {
      for (const spec of senders) {
        if (opts.idleBaseline) {
          const r = await measureSender(spec, {
            receiver: opts.receiver,
            job: { intervalS, senderLabel: `fwd-idle-${spec.name}-${run}-${Date.now()}` },
            warmupS: Math.min(opts.warmupS, 5),
            windowS: opts.idleBaseline.windowS,
            drainS: 0,
            prefer: opts.prefer,
          });
          idle.push(r);
          log(`forward idle baseline ${spec.name}: peak RSS ${(r.peakRss / MiB).toFixed(1)} MiB`);
        }
        const r = await measureSender(spec, {
          receiver: opts.receiver,
          job: {
            intervalS,
            target: target.address,
            senderLabel: `fwd-${spec.name}-${run}-${Date.now()}`,
            sampleLimit: forwardSampleLimit(opts.series),
            bufferSamples: forwardBufferSamples(opts.series),
          },
          warmupS: opts.warmupS,
          windowS: opts.windowS,
          drainS: opts.drainS ?? 3 * intervalS,
          expectSeries: opts.series,
          prefer: opts.prefer,
          startTimeoutS: 90,
        });
        runs.push(r);
        log(
          `forward run ${run + 1}/${opts.runs} ${spec.name}: cpu ${r.cpuS.toFixed(2)} s over ${r.windowS.toFixed(1)} s, ` +
            `${r.samples} samples delivered of ${Math.round(r.expected)} expected, ${cpuPerMillion(r).toFixed(2)} cpu-s/M, ` +
            `peak RSS ${(r.peakRss / MiB).toFixed(1)} MiB`,
        );
      }
    }
  } finally {
    await target.close();
  }
  return {
    rows: forwardRows(runs, senders, { idle, series: opts.series, intervalS, bench: opts.bench }),
    runs,
    idle,
  };
}

/** Goals of issue 17 (the default senders' rows only; a sender with heap flags is shown beside them). */
const CPU_GOAL = { vmagent: 1.2, agent: 0.9 } as const;
const RSS_GOAL_AGENT = 0.8;

export function forwardRows(
  runs: readonly SenderRun[],
  senders: readonly SenderSpec[],
  extra: { idle?: readonly SenderRun[]; series?: number; intervalS?: number; bench?: string } = {},
): Row[] {
  const of = (name: string): SenderRun[] => runs.filter((r) => r.name === name);
  const med = (name: string, f: (r: SenderRun) => number): number => median(of(name).map(f));
  const ours = senders.filter((s) => s.kind === SenderKind.ours);
  const peers = senders.filter((s) => s.kind !== SenderKind.ours);
  const rows: Row[] = [];
  const bench = extra.bench ?? "forward";
  const idle = extra.idle ?? [];
  const series = extra.series ?? 0;
  // Every scrape whose timestamp falls in the window: at least ⌊window ÷ interval⌋ of them, each with every series.
  const delivered = (r: SenderRun): number => series * Math.floor(r.windowS / (extra.intervalS ?? 1));
  // (peak RSS forwarding − idle peak RSS) ÷ series, per run, for every sender alike.
  const bytesPerSeries = (name: string): number[] => {
    const idleRuns = idle.filter((r) => r.name === name);
    return of(name).map((r, i) => (r.peakRss - (idleRuns[i] ?? idleRuns[0]!).peakRss) / series);
  };
  for (const o of ours) {
    // The CPU and RSS goals are those at 10,000 series; at 100,000 the goal is bytes per series (idle baselines).
    const asShipped = o.nodeFlags === undefined && idle.length === 0;
    rows.push({
      bench,
      metric: `every sample delivered (${o.name})`,
      unit: "",
      better: Better.higher,
      ours: med(o.name, (r) => r.samples),
      peer: { name: "series × scrapes in window", value: med(o.name, delivered) },
      goal: { text: "≥ every series of every scrape", met: of(o.name).every((r) => r.samples >= delivered(r)) },
      runs: of(o.name).map((r) => r.samples),
    });
    for (const peer of peers) {
      const cpuOurs = med(o.name, cpuPerMillion);
      const cpuPeer = med(peer.name, cpuPerMillion);
      const isVm = peer.kind === SenderKind.vmagent;
      rows.push({
        bench,
        metric: `CPU per million samples (${o.name})`,
        unit: "s",
        better: Better.lower,
        ours: cpuOurs,
        peer: { name: peer.name, value: cpuPeer },
        ...(asShipped
          ? {
              goal: isVm
                ? { text: `≤ ${CPU_GOAL.vmagent}× vmagent`, met: cpuOurs <= CPU_GOAL.vmagent * cpuPeer }
                : { text: `≤ ${CPU_GOAL.agent}× Prometheus agent`, met: cpuOurs <= CPU_GOAL.agent * cpuPeer },
            }
          : {}),
        runs: of(o.name).map(cpuPerMillion),
      });
      const rssOurs = med(o.name, (r) => r.peakRss) / MiB;
      const rssPeer = med(peer.name, (r) => r.peakRss) / MiB;
      rows.push({
        bench,
        metric: `peak RSS (${o.name})`,
        unit: "MiB",
        better: Better.lower,
        ours: rssOurs,
        peer: { name: peer.name, value: rssPeer },
        ...(isVm || !asShipped
          ? {}
          : { goal: { text: `≤ ${RSS_GOAL_AGENT}× Prometheus agent`, met: rssOurs <= RSS_GOAL_AGENT * rssPeer } }),
        runs: of(o.name).map((r) => r.peakRss / MiB),
      });
      if (idle.length > 0 && series > 0) {
        const bOurs = median(bytesPerSeries(o.name));
        const bPeer = median(bytesPerSeries(peer.name));
        rows.push({
          bench,
          metric: `bytes per series, (peak − idle peak) ÷ ${series} (${o.name})`,
          unit: "B",
          better: Better.lower,
          ours: bOurs,
          peer: { name: peer.name, value: bPeer },
          ...(isVm || o.nodeFlags !== undefined ? {} : { goal: { text: "≤ Prometheus agent", met: bOurs <= bPeer } }),
          runs: bytesPerSeries(o.name),
        });
      }
      rows.push({
        bench,
        metric: `samples delivered in window (${o.name})`,
        unit: "",
        better: Better.higher,
        ours: med(o.name, (r) => r.samples),
        peer: { name: peer.name, value: med(peer.name, (r) => r.samples) },
        runs: of(o.name).map((r) => r.samples),
      });
    }
  }
  return rows;
}
