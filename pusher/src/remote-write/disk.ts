// The disk buffer (BUFFER_DIR, BUFFER_MAX_BYTES): a write-ahead copy of the in-memory queue, so samples taken
// during an outage survive a pusher restart. It mirrors the queue as a stream: every sample that enters the queue is
// appended (in order), and every sample that leaves its front (sent, refused or dropped) is acknowledged by count.
// After a restart, readAll() gives back what was never acknowledged, oldest first.
//
// Layout: one file per append, `seg-<first sequence number>.mpb`, and `cursor.json` with the count of acknowledged
// samples. A segment is `MPB1` + payload length (u32 LE) + CRC-32 of the payload (u32 LE) + the payload (JSON).
// Files are written to a temporary name and renamed, so a crash never leaves half a segment under a real name; a
// segment that is damaged anyway (disk, hand edits) fails its length or CRC check and is skipped with a log line.
// No fsync: the buffer protects against a restart of the process, not of the machine (an emptyDir dies with the pod).
//
// A write that fails (ENOSPC, EIO, …) never makes the buffer lie. The samples of that append stay in memory only,
// counted (AppendResult.unwritten) and tracked: the buffer keeps, in stream order, runs of samples that are on disk
// and runs that are not, so an acknowledgement of samples that never reached the disk does not consume the disk
// copies of newer ones. Every later append tries the disk again, so writing resumes as soon as space returns. The
// cursor is rewritten in place (same size, same blocks), so acknowledging needs no free space.
import * as nodeFs from "node:fs";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Label, Sample } from "../series.ts";

export interface DiskBufferLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface DiskBufferOptions {
  /** Directory of the buffer; created when missing. Nothing else should write there. */
  readonly dir: string;
  /** Upper bound of the segment files' total size; the oldest segments are removed beyond it. */
  readonly maxBytes: number;
  readonly log: DiskBufferLog;
  /** Most samples in one segment file; larger appends are split (keeps eviction fine-grained). Default 5000. */
  readonly maxSegmentSamples?: number;
  /** The file operations that write, for tests that inject failures; node:fs by default. */
  readonly fs?: DiskFs;
}

/** The write side of node:fs that the buffer uses. */
export type DiskFs = Pick<typeof nodeFs, "openSync" | "writeSync" | "closeSync" | "renameSync" | "rmSync">;

export interface AppendResult {
  /** Samples of older segments removed from disk to stay within maxBytes (still in memory, lost on a restart). */
  readonly evicted: number;
  /** Samples of this append that could not be written (disk full, I/O error): in memory only, lost on a restart. */
  readonly unwritten: number;
}

export interface ReadOptions {
  /** With maxAgeMs: samples older than nowMs - maxAgeMs are left out and counted as tooOld. */
  readonly nowMs?: number;
  readonly maxAgeMs?: number;
}

export interface ReadResult {
  /** Unacknowledged samples, oldest first. */
  readonly samples: Sample[];
  /** Samples left out because they are older than the receiver accepts (Prometheus: out of bounds). */
  readonly tooOld: number;
  /** Segment files skipped (and removed) because they could not be read back. */
  readonly corruptSegments: number;
}

export interface DiskBuffer {
  /** Appends samples to the end of the stream (call in the order they enter the in-memory queue). */
  append(samples: readonly Sample[]): AppendResult;
  /**
   * The samples found on disk at open and not acknowledged, oldest first; call once at start and put them at the
   * front of the in-memory queue (later calls return nothing). Too-old samples are left out and acknowledged.
   */
  readAll(options?: ReadOptions): ReadResult;
  /** `count` samples left the front of the queue (delivered, refused or dropped): forget them on disk. */
  ack(count: number): void;
  /** Total size of the segment files now. */
  bytes(): number;
  /** Samples on disk not yet acknowledged. */
  pending(): number;
  /** Samples appended and not yet acknowledged that are not on disk (their write failed): lost on a restart. */
  notDurable(): number;
}

const MAGIC = Buffer.from("MPB1", "latin1");
const HEADER_BYTES = 12;
const SEGMENT = /^seg-(\d{16})\.mpb$/;
const CURSOR = "cursor.json";
/** The cursor is padded to this size, so that rewriting it in place never needs a new block. */
const CURSOR_BYTES = 64;

interface Segment {
  readonly file: string;
  readonly first: number;
  count: number;
  readonly size: number;
}

/** Payload of a segment: label sets stored once, samples refer to them by index. */
interface Payload {
  first: number;
  series: string[][];
  /** [series index, value, timestamp ms, stale 0|1]; non-finite values as strings ("NaN", "Inf", "-Inf"). */
  samples: [number, number | string, number, number][];
}

function encodeValue(v: number): number | string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Inf";
  if (v === -Infinity) return "-Inf";
  return v;
}

function decodeValue(v: unknown): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  throw new Error(`bad value ${JSON.stringify(v)}`);
}

function encodeSegment(first: number, samples: readonly Sample[]): Buffer {
  const index = new Map<string, number>();
  const series: string[][] = [];
  const rows: Payload["samples"] = [];
  for (const s of samples) {
    const flat = s.labels.flatMap((l) => [l.name, l.value]);
    const key = flat.join("\u0000");
    let i = index.get(key);
    if (i === undefined) {
      i = series.length;
      index.set(key, i);
      series.push(flat);
    }
    rows.push([i, encodeValue(s.value), s.timestampMs, s.stale ? 1 : 0]);
  }
  const payload = Buffer.from(JSON.stringify({ first, series, samples: rows } satisfies Payload), "utf8");
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(payload.length, 4);
  header.writeUInt32LE(crc32(payload), 8);
  return Buffer.concat([header, payload]);
}

function decodeSegment(buf: Buffer, expectedFirst: number): Sample[] {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, 4).equals(MAGIC)) throw new Error("bad magic");
  const length = buf.readUInt32LE(4);
  if (buf.length !== HEADER_BYTES + length)
    throw new Error(`length ${buf.length - HEADER_BYTES}, header says ${length}`);
  const payload = buf.subarray(HEADER_BYTES);
  if (crc32(payload) !== buf.readUInt32LE(8)) throw new Error("checksum mismatch");
  const p = JSON.parse(payload.toString("utf8")) as Payload;
  if (p.first !== expectedFirst || !Array.isArray(p.series) || !Array.isArray(p.samples))
    throw new Error("bad payload");
  const labelSets = p.series.map((flat) => {
    const labels: Label[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      labels.push(Object.freeze({ name: String(flat[i]), value: String(flat[i + 1]) }));
    return Object.freeze(labels);
  });
  return p.samples.map(([si, v, ts, stale]) => {
    const labels = labelSets[si];
    if (labels === undefined || typeof ts !== "number") throw new Error("bad sample");
    return stale === 1
      ? { labels, value: NaN, timestampMs: ts, stale: true }
      : { labels, value: decodeValue(v), timestampMs: ts };
  });
}

function segmentName(first: number): string {
  return `seg-${String(first).padStart(16, "0")}.mpb`;
}

/**
 * Writes via a temporary file and rename, so readers never see a partial file under the real name. A short write is
 * continued; a failed one removes the temporary file (it would hold the space that is missing) and throws.
 */
function writeAtomic(fs: DiskFs, path: string, data: Buffer): void {
  const tmp = `${path}.tmp`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "w");
    for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off, data.length - off);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* the write error is the one to report */
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* idem */
    }
    throw e;
  }
}

/** Rewrites the cursor in place, padded to a fixed size: no new block, so it works on a full disk. */
function writeCursor(fs: DiskFs, path: string, acked: number): void {
  const data = Buffer.alloc(CURSOR_BYTES, 0x20);
  data.write(JSON.stringify({ acked }), 0, "utf8");
  data[CURSOR_BYTES - 1] = 0x0a;
  let fd: number;
  try {
    fd = fs.openSync(path, "r+");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    fd = fs.openSync(path, "w");
  }
  try {
    for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off, data.length - off, off);
  } finally {
    fs.closeSync(fd);
  }
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

export function openDiskBuffer(options: DiskBufferOptions): DiskBuffer {
  const { dir, maxBytes, log } = options;
  const fs = options.fs ?? nodeFs;
  const maxSegmentSamples = options.maxSegmentSamples ?? 5000;
  if (!(maxBytes > 0)) throw new RangeError(`maxBytes must be > 0, got ${maxBytes}`);
  mkdirSync(dir, { recursive: true });

  // Segments are indexed from their file names; their sample counts are known once read (or written).
  const segments: Segment[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith(".tmp")) {
      fs.rmSync(join(dir, name), { force: true }); // left by a crash during a write: never complete
      continue;
    }
    const m = SEGMENT.exec(name);
    if (!m) continue;
    segments.push({ file: join(dir, name), first: Number(m[1]), count: -1, size: statSync(join(dir, name)).size });
  }

  let acked = 0;
  try {
    const c = JSON.parse(readFileSync(join(dir, CURSOR), "utf8")) as { acked?: unknown };
    if (typeof c.acked === "number" && Number.isSafeInteger(c.acked) && c.acked >= 0) acked = c.acked;
    else log.warn({ dir, file: CURSOR }, "Ignored unreadable disk buffer cursor; resending from the oldest segment");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      log.warn(
        { dir, file: CURSOR, err: (e as Error).message },
        "Ignored unreadable disk buffer cursor; resending from the oldest segment",
      );
    }
  }

  // The next sequence number continues after everything seen, so old and new segments never share a name.
  let next = acked;
  let total = 0;
  for (const s of segments) total += s.size;

  /**
   * The stream of samples appended and not yet acknowledged, in order, as runs on disk or not: acknowledgements
   * consume it from the front, and only the samples of runs on disk move the cursor.
   */
  const runs: { count: number; durable: boolean }[] = [];
  let volatile = 0;
  /** Set while writes fail: one warning per streak, and a line when they work again. */
  let failing: string | undefined;
  const failed = (what: string, e: unknown): void => {
    const code = errorCode(e);
    if (failing === undefined) {
      log.warn(
        { dir, err: (e as Error).message, code },
        `Disk buffer ${what} failed; samples not written stay in memory only until the disk accepts writes again`,
      );
    }
    failing = code;
  };
  const succeeded = (): void => {
    if (failing === undefined) return;
    failing = undefined;
    log.info({ dir }, "Disk buffer writable again");
  };

  const removeSegment = (s: Segment): void => {
    try {
      fs.rmSync(s.file, { force: true });
    } catch (e) {
      // Left behind, it is removed at the next start (acknowledged, or before the front).
      failed("removal", e);
    }
    total -= s.size;
  };
  let cursorSaved = true;
  const saveCursor = (): void => {
    try {
      writeCursor(fs, join(dir, CURSOR), acked);
      cursorSaved = true;
    } catch (e) {
      // Tried again at the next acknowledgement; until then a restart resends what was acknowledged since.
      cursorSaved = false;
      failed("cursor write", e);
    }
  };

  // Read everything once at open (bounded by maxBytes): sequence numbers must be known before anything is appended.
  let recovered: Sample[] = [];
  let corrupt = 0;
  let front = -1;
  const keep: Segment[] = [];
  let gap = false;
  for (const s of segments) {
    let samples: Sample[];
    try {
      samples = decodeSegment(readFileSync(s.file), s.first);
    } catch (e) {
      log.warn({ file: s.file, err: (e as Error).message }, "Skipped corrupt disk buffer segment");
      corrupt++;
      removeSegment(s);
      continue;
    }
    s.count = samples.length;
    next = Math.max(next, s.first + samples.length);
    if (s.first + samples.length <= acked) {
      removeSegment(s); // acknowledged before the restart; the removal had not happened yet
      continue;
    }
    if (keep.length > 0 && keep.at(-1)!.first + keep.at(-1)!.count !== s.first) gap = true;
    keep.push(s);
    const skip = Math.max(0, acked - s.first);
    if (front < 0) front = s.first + skip;
    for (let i = skip; i < samples.length; i++) recovered.push(samples[i]!);
  }
  segments.splice(0, segments.length, ...keep);
  // Segments evicted at the front leave a gap before it: the front is the first sample still there.
  acked = front >= 0 ? front : next;
  if (recovered.length > 0) runs.push({ count: recovered.length, durable: true });
  // Written at once, even with nothing to acknowledge, so that its block exists before the disk may fill up.
  saveCursor();
  // A corrupt segment in the middle leaves a gap that counting acknowledgements cannot step over: rewrite what was
  // recovered as one contiguous stream (rare, and bounded by maxBytes).
  if (gap) rewrite(recovered);

  return {
    readAll(opts: ReadOptions = {}): ReadResult {
      let out = recovered;
      recovered = [];
      let tooOld = 0;
      if (opts.maxAgeMs !== undefined && out.length > 0) {
        const oldest = (opts.nowMs ?? Date.now()) - opts.maxAgeMs;
        const fresh = out.filter((s) => s.timestampMs >= oldest);
        tooOld = out.length - fresh.length;
        if (tooOld > 0) {
          const firstFresh = out.findIndex((s) => s.timestampMs >= oldest);
          if (firstFresh === tooOld || firstFresh < 0) {
            // The usual case: too-old samples are a prefix of the stream; acknowledge them where they sit.
            ackInternal(tooOld);
          } else {
            // Not a prefix (the clock jumped): rewrite what is kept as a fresh stream.
            rewrite(fresh);
          }
        }
        out = fresh;
      }
      if (out.length > 0 || corrupt > 0 || tooOld > 0) {
        log.info({ dir, samples: out.length, tooOld, corruptSegments: corrupt, bytes: total }, "Loaded disk buffer");
      }
      const result = { samples: out, tooOld, corruptSegments: corrupt };
      corrupt = 0;
      return result;
    },

    append: (samples: readonly Sample[]): AppendResult => appendInternal(samples),
    ack: (count: number): void => ackInternal(count),
    bytes: () => total,
    pending: () => Math.max(0, next - acked),
    notDurable: () => volatile,
  };

  function rewrite(samples: readonly Sample[]): void {
    for (const s of segments) removeSegment(s);
    segments.length = 0;
    runs.length = 0;
    volatile = 0;
    acked = next;
    saveCursor();
    appendInternal(samples);
  }

  function addRun(count: number, durable: boolean): void {
    if (count === 0) return;
    const last = runs.at(-1);
    if (last !== undefined && last.durable === durable) last.count += count;
    else runs.push({ count, durable });
    if (!durable) volatile += count;
  }

  /** The oldest `n` samples on disk are gone from it (evicted): they are in memory only now. */
  function demote(n: number): void {
    for (let k = 0; k < runs.length && n > 0; k++) {
      const r = runs[k]!;
      if (!r.durable) continue;
      const m = Math.min(n, r.count);
      if (m < r.count) runs.splice(k + 1, 0, { count: r.count - m, durable: true });
      r.count = m;
      r.durable = false;
      volatile += m;
      n -= m;
    }
    // Neighbours of one kind merge, so the runs stay as few as the switches between disk and memory.
    for (let k = runs.length - 1; k > 0; k--) {
      if (runs[k]!.durable === runs[k - 1]!.durable) {
        runs[k - 1]!.count += runs[k]!.count;
        runs.splice(k, 1);
      }
    }
  }

  function appendInternal(samples: readonly Sample[]): AppendResult {
    let unwritten = 0;
    for (let i = 0; i < samples.length; i += maxSegmentSamples) {
      const chunk = samples.slice(i, i + maxSegmentSamples);
      if (unwritten > 0) {
        // This append already failed: the rest of it would too; the next append tries again.
        unwritten += chunk.length;
        addRun(chunk.length, false);
        continue;
      }
      const data = encodeSegment(next, chunk);
      const file = join(dir, segmentName(next));
      try {
        writeAtomic(fs, file, data);
      } catch (e) {
        failed("write", e);
        unwritten += chunk.length;
        addRun(chunk.length, false);
        continue;
      }
      succeeded();
      segments.push({ file, first: next, count: chunk.length, size: data.length });
      total += data.length;
      next += chunk.length;
      addRun(chunk.length, true);
    }
    if (!cursorSaved && unwritten === 0) saveCursor();
    let evicted = 0;
    while (total > maxBytes && segments.length > 0) {
      const s = segments.shift()!;
      evicted += Math.max(0, s.first + s.count - Math.max(acked, s.first));
      // The cursor moves past what is gone: the samples after it on disk are still the next durable ones.
      acked = Math.max(acked, s.first + s.count);
      removeSegment(s);
    }
    if (evicted > 0) {
      demote(evicted);
      saveCursor();
      log.warn({ dir, evicted, maxBytes }, "Disk buffer full: oldest samples no longer survive a restart");
    }
    return { evicted, unwritten };
  }

  function ackInternal(count: number): void {
    if (!(count > 0)) return;
    let durable = 0;
    let left = count;
    while (left > 0 && runs.length > 0) {
      const r = runs[0]!;
      const n = Math.min(left, r.count);
      if (r.durable) durable += n;
      else volatile -= n;
      r.count -= n;
      left -= n;
      if (r.count === 0) runs.shift();
    }
    if (durable === 0) return; // only samples that never reached the disk left: nothing on disk changes
    acked = Math.min(next, acked + durable);
    // The cursor first: if it cannot be written, the segments stay, and a restart resends rather than loses.
    saveCursor();
    if (!cursorSaved) return;
    while (segments.length > 0 && segments[0]!.first + segments[0]!.count <= acked) removeSegment(segments.shift()!);
  }
}
