// Benchmark 3, idle sidecar: each sender pushes only its own metrics every second; RSS and CPU over the window.
// Ours runs as the image starts it (Dockerfile.pusher's node flags and NODE_OPTIONS), and once on Node's own defaults
// to show what those settings buy. Beside it, in the same run and with the same settings: the floor, a Node process
// that only imports what the pusher imports at start and idles, and a bare Node process that only keeps a timer.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { cpuSeconds, memory, startProcess } from "./lib/procs.ts";
import { Better, log, median, MiB, type Row } from "./lib/report.ts";
import { measureSender, type Receiver, type SenderRun } from "./lib/measure.ts";
import {
  pusherEntry,
  REPO,
  SenderKind,
  shippedPusherNode,
  shippedSidecarMemoryLimit,
  type SenderSpec,
} from "./lib/senders.ts";

/** Ours ÷ the floor, on peak RSS (issue 17). */
export const IDLE_FLOOR_GOAL = 1.05;
/** Ours ÷ Prometheus agent, on private memory (RssAnon): the per-pod cost (issue 17). */
export const IDLE_PRIVATE_GOAL = 0.8;
const PRIVATE_PEER = SenderKind.promAgent;

export const IDLE_SENDERS: SenderSpec[] = [
  { kind: SenderKind.ours, name: "ours" },
  { kind: SenderKind.ours, name: "ours+node-defaults", nodeDefaults: true },
  { kind: SenderKind.vmagent, name: "vmagent" },
  { kind: SenderKind.promAgent, name: "prometheus-agent" },
];

export const FLOOR = "floor";
export const BARE = "bare-node";

export interface IdleOptions {
  receiver: Receiver;
  runs: number;
  warmupS: number;
  windowS: number;
  senders?: SenderSpec[];
  prefer?: "dist" | "source";
  drainS?: number;
  /** Also measure the floor and a bare Node process (default true). */
  floor?: boolean;
}

export interface IdleResult {
  rows: Row[];
  runs: SenderRun[];
}

/**
 * The modules the pusher's main imports statically (what every pusher loads at start, before any work), as an ES
 * module body that imports them and idles. Read from the entry the benchmark runs, so it follows main as it changes.
 */
export function floorModule(form: "dist" | "source"): string {
  const main = join(REPO, "pusher", form === "dist" ? "dist/main.js" : "src/main.ts");
  const specifiers = [...readFileSync(main, "utf8").matchAll(/^import\s[^;]*?from\s+"([^"]+)";/gms)]
    .filter((m) => !/^import\s+type\s/.test(m[0]))
    .map((m) => m[1]!);
  if (specifiers.length === 0) throw new Error(`no imports found in ${main}`);
  const resolved = specifiers.map((s) => (s.startsWith(".") ? pathToFileURL(join(dirname(main), s)).href : s));
  return `${resolved.map((s) => `import ${JSON.stringify(s)};`).join("\n")}\nsetInterval(() => {}, 1000);\n`;
}

/**
 * A Node process started with the pusher's shipped settings that runs `code` and idles: the floor (the pusher's
 * start imports) or bare Node (a timer only).
 */
async function measureNodeFloor(name: string, windowS: number, prefer: "dist" | "source"): Promise<SenderRun> {
  const shipped = shippedPusherNode();
  const form = pusherEntry(prefer).form;
  const code = name === FLOOR ? floorModule(form) : "setInterval(() => {}, 1000)";
  const argv = [...shipped.flags, ...(form === "source" ? ["--conditions=source"] : []), "--input-type=module"];
  const proc = startProcess(name, process.execPath, [...argv, "-e", code], {
    // Bare specifiers (pino, prom-client) resolve from the pusher's workspace, as its main's do.
    cwd: join(REPO, "pusher"),
    env: { NODE_OPTIONS: shipped.nodeOptions ?? "" },
    // In the sidecar's memory limit, as ours: Node sizes its heap from it.
    memoryLimit: shippedSidecarMemoryLimit(),
  });
  try {
    await sleep(1000);
    const cpu0 = cpuSeconds(proc.pid);
    await sleep(windowS * 1000);
    const cpu1 = cpuSeconds(proc.pid);
    const mem = memory(proc.pid);
    return {
      name,
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
    if (opts.floor ?? true) {
      for (const name of [FLOOR, BARE]) {
        const r = await measureNodeFloor(name, Math.min(opts.windowS, 10), opts.prefer ?? "dist");
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
  const floorPeak = med(FLOOR, (r) => r.peakRss) / MiB;
  for (const o of ours) {
    const peak = med(o.name, (r) => r.peakRss) / MiB;
    const priv = med(o.name, (r) => r.rssAnon) / MiB;
    const cpuPerMin = (r: SenderRun): number => (r.cpuS / r.windowS) * 60;
    // The goals hold for ours as shipped; the other variants are shown against the same figures, without a verdict.
    const goals = !o.nodeDefaults && !o.nodeFlags;
    if (of(FLOOR).length > 0) {
      rows.push({
        bench: "idle",
        metric: `peak RSS (${o.name})`,
        unit: "MiB",
        better: Better.lower,
        ours: peak,
        peer: { name: "floor (start imports, idle)", value: floorPeak },
        ...(goals ? { goal: { text: `≤ ${IDLE_FLOOR_GOAL}× floor`, met: peak <= IDLE_FLOOR_GOAL * floorPeak } } : {}),
        runs: of(o.name).map((r) => r.peakRss / MiB),
      });
    }
    for (const p of peers) {
      rows.push({
        bench: "idle",
        metric: `peak RSS (${o.name})`,
        unit: "MiB",
        better: Better.lower,
        ours: peak,
        peer: { name: p.name, value: med(p.name, (r) => r.peakRss) / MiB },
        runs: of(o.name).map((r) => r.peakRss / MiB),
      });
      const peerPriv = med(p.name, (r) => r.rssAnon) / MiB;
      rows.push({
        bench: "idle",
        metric: `private RSS, RssAnon (${o.name})`,
        unit: "MiB",
        better: Better.lower,
        ours: priv,
        peer: { name: p.name, value: peerPriv },
        ...(goals && p.kind === PRIVATE_PEER
          ? { goal: { text: `≤ ${IDLE_PRIVATE_GOAL}× ${p.name}`, met: priv <= IDLE_PRIVATE_GOAL * peerPriv } }
          : {}),
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
  const labels = { [FLOOR]: "floor: Node + the pusher's start imports", [BARE]: "bare Node, a timer only" };
  for (const floor of [FLOOR, BARE] as const) {
    const f = of(floor);
    if (f.length === 0) continue;
    rows.push({
      bench: "idle",
      metric: `peak RSS, ${labels[floor]}`,
      unit: "MiB",
      better: Better.lower,
      ours: median(f.map((r) => r.peakRss)) / MiB,
      runs: f.map((r) => r.peakRss / MiB),
    });
    rows.push({
      bench: "idle",
      metric: `private RSS, ${labels[floor]}`,
      unit: "MiB",
      better: Better.lower,
      ours: median(f.map((r) => r.rssAnon)) / MiB,
      runs: f.map((r) => r.rssAnon / MiB),
    });
  }
  return rows;
}
