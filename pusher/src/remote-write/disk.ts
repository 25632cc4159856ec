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
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
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
}

export interface AppendResult {
  /** Samples of older segments removed from disk to stay within maxBytes (still in memory, lost on a restart). */
  readonly evicted: number;
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
}

const MAGIC = Buffer.from("MPB1", "latin1");
const HEADER_BYTES = 12;
const SEGMENT = /^seg-(\d{16})\.mpb$/;
const CURSOR = "cursor.json";

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

/** Writes via a temporary file and rename, so readers never see a partial file under the real name. */
function writeAtomic(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    if (typeof data === "string") writeSync(fd, data);
    else writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function openDiskBuffer(options: DiskBufferOptions): DiskBuffer {
  const { dir, maxBytes, log } = options;
  const maxSegmentSamples = options.maxSegmentSamples ?? 5000;
  if (!(maxBytes > 0)) throw new RangeError(`maxBytes must be > 0, got ${maxBytes}`);
  mkdirSync(dir, { recursive: true });

  // Segments are indexed from their file names; their sample counts are known once read (or written).
  const segments: Segment[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith(".tmp")) {
      rmSync(join(dir, name), { force: true }); // left by a crash during a write: never complete
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

  const removeSegment = (s: Segment): void => {
    rmSync(s.file, { force: true });
    total -= s.size;
  };
  const saveCursor = (): void => writeAtomic(join(dir, CURSOR), JSON.stringify({ acked }));

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
  if (segments.length > 0 || corrupt > 0) saveCursor();
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
  };

  function rewrite(samples: readonly Sample[]): void {
    for (const s of segments) removeSegment(s);
    segments.length = 0;
    acked = next;
    saveCursor();
    appendInternal(samples);
  }

  function appendInternal(samples: readonly Sample[]): AppendResult {
    for (let i = 0; i < samples.length; i += maxSegmentSamples) {
      const chunk = samples.slice(i, i + maxSegmentSamples);
      const data = encodeSegment(next, chunk);
      const file = join(dir, segmentName(next));
      writeAtomic(file, data);
      segments.push({ file, first: next, count: chunk.length, size: data.length });
      total += data.length;
      next += chunk.length;
    }
    let evicted = 0;
    while (total > maxBytes && segments.length > 0) {
      const s = segments.shift()!;
      evicted += Math.max(0, s.first + s.count - Math.max(acked, s.first));
      removeSegment(s);
    }
    if (evicted > 0)
      log.warn({ dir, evicted, maxBytes }, "Disk buffer full: oldest samples no longer survive a restart");
    return { evicted };
  }

  function ackInternal(count: number): void {
    if (!(count > 0)) return;
    acked = Math.min(next, acked + count);
    while (segments.length > 0 && segments[0]!.first + segments[0]!.count <= acked) removeSegment(segments.shift()!);
    saveCursor();
  }
}
