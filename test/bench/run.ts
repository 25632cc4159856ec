// `npm run bench`: the five benchmarks side by side with their peers, in one run on this machine. Each prints its
// figures and ratios as it finishes, then a final table; --json writes every figure and run for docs/benchmarks.md.
//
//   node --conditions=source test/bench/run.ts [--only encode,forward,forward-large,idle,webhook,scale,churn]
//        [--quick] [--profile] [--runs N] [--forward-series N] [--forward-interval S] [--forward-window S]
//        [--forward-large-series N] [--forward-large-interval S] [--churn-minutes N] [--idle-window S] [--webhook-duration S]
//        [--webhook-connections N] [--scale-deployments N] [--operator-flags="NODE FLAGS"]
//        [--operator-node-options="…"] [--heap-snapshot] [--json PATH]
//
// Peers run in turn (ours, vmagent, Prometheus agent, ours, ...) so they never share the two cores; figures are
// medians over --runs; ratios are the claim.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startPrometheus } from "../peers/receivers.ts";
import { benchEncode } from "./encode.ts";
import { benchChurn } from "./churn.ts";
import { benchForward, FORWARD_SENDERS, forwardBufferSamples, forwardSampleLimit } from "./forward.ts";
import { benchIdle } from "./idle.ts";
import { formatHotSpots, hotSpots } from "./lib/profile.ts";
import { formatRow, log, table, type Row } from "./lib/report.ts";
import { build, entry, peerVersions, pusherEntry, REPO, SenderKind } from "./lib/senders.ts";
import { benchScale } from "./scale.ts";
import { benchWebhook } from "./webhook.ts";

const BENCHES = ["encode", "forward", "forward-large", "idle", "webhook", "scale", "churn"] as const;
/** Run by default; churn (10 minutes) only when asked for, and in make soak. */
const DEFAULT_BENCHES = BENCHES.filter((b) => b !== "churn");
type Bench = (typeof BENCHES)[number];

const { values: args } = parseArgs({
  options: {
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    runs: { type: "string" },
    "forward-series": { type: "string" },
    "forward-interval": { type: "string" },
    "forward-large-series": { type: "string" },
    "forward-large-interval": { type: "string" },
    "churn-minutes": { type: "string" },
    "forward-window": { type: "string" },
    "idle-window": { type: "string" },
    "webhook-duration": { type: "string" },
    "webhook-connections": { type: "string" },
    "scale-deployments": { type: "string" },
    "operator-flags": { type: "string" },
    // Replaces the shipped manifest's NODE_OPTIONS for the operator ("" for none).
    "operator-node-options": { type: "string" },
    // One more image change in which the operator writes a heap snapshot under load; prints retained size by class.
    "heap-snapshot": { type: "boolean", default: false },
    json: { type: "string" },
  },
});

const num = (v: string | undefined, full: number, quick: number): number =>
  v !== undefined ? Number(v) : args.quick ? quick : full;
/** "10s" or "10" → 10. */
const seconds = (v: string | undefined, dflt: number): number => (v === undefined ? dflt : Number(v.replace(/s$/, "")));
const only = new Set<Bench>(
  (args.only ?? DEFAULT_BENCHES.join(","))
    .split(",")
    .map((s) => s.trim())
    .filter((s): s is Bench => {
      if (!(BENCHES as readonly string[]).includes(s))
        throw new Error(`unknown benchmark ${s}; choose from ${BENCHES.join(", ")}`);
      return true;
    }),
);
const runs = num(args.runs, 3, 1);
const settings = {
  runs,
  encode: { series: 2000, rounds: num(undefined, 7, 3), roundMs: num(undefined, 2000, 500) },
  forward: {
    series: num(args["forward-series"], 10_000, 2000),
    intervalS: seconds(args["forward-interval"], 1),
    warmupS: num(undefined, 5, 3),
    windowS: num(args["forward-window"], 30, 10),
  },
  // 100,000 series every 10 s, and each sender idle at the same interval for bytes per series.
  forwardLarge: {
    series: num(args["forward-large-series"], 100_000, 20_000),
    intervalS: seconds(args["forward-large-interval"], 10),
    warmupS: num(undefined, 10, 10),
    windowS: num(undefined, 60, 30),
    idleWindowS: num(undefined, 20, 10),
  },
  churn: { series: num(args["forward-series"], 10_000, 2000), minutes: num(args["churn-minutes"], 10, 10) },
  idle: { warmupS: num(undefined, 5, 2), windowS: num(args["idle-window"], 60, 10) },
  webhook: {
    pushers: 100,
    reviews: 200,
    connections: num(args["webhook-connections"], 8, 8),
    durationS: num(args["webhook-duration"], 10, 3),
    rate: 2000,
  },
  scale: { deployments: num(args["scale-deployments"], 2000, 100) },
};

function machine(): Record<string, string> {
  const sh = (cmd: string, a: string[]): string => {
    try {
      return execFileSync(cmd, a, { encoding: "utf8" }).trim();
    } catch {
      return "?";
    }
  };
  return {
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: sh("uname", ["-r"]),
    node: process.version,
    loadavg: sh("cat", ["/proc/loadavg"]),
  };
}

/** The hot spots, and where the .cpuprofile stays for Chrome DevTools or speedscope. */
function profileSummary(dir: string): string {
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  return file ? `${formatHotSpots(hotSpots(join(dir, file), 15))}\n  (${join(dir, file)})` : "no profile written";
}

/** Runs the encoder under --cpu-prof in a child process and prints where its time goes. */
function profileEncode(): string {
  const dir = mkdtempSync(join(tmpdir(), "bench-prof-encode-"));
  const r = spawnSync(
    process.execPath,
    [
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      "--conditions=source",
      join(REPO, "test/bench/encode-loop.ts"),
      "2000",
      "4000",
      "steady",
    ],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) return `profile failed: ${r.stderr}`;
  return profileSummary(dir);
}

async function main(): Promise<void> {
  if (Number(process.versions.node.split(".")[0]) < 24)
    throw new Error(`Node ${process.version}: run with Node 24 (node_modules/.bin/node)`);
  const info: Record<string, unknown> = { started: new Date().toISOString(), machine: machine(), settings };
  log(`machine: ${JSON.stringify(info.machine)}`);
  const rows: Row[] = [];
  const results: Record<string, unknown> = {};
  const done = (bench: string, r: { rows: Row[] }): void => {
    for (const row of r.rows) process.stdout.write(`${formatRow(row)}\n`);
    rows.push(...r.rows);
    results[bench] = r;
  };

  if (only.has("forward") || only.has("forward-large") || only.has("idle") || only.has("churn")) {
    // The sidecar image runs the compiled dist/main.js; measure that, not Node's type stripping.
    const b = build("pusher");
    if (!b.ok)
      log(`pusher build failed; measuring the TypeScript source if dist/ is stale:\n${b.output.slice(0, 2000)}`);
    const pusherForm = pusherEntry().form;
    const peers = peerVersions();
    info.pusherEntry = pusherForm;
    info.peers = peers;
    log(`pusher from ${pusherForm}; peers ${JSON.stringify(peers)}`);
  }

  if (only.has("encode")) {
    log("1/5 encode");
    done("encode", await benchEncode(settings.encode));
    if (args.profile) {
      const spots = profileEncode();
      results.encodeProfile = spots;
      process.stdout.write(`encode profile (self time, ours, steady state):\n${spots}\n`);
    }
  }

  if (only.has("forward") || only.has("forward-large") || only.has("idle") || only.has("churn")) {
    const receiver = await startPrometheus();
    try {
      if (only.has("forward")) {
        log(
          `2/5 forward: ${settings.forward.series} series every ${settings.forward.intervalS} s, ${runs} runs × ` +
            `(ours, vmagent, prometheus-agent), SCRAPE_SAMPLE_LIMIT / sample_limit ${forwardSampleLimit(settings.forward.series)}`,
        );
        done("forward", await benchForward({ receiver, runs, ...settings.forward }));
        if (args.profile) {
          // One more run of ours under --cpu-prof, outside the figures (the profiler costs CPU of its own).
          const dir = mkdtempSync(join(tmpdir(), "bench-prof-forward-"));
          await benchForward({
            receiver,
            runs: 1,
            ...settings.forward,
            senders: [{ kind: SenderKind.ours, name: "ours", cpuProfileDir: dir }],
          });
          const spots = profileSummary(dir);
          results.forwardProfile = spots;
          process.stdout.write(`forward profile (self time of ours, share of busy time):\n${spots}\n`);
        }
      }
      if (only.has("forward-large")) {
        const fl = settings.forwardLarge;
        log(
          `2b/5 forward-large: ${fl.series} series every ${fl.intervalS} s, ${runs} runs × (ours, vmagent, ` +
            `prometheus-agent), each also idle for bytes per series; ours with SCRAPE_SAMPLE_LIMIT=${forwardSampleLimit(fl.series)} ` +
            `BUFFER_MAX_SAMPLES=${forwardBufferSamples(fl.series) ?? "default"}`,
        );
        done(
          "forward-large",
          await benchForward({
            receiver,
            runs,
            series: fl.series,
            intervalS: fl.intervalS,
            warmupS: fl.warmupS,
            windowS: fl.windowS,
            drainS: 2 * fl.intervalS,
            // 100,000 series do not fit the sidecar's default memory limit: a user raises spec.resources, and the
            // limit chosen sizes V8's heap. Ours runs without one here, as it did before the limit was modelled.
            senders: FORWARD_SENDERS.filter((s) => s.name !== "ours-unlimited").map((s) =>
              s.kind === SenderKind.ours ? { ...s, memoryLimit: null } : s,
            ),
            idleBaseline: { windowS: fl.idleWindowS },
            bench: "forward-large",
          }),
        );
      }
      if (only.has("churn")) {
        log(
          `churn: ${settings.churn.series} series every 1 s for ${settings.churn.minutes} minutes, a tenth replaced every minute`,
        );
        done("churn", await benchChurn({ receiver, ...settings.churn }));
      }
      if (only.has("idle")) {
        log(`3/5 idle: own metrics every 1 s, ${settings.idle.windowS} s window, ${runs} runs`);
        done("idle", await benchIdle({ receiver, runs, ...settings.idle }));
      }
    } finally {
      await receiver.stop();
    }
  }

  if (only.has("webhook")) {
    log(
      `4/5 webhook: ${settings.webhook.pushers} MetricsPushers, ${settings.webhook.connections} connections, ${runs} runs`,
    );
    done("webhook", await benchWebhook({ runs, ...settings.webhook }));
    if (args.profile) {
      const dir = mkdtempSync(join(tmpdir(), "bench-prof-webhook-"));
      await benchWebhook({ ...settings.webhook, runs: 1, rate: 0, cpuProfileDir: dir });
      const spots = profileSummary(dir);
      results.webhookProfile = spots;
      process.stdout.write(`webhook profile (self time of the server, share of busy time):\n${spots}\n`);
    }
  }

  if (only.has("scale")) {
    const b = build("operator");
    if (!b.ok)
      log(`operator build failed; measuring the TypeScript source if dist/ is stale:\n${b.output.slice(0, 2000)}`);
    const operatorForm = entry("operator").form;
    info.operatorEntry = operatorForm;
    log(`operator from ${operatorForm}`);
    log(`5/5 scale: ${settings.scale.deployments} Deployments, ${runs} image changes`);
    const dir = args.profile ? mkdtempSync(join(tmpdir(), "bench-prof-operator-")) : undefined;
    const operatorNodeFlags = (args["operator-flags"] ?? "").split(" ").filter(Boolean);
    const heapSnapshotDir = args["heap-snapshot"] ? mkdtempSync(join(tmpdir(), "bench-heap-operator-")) : undefined;
    const scale = await benchScale({
      runs,
      deployments: settings.scale.deployments,
      cpuProfileDir: dir,
      operatorNodeFlags,
      operatorNodeOptions: args["operator-node-options"],
      heapSnapshotDir,
    });
    done("scale", scale);
    if (scale.heapSummary)
      process.stdout.write(`operator heap under load (retained size by constructor):\n${scale.heapSummary}\n`);
    if (dir) {
      const spots = profileSummary(dir);
      results.scaleProfile = spots;
      process.stdout.write(`operator profile during an image change (self time, share of busy time):\n${spots}\n`);
    }
  }

  process.stdout.write(`\n${table(rows)}\n`);
  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify({ ...info, finished: new Date().toISOString(), rows, results }, null, 2)}\n`,
    );
    log(`figures written to ${args.json}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
