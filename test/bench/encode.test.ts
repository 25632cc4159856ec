// Smoke run of the encoding benchmark: both sides encode the same content, the benchmark produces its rows, and the
// profiling path finds the encoder. Checks that the benchmark works, not how fast anything is.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchEncode, checkSameContent, PEER_NAME } from "./encode.ts";
import { hotSpots } from "./lib/profile.ts";
import { REPO } from "./lib/senders.ts";

describe("encode benchmark (smoke)", () => {
  it("feeds both encoders the same 2,000 series and gets the same content back", async () => {
    const c = await checkSameContent(2000);
    assert.equal(c.series, 2000);
    assert.equal(c.rawIdentical, true, "the uncompressed protobuf bodies differ");
    assert.ok(c.oursBytes > 0 && c.peerBytes > 0);
  });

  it("measures ours and the peer and reports one row per figure", async () => {
    const r = await benchEncode({ series: 200, rounds: 2, roundMs: 50 });
    assert.equal(r.ours.rates.length, 2);
    assert.equal(r.peer.rates.length, 2);
    for (const rate of [...r.ours.rates, ...r.oursCold.rates, ...r.peer.rates])
      assert.ok(rate > 0 && Number.isFinite(rate));
    assert.deepEqual(
      r.rows.map((row) => [row.metric, row.peer?.name]),
      [
        ["samples/s (200 series, steady)", PEER_NAME],
        ["samples/s (200 series, cold labels)", PEER_NAME],
        ["compressed bytes", PEER_NAME],
      ],
    );
  });

  it("profiles the encoder loop and names its hot functions", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-prof-test-"));
    try {
      const r = spawnSync(
        process.execPath,
        [
          "--cpu-prof",
          `--cpu-prof-dir=${dir}`,
          "--conditions=source",
          join(REPO, "test/bench/encode-loop.ts"),
          "500",
          "300",
          "steady",
        ],
        {
          encoding: "utf8",
        },
      );
      assert.equal(r.status, 0, r.stderr);
      const pushes = (JSON.parse(r.stdout) as { pushes: number }).pushes;
      assert.ok(pushes > 0);
      const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
      assert.ok(file, "no .cpuprofile written");
      const spots = hotSpots(join(dir, file), 30);
      const total = spots.reduce((s, h) => s + h.selfPct, 0);
      assert.ok(total > 50 && total <= 100.0001, `hot spots cover ${total}%`);
      assert.ok(
        spots.some((s) => s.where.includes("remote-write/encode.ts") || s.where.includes("snappyjs")),
        JSON.stringify(spots),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
