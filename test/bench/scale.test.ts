// Smoke run of the operator-scale benchmark on the real control plane, at 20 Deployments instead of 2,000: the
// operator (its real main, as a process) stamps every Deployment, is restarted with another default image, re-stamps
// every one, and the figures come out. Checks that the benchmark works, not how fast the operator is.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { startedPids } from "./lib/procs.ts";
import { benchScale } from "./scale.ts";

describe("operator scale benchmark (smoke)", () => {
  it("re-stamps every Deployment after a default image change and reports time and RSS", async () => {
    const r = await benchScale({ deployments: 20, runs: 1, prefer: "source" });
    assert.equal(r.runs.length, 1);
    const run = r.runs[0]!;
    assert.ok(run.restampS > 0 && Number.isFinite(run.restampS), JSON.stringify(run));
    assert.ok(run.restampAfterReadyS <= run.restampS, JSON.stringify(run));
    assert.ok(run.operatorPeakRss > 0 && run.operatorCpuS > 0, JSON.stringify(run));
    assert.ok(Number.isFinite(r.initialStampS) && r.initialStampS > 0);
    assert.deepEqual(r.rows.map((row) => row.goal?.text).filter(Boolean), ["≤ 15 s", "≤ 200 MiB"]);
    // Measured with the shipped manifest's NODE_OPTIONS, beside bare Node and Node with client-node imported.
    assert.ok(
      r.rows.some((row) => row.metric.includes("NODE_OPTIONS=--max-old-space-size=")),
      JSON.stringify(r.rows),
    );
    const [bare, client] = r.floors;
    assert.ok(bare && client && bare.peakRss > 0 && client.peakRss > bare.peakRss, JSON.stringify(r.floors));
    // Both operators were stopped by pid.
    for (const pid of startedPids()) assert.throws(() => process.kill(pid, 0), `pid ${pid} still alive`);
  });
});
