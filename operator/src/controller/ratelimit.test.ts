import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TokenBucket } from "./ratelimit.ts";

describe("TokenBucket", () => {
  it("allows a burst of capacity, then one per interval/capacity", () => {
    let now = 0;
    const b = new TokenBucket(5, 60_000, () => now);
    const taken = Array.from({ length: 7 }, () => b.tryTake());
    assert.deepEqual(taken, [true, true, true, true, true, false, false]);
    assert.equal(b.waitMs(), 12_000);
    now += 11_999;
    assert.equal(b.tryTake(), false);
    now += 1;
    assert.equal(b.tryTake(), true);
    assert.equal(b.tryTake(), false);
  });
  it("never holds more than capacity after a long idle time", () => {
    let now = 0;
    const b = new TokenBucket(2, 1000, () => now);
    now += 1_000_000;
    assert.deepEqual([b.tryTake(), b.tryTake(), b.tryTake()], [true, true, false]);
  });
  it("reports no wait while tokens are left", () => {
    const b = new TokenBucket(1, 1000, () => 0);
    assert.equal(b.waitMs(), 0);
  });
});
