// Runs the test suites with node's built-in test runner (its summary is what CI reads).
// `unit` runs only the tests beside the code; the default runs those and every test under test/ that starts real
// parts (control plane, Prometheus, VictoriaMetrics).
import { spawn } from "node:child_process";
import { globSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Failure } from "./file-durations.ts";

const unit = ["pusher/src/**/*.test.ts", "operator/src/**/*.test.ts"];
const real = ["test/**/*.test.ts"];
const mode = process.argv[2] ?? "all";
// `reliability` runs only test/reliability/ (with SOAK=1 from `npm run soak`: the long modes of those suites).
// `node` runs only test/node/ (the real node bed).
const patterns =
  mode === "unit"
    ? unit
    : mode === "reliability"
      ? ["test/reliability/**/*.test.ts"]
      : mode === "node"
        ? ["test/node/**/*.test.ts"]
        : [...unit, ...real];
const files = patterns.flatMap((p) => globSync(p, { exclude: (f) => f.includes("node_modules") })).sort();
if (files.length === 0) {
  console.error(`no test files match ${patterns.join(" ")}`);
  process.exit(1);
}
const tmp = mkdtempSync(join(tmpdir(), "run-tests-"));
const durationsFile = join(tmp, "durations.json");
const args = [
  "--conditions=source",
  "--test",
  "--test-reporter=spec",
  "--test-reporter-destination=stdout",
  `--test-reporter=${join(import.meta.dirname, "file-durations.ts")}`,
  `--test-reporter-destination=${durationsFile}`,
  // Files that start real parts are heavy; two cores run them one at a time.
  "--test-concurrency=1",
  ...files,
];
// Spec's output is passed through line by line; its closing summary (the `ℹ tests/pass/fail …` block) is held back
// so that the table of file durations goes before it and the summary stays the last lines, where CI reads them.
// One node bed (test/node/shared.ts) serves every node test file of the run: the first file starts it in a supervisor
// process that writes its pid here; it is stopped below, and stops by itself if this process dies first.
const nodeBedDir = mkdtempSync(join(tmpdir(), "metrics-pusher-node-bed-"));
const env = {
  ...(process.stdout.isTTY && process.env.NO_COLOR === undefined ? { FORCE_COLOR: "1" } : {}),
  ...process.env,
  METRICS_PUSHER_NODE_BED: nodeBedDir,
  METRICS_PUSHER_NODE_BED_OWNER: String(process.pid),
};
const child = spawn(process.execPath, args, { stdio: ["inherit", "pipe", "inherit"], env });
let held: string[] = [];
const lines = createInterface({ input: child.stdout });
lines.on("line", (line) => {
  // The spec reporter colours its summary lines with ANSI escapes when stdout is a terminal.
  // eslint-disable-next-line no-control-regex
  if (/^(\u001b\[[0-9;]*m)*ℹ /.test(line)) {
    held.push(line);
    return;
  }
  for (const h of held) console.log(h);
  held = [];
  console.log(line);
});
const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
try {
  const report = JSON.parse(readFileSync(durationsFile, "utf8")) as {
    files: Array<{ file: string; ms: number }>;
    failures: Failure[];
  };
  const width = Math.max(...report.files.map((d) => d.file.length));
  console.log("\nduration per test file (wall time, one file at a time):");
  for (const d of report.files) console.log(`  ${d.file.padEnd(width)}  ${(d.ms / 1000).toFixed(1).padStart(7)} s`);
  console.log();
  // Again, shortly, where the last lines of a log show them: each failed test, its file and its error.
  if (report.failures.length > 0) console.log(`${report.failures.length} failed:`);
  for (const f of report.failures) {
    console.log(`  ✖ ${f.name} (${f.file})`);
    for (const line of f.error.split("\n")) console.log(`      ${line}`);
  }
} catch (err) {
  console.log(`(no file durations: ${(err as Error).message})`);
}
rmSync(tmp, { recursive: true, force: true });
const bedStopped = stopNodeBed();
for (const h of held) console.log(h);
process.exit(bedStopped ? (code ?? 1) : 1);

/** SIGTERM to the run's bed supervisor, by its pid, and a wait until it has stopped the bed; false if it would not. */
function stopNodeBed(): boolean {
  let pid = 0;
  try {
    pid = Number(readFileSync(join(nodeBedDir, "supervisor.pid"), "utf8").trim());
  } catch {
    rmSync(nodeBedDir, { recursive: true, force: true });
    return true; // no node test file ran
  }
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (alive()) {
    console.error(`stopping the node bed (supervisor pid ${pid})`);
    process.kill(pid, "SIGTERM");
  }
  const deadline = Date.now() + 120_000;
  while (alive() && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  if (alive()) {
    console.error(`the node bed's supervisor ${pid} did not stop in 120 s; see ${nodeBedDir}/supervisor.log`);
    process.kill(pid, "SIGKILL");
    return false;
  }
  rmSync(nodeBedDir, { recursive: true, force: true });
  return true;
}
