import { it } from "node:test";
import assert from "node:assert/strict";
import { formatQuantity, parseQuantity, QUANTITY_PATTERN } from "./quantity.ts";

const cases: [unknown, number | undefined][] = [
  [268435456, 268435456],
  ["268435456", 268435456],
  ["256Mi", 256 * 2 ** 20],
  ["1Gi", 2 ** 30],
  ["500M", 5e8],
  ["12", 12],
  ["1e3", 1000],
  ["1E6", 1e6],
  ["500m", 0.5],
  ["1.5Gi", 1.5 * 2 ** 30],
  [" 64Ki ", 65536],
  ["1Pi", 2 ** 50],
  ["-1", -1],
  ["lots", undefined],
  ["1 Gi", undefined],
  ["", undefined],
  [Number.NaN, undefined],
  [null, undefined],
  [{}, undefined],
];
for (const [q, value] of cases) {
  it(`parseQuantity(${JSON.stringify(q)}) = ${value}`, () => assert.equal(parseQuantity(q), value));
}

it("the pattern and the parser agree on the grammar's forms", () => {
  const re = new RegExp(QUANTITY_PATTERN);
  for (const q of ["1", "1.5", ".5", "+1", "-1", "1Ki", "1Ei", "1n", "1u", "1m", "1k", "1E", "1e3", "1e-3", "1e+3"]) {
    assert.ok(re.test(q), q);
    assert.notEqual(parseQuantity(q), undefined, q);
  }
  for (const q of ["1e1.5", "Mi", "1 Mi", "1mi", "1KiB", "0x10"]) {
    assert.equal(re.test(q), false, q);
    assert.equal(parseQuantity(q), undefined, q);
  }
});

it("formatQuantity keeps strings and writes numbers in full", () => {
  assert.equal(formatQuantity(268435456), "268435456");
  assert.equal(formatQuantity("256Mi"), "256Mi");
});
