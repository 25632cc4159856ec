import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkQueue } from "./queue.ts";

describe("WorkQueue", () => {
  it("deduplicates queued keys", async () => {
    const seen: string[] = [];
    const q = new WorkQueue({ process: async (k) => void seen.push(k) });
    q.add("a");
    q.add("a");
    q.add("b");
    q.add("a");
    await q.idle();
    assert.deepEqual(seen, ["a", "b"]);
    await q.stop();
  });

  it("never runs one key twice at once; a key added while running runs again afterwards", async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const q = new WorkQueue({
      concurrency: 4,
      process: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs++;
        await sleep(20);
        running--;
      },
    });
    q.add("a");
    await sleep(5);
    q.add("a");
    q.add("a");
    await sleep(100);
    await q.idle();
    assert.equal(maxRunning, 1);
    assert.equal(runs, 2);
    await q.stop();
  });

  it("retries failures with growing backoff", async () => {
    const times: number[] = [];
    const q = new WorkQueue({
      backoffInitialMs: 20,
      process: async () => {
        times.push(Date.now());
        if (times.length < 3) throw new Error("boom");
      },
    });
    q.add("k");
    const deadline = Date.now() + 2000;
    while (times.length < 3 && Date.now() < deadline) await sleep(5);
    assert.equal(times.length, 3);
    assert.ok(times[1]! - times[0]! >= 18, `first retry after ${times[1]! - times[0]!} ms`);
    assert.ok(times[2]! - times[1]! >= 38, `second retry after ${times[2]! - times[1]!} ms`);
    await q.stop();
  });

  it("runs a key again after the requeueAfterMs its process returned, without counting a failure", async () => {
    const times: number[] = [];
    const errors: number[] = [];
    const q = new WorkQueue({
      backoffInitialMs: 5000,
      onError: (_k, _e, attempt) => errors.push(attempt),
      process: async () => {
        times.push(Date.now());
        return times.length < 3 ? { requeueAfterMs: 40 } : {};
      },
    });
    q.add("k");
    const deadline = Date.now() + 2000;
    while (times.length < 3 && Date.now() < deadline) await sleep(5);
    await sleep(100);
    assert.equal(times.length, 3, "two requeues, then none");
    assert.ok(times[1]! - times[0]! >= 38, `requeued after ${times[1]! - times[0]!} ms`);
    assert.deepEqual(errors, []);
    await q.stop();
  });

  it("reports adds, depth, retries, waits and work to its observer", async () => {
    const seen = { added: 0, retried: 0, waited: [] as number[], worked: [] as number[], depth: [] as number[] };
    let failOnce = true;
    const q = new WorkQueue({
      backoffInitialMs: 10,
      observer: {
        added: () => void seen.added++,
        depth: (n) => void seen.depth.push(n),
        retried: () => void seen.retried++,
        waited: (s) => void seen.waited.push(s),
        worked: (s) => void seen.worked.push(s),
      },
      process: async (k) => {
        await sleep(15);
        if (k === "b" && failOnce) {
          failOnce = false;
          throw new Error("once");
        }
      },
    });
    q.add("a");
    q.add("a"); // already waiting: not an add
    q.add("b");
    assert.deepEqual(seen.depth, [1, 2]);
    const deadline = Date.now() + 2000;
    while (seen.worked.length < 3 && Date.now() < deadline) await sleep(5);
    await q.idle();
    assert.equal(seen.added, 3, "a, b, and b again after its backoff");
    assert.equal(seen.retried, 1);
    assert.equal(seen.waited.length, 3);
    assert.equal(seen.worked.length, 3);
    assert.ok(
      seen.worked.every((s) => s >= 0.01),
      `work durations ${seen.worked.join(", ")}`,
    );
    assert.ok(seen.waited.every((s) => s >= 0 && s < 1));
    assert.equal(seen.depth.at(-1), 0);
    await q.stop();
  });

  it("addAfter keeps the earliest pending time", async () => {
    const seen: number[] = [];
    const start = Date.now();
    const q = new WorkQueue({ process: async () => void seen.push(Date.now() - start) });
    q.addAfter("k", 500);
    q.addAfter("k", 30);
    q.addAfter("k", 400);
    await sleep(700);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]! < 300, `ran after ${seen[0]} ms`);
    await q.stop();
  });

  it("stop() drops queued work and pending timers", async () => {
    const seen: string[] = [];
    const q = new WorkQueue({ process: async (k) => void seen.push(k) });
    q.addAfter("later", 30);
    await q.stop();
    q.add("after-stop");
    await sleep(60);
    assert.deepEqual(seen, []);
  });
});
