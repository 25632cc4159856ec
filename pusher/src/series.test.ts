import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { seriesKey, type Labels } from "./series.ts";

const l = (...pairs: [string, string][]): Labels => pairs.map(([name, value]) => ({ name, value }));

describe("seriesKey", () => {
  it("tells apart label sets whose joined text would be the same", () => {
    const cases: [Labels, Labels][] = [
      [l(["a", "x\u0000b"]), l(["a", "x"], ["b", ""])],
      [l(["a", "1:b"]), l(["a", "1"])],
      [l(["a", "bc"]), l(["ab", "c"])],
      [l(["a", "x\u0001y"]), l(["a", "x"], ["y", ""])],
    ];
    for (const [x, y] of cases) assert.notEqual(seriesKey(x), seriesKey(y), JSON.stringify([x, y]));
  });

  it("is the same for equal label sets, whether or not the object is the same", () => {
    const a = l(["__name__", "up"], ["job", "builder"]);
    assert.equal(seriesKey(a), seriesKey(a));
    assert.equal(seriesKey(a), seriesKey(l(["__name__", "up"], ["job", "builder"])));
  });
});
