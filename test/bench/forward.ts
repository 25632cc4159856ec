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
}

/** A small young generation: fewer short-lived scrape objects promoted, less heap committed. */
export const FORWARD_HEAP_FLAGS = ["--max-semi-space-size=1"] as const;

export const FORWARD_SENDERS: SenderSpec[] = [
  { kind: SenderKind.ours, name: "ours" },
  { kind: SenderKind.vmagent, name: "vmagent" },
  { kind: SenderKind.promAgent, name: "prometheus-agent" },
  { kind: SenderKind.ours, name: "ours+heap-flags", nodeFlags: FORWARD_HEAP_FLAGS },
];

export interface ForwardResult {
  rows: Row[];
  runs: SenderRun[];
}

export const cpuPerMillion = (r: SenderRun): number =>
  r.samples > 0 ? r.cpuS / (r.samples / 1e6) : Number.POSITIVE_INFINITY;

export async function benchForward(opts: ForwardOptions): Promise<ForwardResult> {
  const senders = opts.senders ?? FORWARD_SENDERS;
  const intervalS = opts.intervalS ?? 1;
  const target = await startTarget(opts.series);
  const runs: SenderRun[] = [];
  try {
    for (let run = 0; run < opts.runs; run++) {
      for (const spec of senders) {
        const r = await measureSender(spec, {
          receiver: opts.receiver,
          job: { intervalS, target: target.address, senderLabel: `fwd-${spec.name}-${run}-${Date.now()}` },
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
  return { rows: forwardRows(runs, senders), runs };
}

export function forwardRows(runs: readonly SenderRun[], senders: readonly SenderSpec[]): Row[] {
  const of = (name: string): SenderRun[] => runs.filter((r) => r.name === name);
  const med = (name: string, f: (r: SenderRun) => number): number => median(of(name).map(f));
  const ours = senders.filter((s) => s.kind === SenderKind.ours);
  const peers = senders.filter((s) => s.kind !== SenderKind.ours);
  const rows: Row[] = [];
  const bench = "forward";
  for (const o of ours) {
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
        goal: isVm
          ? { text: "≤ 1.5× vmagent", met: cpuOurs <= 1.5 * cpuPeer }
          : { text: "below Prometheus agent", met: cpuOurs < cpuPeer },
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
        ...(isVm ? {} : { goal: { text: "below Prometheus agent", met: rssOurs < rssPeer } }),
        runs: of(o.name).map((r) => r.peakRss / MiB),
      });
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
