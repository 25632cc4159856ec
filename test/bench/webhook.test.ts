// Smoke run of the webhook benchmark: the operator's handler behind its HTTPS server answers every distinct review
// as the operator would (checked before any load), both loads complete without errors, and the rows come out.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { benchWebhook } from "./webhook.ts";

describe("webhook benchmark (smoke)", () => {
  it("loads the real handler with realistic AdmissionReviews and reports throughput and latency", async () => {
    const r = await benchWebhook({ pushers: 100, reviews: 20, connections: 2, durationS: 1, runs: 1, rate: 100 });
    assert.equal(r.checked.injected, r.checked.expectedInjected);
    assert.ok(r.checked.injected > 0 && r.checked.skipped > 0, JSON.stringify(r.checked));
    assert.deepEqual(
      r.runs.map((x) => x.load),
      ["max", "rate"],
    );
    for (const run of r.runs) {
      assert.equal(run.errors, 0);
      assert.ok(run.reviewsPerS > 0 && run.p50Ms > 0 && run.p99Ms >= run.p50Ms, JSON.stringify(run));
      assert.ok(run.serverPeakRss > 0);
    }
    assert.ok(r.rows.some((row) => row.metric.startsWith("p99 at 100/s") && row.goal !== undefined));
  });
});
