// Runs the test suites with node's built-in test runner (its summary is what CI reads).
// `unit` runs only the tests beside the code; the default runs those and every test under test/ that starts real
// parts (control plane, Prometheus, VictoriaMetrics).
import { spawnSync } from "node:child_process";
import { globSync } from "node:fs";

const unit = ["pusher/src/**/*.test.ts", "operator/src/**/*.test.ts"];
const real = ["test/**/*.test.ts"];
const mode = process.argv[2] ?? "all";
// `reliability` runs only test/reliability/ (with SOAK=1 from `npm run soak`: the long modes of those suites).
const patterns =
  mode === "unit" ? unit : mode === "reliability" ? ["test/reliability/**/*.test.ts"] : [...unit, ...real];
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
const r = spawnSync(process.execPath, args, { stdio: "inherit" });
process.exit(r.status ?? 1);
