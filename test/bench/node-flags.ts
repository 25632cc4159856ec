// What a Node setting costs where the sidecar works hardest: ours alone, forwarding a target, once per variant and
// round (variants interleaved), on Node's defaults plus each variant's flags. Used to weigh an idle-memory setting
// against forwarding CPU before it becomes a default (docs/benchmarks.md, "Idle sidecar"):
//   node --conditions=source test/bench/node-flags.ts [series=3500] [windowS=10] [rounds=2] -- "FLAGS" "FLAGS" ...
// "" is Node's defaults. 3,500 series by default: below the pusher's default sample limit (4,000), which a larger target
// would hit without SCRAPE_SAMPLE_LIMIT. Prints one JSON line per run and a median table at the end.
import { startPrometheus } from "../peers/receivers.ts";
import { benchForward, cpuPerMillion } from "./forward.ts";
import { build, SenderKind } from "./lib/senders.ts";
import { log, median, MiB } from "./lib/report.ts";
import type { SenderRun } from "./lib/measure.ts";

const args = process.argv.slice(2);
const dash = args.indexOf("--");
const [series = 3500, windowS = 10, rounds = 2] = (dash >= 0 ? args.slice(0, dash) : args).map(Number);
const variants = dash >= 0 ? args.slice(dash + 1) : [""];

const b = build("pusher");
if (!b.ok) throw new Error(`pusher build failed:\n${b.output}`);
const receiver = await startPrometheus();
const runs: SenderRun[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const v of variants) {
      const name = v === "" ? "node-defaults" : v;
      const r = await benchForward({
        receiver,
        runs: 1,
        series,
        warmupS: 3,
        windowS,
        senders: [{ kind: SenderKind.ours, name, nodeDefaults: true, nodeFlags: v.split(" ").filter(Boolean) }],
      });
      for (const run of r.runs) {
        runs.push(run);
        process.stdout.write(
          `${JSON.stringify({ round, variant: name, cpuPerMillion: cpuPerMillion(run), peakRssMiB: run.peakRss / MiB, rssAnonMiB: run.rssAnon / MiB, samples: run.samples })}\n`,
        );
      }
    }
  }
} finally {
  await receiver.stop();
}
for (const v of variants) {
  const name = v === "" ? "node-defaults" : v;
  const of = runs.filter((r) => r.name === name);
  log(
    `${name}: CPU per million samples ${median(of.map(cpuPerMillion)).toFixed(2)} s, peak RSS ${(median(of.map((r) => r.peakRss)) / MiB).toFixed(0)} MiB (${of.length} runs)`,
  );
}
process.exit(0);
