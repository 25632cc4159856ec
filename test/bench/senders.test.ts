// Smoke run of the forwarding and idle benchmarks: each sender (ours, vmagent, Prometheus agent) is started by the
// benchmark, delivers to a real Prometheus, is measured from /proc and is gone afterwards. Small target, short
// windows: this checks that the benchmarks work, not how fast anything is.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import { benchForward, FORWARD_SENDERS } from "./forward.ts";
import { BARE, benchIdle, FLOOR } from "./idle.ts";
import { readdirSync, readFileSync } from "node:fs";
import { startedPids, startProcess } from "./lib/procs.ts";
import { SenderKind, shippedSidecarMemoryLimit } from "./lib/senders.ts";

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("forward and idle benchmarks (smoke)", () => {
  let receiver: Receiver;
  before(async () => {
    receiver = await startPrometheus();
  });
  after(async () => {
    await receiver?.stop();
  });

  it("forwards a 300-series target with ours, vmagent and Prometheus agent and counts what arrived", async () => {
    const series = 300;
    const r = await benchForward({
      receiver,
      series,
      runs: 1,
      warmupS: 0,
      windowS: 3,
      drainS: 2,
      prefer: "source",
      senders: FORWARD_SENDERS.filter((sp) => sp.name !== "ours-unlimited"),
      idleBaseline: { windowS: 1 },
    });
    assert.deepEqual(
      r.runs.map((x) => x.name),
      ["ours", "vmagent", "prometheus-agent"],
    );
    for (const run of r.runs) {
      // The target's series plus the scrape's own (up, scrape_duration_seconds, ...: 5 to 6 depending on the sender).
      assert.ok(run.series >= series && run.series <= series + 10, `${run.name} delivered ${run.series} series`);
      // A 3 s window at 1 s holds about 3 scrapes; allow one to straddle the window's edges.
      assert.ok(
        run.samples >= series * 2 && run.samples <= (series + 10) * 4,
        `${run.name} delivered ${run.samples} samples in the window`,
      );
      assert.ok(run.cpuS >= 0 && run.peakRss > 0 && run.rssAnon > 0 && run.rssAnon <= run.rss, JSON.stringify(run));
    }
    const metrics = r.rows.map((row) => `${row.metric} vs ${row.peer?.name}`);
    assert.ok(metrics.includes("CPU per million samples (ours) vs vmagent"));
    assert.ok(metrics.includes("peak RSS (ours) vs prometheus-agent"));
    // Bytes per series needs each sender idle as well, in the same run.
    assert.deepEqual(
      r.idle.map((x) => x.name),
      ["ours", "vmagent", "prometheus-agent"],
    );
    for (const run of r.idle) assert.ok(run.peakRss > 0, JSON.stringify(run));
    const bytes = r.rows.find(
      (row) => row.metric.startsWith("bytes per series") && row.peer?.name === "prometheus-agent",
    );
    assert.ok(bytes?.goal !== undefined && Number.isFinite(bytes.ours), JSON.stringify(bytes));
    assert.ok(
      r.rows.some((row) => row.metric === "every sample delivered (ours)" && row.goal !== undefined),
      "the delivery row is there",
    );
  });

  it("measures each idle sender pushing only its own metrics", async () => {
    const r = await benchIdle({
      receiver,
      runs: 1,
      warmupS: 0,
      windowS: 2,
      drainS: 1,
      prefer: "source",
      senders: [
        { kind: SenderKind.ours, name: "ours" },
        { kind: SenderKind.vmagent, name: "vmagent" },
        { kind: SenderKind.promAgent, name: "prometheus-agent" },
      ],
    });
    for (const run of r.runs.filter((x) => x.name !== FLOOR && x.name !== BARE)) {
      assert.ok(run.series > 0, `${run.name} delivered no series of its own`);
      assert.ok(run.peakRss > 0 && run.rss <= run.peakRss, JSON.stringify(run));
    }
    // The floor (the pusher's start imports) and bare Node ran beside them, and bare Node is the smaller.
    const floor = r.runs.find((x) => x.name === FLOOR);
    const bare = r.runs.find((x) => x.name === BARE);
    assert.ok(floor && bare && bare.peakRss > 0 && floor.peakRss > bare.peakRss, JSON.stringify({ floor, bare }));
    // Both idle goals are printed with their reference: the floor for peak RSS, Prometheus agent for private memory.
    const goal = (metric: string, peer: string) =>
      r.rows.find((row) => row.metric === metric && row.peer?.name.startsWith(peer) && row.goal !== undefined);
    assert.ok(goal("peak RSS (ours)", "floor"), JSON.stringify(r.rows));
    assert.ok(goal("private RSS, RssAnon (ours)", "prometheus-agent"), JSON.stringify(r.rows));
  });

  it("runs ours in the sidecar's default memory limit, which Node sees, and removes the cgroup afterwards", async () => {
    const limit = shippedSidecarMemoryLimit();
    assert.equal(limit, 192 * 1024 * 1024, "SIDECAR_RESOURCES' default limit, 192Mi");
    const proc = startProcess("constrained", process.execPath, ["-e", "console.log(process.constrainedMemory())"], {
      memoryLimit: limit,
    });
    assert.equal(await proc.exited, 0, proc.tail());
    assert.equal(readFileSync(proc.logPath, "utf8").trim(), String(limit));
    assert.equal(proc.memoryLimit?.oomKills(), 0);
    const left = async (): Promise<string[]> => {
      for (let i = 0; i < 100; i++) {
        const dirs = ["/sys/fs/cgroup", "/sys/fs/cgroup/memory"].flatMap((d) => {
          try {
            return readdirSync(d).filter((n) => n.startsWith(`metrics-pusher-bench-${process.pid}-`));
          } catch {
            return [];
          }
        });
        if (dirs.length === 0) return [];
        await new Promise((r) => setTimeout(r, 20));
      }
      return ["still there after 2 s"];
    };
    assert.deepEqual(await left(), []);
  });

  it("leaves no sender running", () => {
    // Every pid the benchmark started has been killed and reaped by now.
    const pids = startedPids();
    assert.ok(pids.length >= 6, `only ${pids.length} processes were started`);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still alive`);
  });
});
