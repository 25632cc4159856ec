import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { collectOnce, type CycleSource } from "./cycle.ts";
import type { Sample } from "./series.ts";

const sample = (name: string, t: number): Sample => ({
  labels: [{ name: "__name__", value: name }],
  value: 1,
  timestampMs: t,
});

function harness(sources: CycleSource[], push?: (s: readonly Sample[]) => void) {
  const pushed: Sample[][] = [];
  const failures: string[] = [];
  const errors: { obj: object; msg: string }[] = [];
  const opts = {
    sources,
    push: push ?? ((s: readonly Sample[]) => void pushed.push([...s])),
    log: { debug() {}, error: (obj: object, msg: string) => void errors.push({ obj, msg }) },
    failed: (source: string) => void failures.push(source),
  };
  return { opts, pushed, failures, errors };
}

describe("collectOnce", () => {
  it("pushes every source's samples at one timestamp", async () => {
    const h = harness([
      { name: "scrape", collect: async (t) => [sample("a", t)] },
      { name: "self", collect: (t) => [sample("b", t)] },
    ]);
    assert.equal(await collectOnce(h.opts, 42), 2);
    assert.deepEqual(h.pushed, [[sample("a", 42), sample("b", 42)]]);
    assert.deepEqual(h.failures, []);
  });

  it("a collect that throws synchronously loses only its own samples: logged, counted, the others pushed", async () => {
    const h = harness([
      {
        name: "scrape",
        collect: () => {
          throw new TypeError("collector bug");
        },
      },
      { name: "self", collect: async (t) => [sample("b", t)] },
    ]);
    assert.equal(await collectOnce(h.opts, 7), 1);
    assert.deepEqual(h.pushed, [[sample("b", 7)]]);
    assert.deepEqual(h.failures, ["scrape"]);
    assert.equal(h.errors.length, 1);
    assert.match(JSON.stringify(h.errors[0]!.obj), /"source":"scrape".*collector bug/);
  });

  it("a collect that rejects, and one that throws a non-Error, are handled alike", async () => {
    const h = harness([
      { name: "scrape", collect: () => Promise.reject(new Error("scrape bug")) },
      {
        name: "self",
        collect: () => {
          // What a dependency might do: the collector must cope with a thrown non-Error.
          // eslint-disable-next-line @typescript-eslint/only-throw-error
          throw "a string";
        },
      },
    ]);
    assert.equal(await collectOnce(h.opts, 7), 0);
    assert.deepEqual(h.pushed, []);
    assert.deepEqual(h.failures, ["scrape", "self"]);
  });

  it("a push that throws is caught, logged and counted; collectOnce never rejects", async () => {
    const h = harness([{ name: "self", collect: (t) => [sample("b", t)] }], () => {
      throw new Error("queue bug");
    });
    assert.equal(await collectOnce(h.opts, 7), 0);
    assert.deepEqual(h.failures, ["push"]);
    assert.match(JSON.stringify(h.errors[0]!.obj), /queue bug/);
  });
});
