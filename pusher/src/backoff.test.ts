import { it } from "node:test";
import assert from "node:assert/strict";
import { backoffMs } from "./backoff.ts";

it("doubles from initialMs up to maxMs", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 10, 1000].map((a) => backoffMs(a, 500, 30_000)),
    [500, 1000, 2000, 4000, 30_000, 30_000],
  );
});

it("with jitter stays between half and all of the delay", () => {
  assert.equal(
    backoffMs(2, 500, 30_000, () => 0),
    1000,
  );
  assert.equal(
    backoffMs(2, 500, 30_000, () => 1),
    2000,
  );
  assert.equal(
    backoffMs(2, 500, 30_000, () => 0.5),
    1500,
  );
  for (let i = 0; i < 100; i++) {
    const d = backoffMs(3, 30, 5000, Math.random);
    assert.ok(d >= 120 && d <= 240, String(d));
  }
});
