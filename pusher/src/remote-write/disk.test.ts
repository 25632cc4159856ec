import { strict as assert } from "node:assert";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { Sample } from "../series.ts";
import * as fs from "node:fs";
import { openDiskBuffer, type DiskBufferLog, type DiskFs } from "./disk.ts";

/** node:fs with switchable failures: writes (ENOSPC by default), opens of the cursor, and short writes. */
function faultyFs(): DiskFs & { fail: string | undefined; cursorFail: string | undefined; maxWrite: number } {
  const f = {
    fail: undefined as string | undefined,
    cursorFail: undefined as string | undefined,
    maxWrite: Infinity,
    openSync: ((path: fs.PathLike, flags?: fs.OpenMode) => {
      if (f.cursorFail && String(path).endsWith("cursor.json")) throw errno(f.cursorFail);
      return fs.openSync(path, flags ?? "r");
    }) as typeof fs.openSync,
    writeSync: ((fd: number, buf: Buffer, off: number, len: number, pos?: number) => {
      if (f.fail) throw errno(f.fail);
      return fs.writeSync(fd, buf, off, Math.min(len, f.maxWrite), pos);
    }) as typeof fs.writeSync,
    closeSync: fs.closeSync,
    renameSync: fs.renameSync,
    rmSync: fs.rmSync,
  };
  return f;
}
function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

function sample(name: string, ts: number, value = ts): Sample {
  return {
    labels: [
      { name: "__name__", value: name },
      { name: "job", value: "t" },
    ],
    value,
    timestampMs: ts,
  };
}

function recorder(): DiskBufferLog & { lines: { level: string; obj: object; msg: string }[] } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: "info", obj, msg }),
    warn: (obj, msg) => lines.push({ level: "warn", obj, msg }),
  };
}

const segmentFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.startsWith("seg-"))
    .sort();

describe("disk buffer", () => {
  let dir = "";
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "mp-disk-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("gives back every appended sample after a reopen, in order, values and stale markers intact", () => {
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.deepEqual(a.readAll().samples, []);
    const batch1 = [sample("a", 1000), sample("b", 1000, NaN), sample("c", 1000, Infinity)];
    const batch2 = [sample("a", 2000, -Infinity), { ...sample("b", 2000), stale: true, value: NaN }];
    a.append(batch1);
    a.append(batch2);
    assert.equal(a.pending(), 5);

    const b = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    const got = b.readAll().samples;
    assert.equal(got.length, 5);
    assert.deepEqual(
      got.map((s) => [s.labels[0]!.value, s.timestampMs]),
      [
        ["a", 1000],
        ["b", 1000],
        ["c", 1000],
        ["a", 2000],
        ["b", 2000],
      ],
    );
    assert.ok(Number.isNaN(got[1]!.value) && got[1]!.stale !== true);
    assert.equal(got[2]!.value, Infinity);
    assert.equal(got[3]!.value, -Infinity);
    assert.equal(got[4]!.stale, true);
    assert.deepEqual(got[0]!.labels, batch1[0]!.labels);
  });

  it("forgets acknowledged samples, also across segment boundaries and restarts", () => {
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    a.readAll();
    a.append([sample("x", 1), sample("x", 2), sample("x", 3)]);
    a.append([sample("x", 4), sample("x", 5)]);
    a.ack(4); // the first segment is gone, one sample of the second is acknowledged
    assert.equal(segmentFiles(dir).length, 1);
    assert.equal(a.pending(), 1);

    const b = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.deepEqual(
      b.readAll().samples.map((s) => s.timestampMs),
      [5],
    );
    b.append([sample("x", 6)]);
    b.ack(1); // sample 5
    const c = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.deepEqual(
      c.readAll().samples.map((s) => s.timestampMs),
      [6],
    );
    c.ack(1);
    assert.equal(c.pending(), 0);
    assert.equal(segmentFiles(dir).length, 0);
    const d = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.deepEqual(d.readAll().samples, []);
  });

  it("stays within maxBytes by removing the oldest segments, and says how many samples that cost", () => {
    const log = recorder();
    const maxBytes = 4096;
    const a = openDiskBuffer({ dir, maxBytes, log });
    a.readAll();
    let evicted = 0;
    for (let t = 0; t < 200; t++) {
      evicted += a.append([sample("m", t), sample("n", t)]).evicted;
      assert.ok(a.bytes() <= maxBytes, `${a.bytes()} bytes on disk after append ${t}, bound ${maxBytes}`);
    }
    assert.ok(evicted > 0, "nothing evicted");
    assert.ok(log.lines.some((l) => l.level === "warn" && /Disk buffer full/.test(l.msg)));
    const b = openDiskBuffer({ dir, maxBytes, log: recorder() });
    const got = b.readAll().samples;
    assert.equal(got.length + evicted, 400, "kept + evicted = appended");
    // The newest survive, contiguous and in order.
    assert.equal(got.at(-1)!.timestampMs, 199);
    for (let i = 1; i < got.length; i++) assert.ok(got[i]!.timestampMs >= got[i - 1]!.timestampMs);
  });

  it("skips a corrupt, truncated or foreign segment with a log line and keeps the rest", () => {
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    a.readAll();
    a.append([sample("a", 1)]);
    a.append([sample("a", 2)]);
    a.append([sample("a", 3)]);
    a.append([sample("a", 4)]);
    const files = segmentFiles(dir);
    assert.equal(files.length, 4);
    const flip = readFileSync(join(dir, files[1]!));
    flip[flip.length - 3] = flip[flip.length - 3]! ^ 0xff;
    writeFileSync(join(dir, files[1]!), flip);
    const cut = readFileSync(join(dir, files[2]!));
    writeFileSync(join(dir, files[2]!), cut.subarray(0, cut.length - 5));
    writeFileSync(join(dir, "seg-9999999999999999.mpb"), "not a segment at all");
    writeFileSync(join(dir, "seg-0000000000000077.mpb.tmp"), "half written");

    const log = recorder();
    const b = openDiskBuffer({ dir, maxBytes: 1 << 20, log });
    const r = b.readAll();
    assert.deepEqual(
      r.samples.map((s) => s.timestampMs),
      [1, 4],
    );
    assert.equal(r.corruptSegments, 3);
    const warnings = log.lines.filter((l) => l.level === "warn" && l.msg === "Skipped corrupt disk buffer segment");
    assert.equal(warnings.length, 3);
    assert.ok(
      readdirSync(dir).every((f) => !f.endsWith(".tmp")),
      "leftover temporary file not removed",
    );
    // The stream goes on after the gap: new samples and acknowledgements still line up.
    b.append([sample("a", 5)]);
    b.ack(2);
    const c = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.deepEqual(
      c.readAll().samples.map((s) => s.timestampMs),
      [5],
    );
  });

  it("leaves out samples older than the receiver accepts, counts them and never returns them again", () => {
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    a.readAll();
    a.append([sample("a", 1_000), sample("b", 1_000)]);
    a.append([sample("a", 50_000), sample("b", 50_000)]);
    a.append([sample("a", 90_000)]);
    const b = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    const r = b.readAll({ nowMs: 100_000, maxAgeMs: 60_000 });
    assert.equal(r.tooOld, 2);
    assert.deepEqual(
      r.samples.map((s) => s.timestampMs),
      [50_000, 50_000, 90_000],
    );
    const c = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.equal(c.readAll({ nowMs: 100_000, maxAgeMs: 60_000 }).samples.length, 3);
  });

  it("keeps a stream whose timestamps are not ordered consistent when dropping too-old samples", () => {
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    a.readAll();
    a.append([sample("a", 90_000), sample("b", 1_000), sample("c", 95_000)]);
    const b = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    const r = b.readAll({ nowMs: 100_000, maxAgeMs: 60_000 });
    assert.equal(r.tooOld, 1);
    assert.deepEqual(
      r.samples.map((s) => s.labels[0]!.value),
      ["a", "c"],
    );
    b.ack(1); // "a" delivered
    const c = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    assert.deepEqual(
      c.readAll().samples.map((s) => s.labels[0]!.value),
      ["c"],
    );
  });

  it("ignores an unreadable cursor with a log line and resends from the oldest segment", () => {
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() });
    a.readAll();
    a.append([sample("a", 1), sample("a", 2)]);
    a.ack(1);
    writeFileSync(join(dir, "cursor.json"), "{garbage");
    const log = recorder();
    const b = openDiskBuffer({ dir, maxBytes: 1 << 20, log });
    assert.deepEqual(
      b.readAll().samples.map((s) => s.timestampMs),
      [1, 2],
    );
    assert.ok(log.lines.some((l) => l.level === "warn" && /cursor/.test(l.msg)));
  });

  it("on a failed write (ENOSPC, EIO) keeps the samples in memory only, counted, and acknowledging them never consumes newer disk copies", () => {
    for (const code of ["ENOSPC", "EIO"]) {
      const d = join(dir, code);
      const f = faultyFs();
      const log = recorder();
      const a = openDiskBuffer({ dir: d, maxBytes: 1 << 20, log, fs: f });
      a.readAll();
      assert.deepEqual(a.append([sample("a", 1), sample("a", 2)]), { evicted: 0, unwritten: 0 });
      f.fail = code;
      assert.deepEqual(a.append([sample("a", 3), sample("a", 4), sample("a", 5)]), { evicted: 0, unwritten: 3 });
      assert.equal(a.notDurable(), 3);
      assert.deepEqual(
        readdirSync(d).filter((x) => x.endsWith(".tmp")),
        [],
        "a failed write left its temporary file (holding the space that is missing)",
      );
      f.fail = undefined;
      assert.deepEqual(a.append([sample("a", 6), sample("a", 7)]), { evicted: 0, unwritten: 0 }, "writing resumes");
      assert.ok(log.lines.some((l) => l.level === "warn" && (l.obj as { code?: string }).code === code));
      assert.ok(log.lines.some((l) => /writable again/.test(l.msg)));
      // The queue acknowledges in stream order: 1, 2 (on disk), then 3, 4, 5 (memory only).
      a.ack(2);
      a.ack(3);
      assert.equal(a.notDurable(), 0);
      const b = openDiskBuffer({ dir: d, maxBytes: 1 << 20, log: recorder() });
      assert.deepEqual(
        b.readAll().samples.map((x) => x.timestampMs),
        [6, 7],
        `${code}: the unsent samples written after the failure must survive a restart`,
      );
    }
  });

  it("acknowledges on a full disk: the cursor is rewritten in place, and a cursor that cannot be written keeps the segments", () => {
    const f = faultyFs();
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder(), fs: f });
    a.readAll();
    a.append([sample("a", 1)]);
    a.append([sample("a", 2)]);
    a.append([sample("a", 3)]);
    const size = fs.statSync(join(dir, "cursor.json")).size;
    a.ack(1);
    assert.equal(fs.statSync(join(dir, "cursor.json")).size, size, "the cursor changed size");
    f.cursorFail = "EIO";
    a.ack(1); // cannot be saved: sample 2 stays on disk and comes back after a restart (sent twice, never lost)
    assert.equal(segmentFiles(dir).length, 2);
    assert.deepEqual(
      openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() })
        .readAll()
        .samples.map((x) => x.timestampMs),
      [2, 3],
    );
    f.cursorFail = undefined;
    a.append([sample("a", 4)]); // the cursor is saved again at the next write
    assert.deepEqual(
      openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder() })
        .readAll()
        .samples.map((x) => x.timestampMs),
      [3, 4],
    );
  });

  it("completes short writes instead of renaming a truncated segment", () => {
    const f = faultyFs();
    f.maxWrite = 7;
    const a = openDiskBuffer({ dir, maxBytes: 1 << 20, log: recorder(), fs: f });
    a.readAll();
    a.append([sample("a", 1), sample("b", 1)]);
    const log = recorder();
    const got = openDiskBuffer({ dir, maxBytes: 1 << 20, log }).readAll();
    assert.equal(got.corruptSegments, 0);
    assert.equal(got.samples.length, 2);
  });

  it("samples evicted for maxBytes are memory only; acknowledging them leaves the newer ones on disk", () => {
    const a = openDiskBuffer({ dir, maxBytes: 600, log: recorder(), maxSegmentSamples: 2 });
    a.readAll();
    let evicted = 0;
    for (let t = 1; t <= 10; t++) evicted += a.append([sample("a", t)]).evicted;
    assert.ok(evicted > 0, "nothing was evicted");
    assert.equal(a.notDurable(), evicted);
    a.ack(evicted); // the oldest samples leave the queue first
    assert.equal(a.notDurable(), 0);
    assert.deepEqual(
      openDiskBuffer({ dir, maxBytes: 600, log: recorder() })
        .readAll()
        .samples.map((x) => x.timestampMs),
      Array.from({ length: 10 - evicted }, (_, k) => evicted + 1 + k),
    );
  });
});
