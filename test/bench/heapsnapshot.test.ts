// The heap snapshot summary against a snapshot of this process taken by V8 itself, holding objects of a class whose
// count and retained size are known: the dominator-tree arithmetic must find them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import v8 from "node:v8";
import { formatSummary, summariseFile } from "./lib/heapsnapshot.ts";

class HeapSummaryProbe {
  readonly payload: string;
  readonly index: number;
  constructor(i: number) {
    // A distinct flat 10,000-character one-byte string per object, held only by it (padEnd or repeat would build
    // strings that share their parts, which no single object dominates).
    this.payload = randomBytes(5000).toString("hex");
    this.index = i;
  }
}

describe("heap snapshot summary", () => {
  it("sums retained size by constructor over V8's own snapshot", () => {
    const held = Array.from({ length: 1000 }, (_, i) => new HeapSummaryProbe(i));
    const dir = mkdtempSync(join(tmpdir(), "heapsnapshot-test-"));
    try {
      const file = v8.writeHeapSnapshot(join(dir, "t.heapsnapshot"));
      const s = summariseFile(file);
      const probe = s.classes.find((c) => c.name === "HeapSummaryProbe");
      assert.ok(probe, formatSummary(s, 10));
      assert.equal(probe.count, held.length);
      // Each object retains its own string (10,000 bytes and a header) beyond its own few bytes.
      assert.ok(probe.retainedBytes >= 1000 * 10_000, `${probe.retainedBytes}`);
      assert.ok(probe.retainedBytes < 1000 * 12_000, `${probe.retainedBytes}`);
      assert.ok(probe.selfBytes < probe.retainedBytes / 10, JSON.stringify(probe));
      assert.ok(s.totalBytes >= probe.retainedBytes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(held.length, 1000); // keeps them alive until the snapshot is taken
  });
});
