// Runs the test suites with node's built-in test runner (its summary is what CI reads).
// `unit` runs only the tests beside the code; the default runs those and every test under test/ that starts real
// parts (control plane, Prometheus, VictoriaMetrics).
import { spawnSync } from "node:child_process";
import { globSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
const args = [
  "--conditions=source",
  "--test",
  "--test-reporter=spec",
  // Files that start real parts are heavy; two cores run them one at a time.
  "--test-concurrency=1",
  ...files,
];
// One node bed (test/node/shared.ts) serves every node test file of the run: the first file starts it in a supervisor
// process that writes its pid here; it is stopped below, and stops by itself if this process dies first.
const nodeBedDir = mkdtempSync(join(tmpdir(), "metrics-pusher-node-bed-"));
const env = { ...process.env, METRICS_PUSHER_NODE_BED: nodeBedDir, METRICS_PUSHER_NODE_BED_OWNER: String(process.pid) };
const r = spawnSync(process.execPath, args, { stdio: "inherit", env });
const status = stopNodeBed() ? (r.status ?? 1) : 1;
process.exit(status);

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
