import { describe, it } from "node:test";
import assert from "node:assert/strict";
import snappy from "snappyjs";
import type { Labels, Sample } from "../series.ts";
import { compress, encodeWriteRequest, normalizeLabels, toWriteRequest } from "./encode.ts";
import { STALE_NAN_BYTES, WriteRequestType, decodeWriteRequest } from "./prompb.ts";

function labels(obj: Record<string, string>): Labels {
  return Object.entries(obj).map(([name, value]) => ({ name, value }));
}

/** The same request built by protobufjs from plain objects (no stale markers: protobufjs cannot carry them). */
function reference(series: { labels: Labels; samples: { value: number; timestampMs: number }[] }[]): Uint8Array {
  const msg = WriteRequestType.fromObject({
    timeseries: series.map((s) => ({
      labels: s.labels.map((l) => ({ name: l.name, value: l.value })),
      samples: s.samples.map((x) => ({ value: x.value, timestamp: x.timestampMs })),
    })),
  });
  return WriteRequestType.encode(msg).finish();
}

function indexOfBytes(hay: Uint8Array, needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe("encodeWriteRequest", () => {
  it("is byte-identical to protobufjs for ordinary samples", () => {
    const a = labels({ __name__: "up", instance: "pod-1", job: "metrics-pusher" });
    const b = labels({ __name__: "temp_celsius", city: "Zürich", job: "x" });
    const samples: Sample[] = [
      { labels: a, value: 1, timestampMs: 1_700_000_000_000 },
      { labels: a, value: 0, timestampMs: 1_700_000_001_000 },
      { labels: b, value: -12.75, timestampMs: 1_700_000_000_123 },
    ];
    const ours = encodeWriteRequest(samples);
    const theirs = reference([
      { labels: a, samples: [samples[0]!, samples[1]!] },
      { labels: b, samples: [samples[2]!] },
    ]);
    assert.deepEqual(Buffer.from(ours), Buffer.from(theirs));
  });

  it("matches protobufjs byte for byte on random batches", () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    for (let round = 0; round < 50; round++) {
      const series: { labels: Labels; samples: { value: number; timestampMs: number }[] }[] = [];
      const flat: Sample[] = [];
      const count = 1 + Math.floor(rnd() * 40);
      for (let i = 0; i < count; i++) {
        const l = labels({ __name__: `m_${round}_${i}`, a: pick(["x", "é", "long".repeat(50)]), zz: String(rnd()) });
        const samples = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => ({
          value: pick([0, 1, -1, 0.1, 1e300, -3.5e-310, rnd() * 1e6]),
          timestampMs: pick([0, 1, 1_764_000_000_000 + Math.floor(rnd() * 1e9), 2 ** 40, -5]),
        }));
        series.push({ labels: l, samples });
        for (const x of samples) flat.push({ labels: l, ...x });
      }
      assert.deepEqual(Buffer.from(encodeWriteRequest(flat)), Buffer.from(reference(series)), `round ${round}`);
    }
  });

  it("round-trips through protobufjs + snappyjs", () => {
    const s: Sample[] = [];
    for (let i = 0; i < 300; i++) {
      const l = labels({ __name__: `metric_${i % 7}`, idx: String(i), z: "v".repeat((i % 200) + 1) });
      s.push({ labels: l, value: i * 1.5, timestampMs: 1_700_000_000_000 + i });
    }
    const decoded = decodeWriteRequest(toWriteRequest(s));
    assert.equal(decoded.length, 300);
    decoded.forEach((ts, i) => {
      assert.deepEqual(
        ts.labels,
        s[i]!.labels.map((l) => ({ ...l })),
      );
      assert.deepEqual(ts.samples, [{ value: i * 1.5, timestampMs: 1_700_000_000_000 + i, stale: false }]);
    });
  });

  it("writes stale markers as the exact bytes 02 00 00 00 00 00 f0 7f", () => {
    const l = labels({ __name__: "gone", job: "j" });
    const bytes = encodeWriteRequest([{ labels: l, value: 42, timestampMs: 1000, stale: true }]);
    // Sample: tag 0x09 then the 8 value bytes, then tag 0x10 and the timestamp varint (1000 = e8 07).
    const at = indexOfBytes(bytes, [0x09, ...STALE_NAN_BYTES, 0x10, 0xe8, 0x07]);
    assert.ok(at > 0, `stale bytes not found in ${Buffer.from(bytes).toString("hex")}`);
    const [ts] = decodeWriteRequest(snappy.compress(bytes));
    assert.equal(ts!.samples[0]!.stale, true);
    assert.ok(Number.isNaN(ts!.samples[0]!.value));
  });

  it("keeps NaN, ±Inf and -0 as values, distinct from stale markers", () => {
    const l = labels({ __name__: "odd" });
    const values = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      -0,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
    ];
    const samples = values.map((value, i) => ({ labels: l, value, timestampMs: 1000 + i }));
    const bytes = encodeWriteRequest(samples);
    assert.equal(indexOfBytes(bytes, STALE_NAN_BYTES), -1, "an ordinary NaN must not look like a stale marker");
    const [ts] = decodeWriteRequest(snappy.compress(bytes));
    assert.equal(ts!.samples.length, values.length);
    ts!.samples.forEach((s, i) => {
      assert.ok(Object.is(s.value, values[i]), `value ${i}: ${s.value} vs ${values[i]}`);
      assert.equal(s.stale, false);
    });
    // The canonical NaN bits, as Go's math.NaN() writes them.
    assert.ok(indexOfBytes(bytes, [0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]) > 0);
  });

  it("encodes large and negative timestamps as int64", () => {
    const l = labels({ __name__: "t" });
    const stamps = [
      0,
      1,
      127,
      128,
      2 ** 31,
      2 ** 32 + 5,
      1_764_000_000_123,
      9_999_999_999_999,
      Number.MAX_SAFE_INTEGER,
      -1,
      -1_000,
    ];
    const samples = stamps.map((timestampMs, i) => ({ labels: l, value: i, timestampMs }));
    const ours = encodeWriteRequest(samples);
    assert.deepEqual(Buffer.from(ours), Buffer.from(reference([{ labels: l, samples }])));
    const [ts] = decodeWriteRequest(snappy.compress(ours));
    assert.deepEqual(
      ts!.samples.map((s) => s.timestampMs),
      stamps,
    );
  });

  it("sorts labels by name in byte order, drops empty values and repeated names", () => {
    const messy: Labels = [
      { name: "zeta", value: "1" },
      { name: "__name__", value: "m" },
      { name: "Alpha", value: "2" },
      { name: "empty", value: "" },
      { name: "alpha", value: "3" },
      { name: "zeta", value: "dup" },
      { name: "_x", value: "4" },
    ];
    const [ts] = decodeWriteRequest(toWriteRequest([{ labels: messy, value: 1, timestampMs: 5 }]));
    assert.deepEqual(
      ts!.labels.map((l) => `${l.name}=${l.value}`),
      ["Alpha=2", "__name__=m", "_x=4", "alpha=3", "zeta=1"],
    );
  });

  it("normalizeLabels returns sorted input unchanged (no copy)", () => {
    const l = labels({ __name__: "a", b: "1", c: "2" });
    assert.equal(normalizeLabels(l), l);
  });

  it("groups consecutive samples of one series, even from different Labels objects, and keeps order", () => {
    const a1 = labels({ __name__: "a", k: "v" });
    const a2 = labels({ __name__: "a", k: "v" });
    const b = labels({ __name__: "b" });
    const samples: Sample[] = [
      { labels: a1, value: 1, timestampMs: 1 },
      { labels: a2, value: 2, timestampMs: 2 },
      { labels: b, value: 3, timestampMs: 1 },
      { labels: a1, value: 4, timestampMs: 3, stale: true },
    ];
    const decoded = decodeWriteRequest(toWriteRequest(samples));
    assert.deepEqual(
      decoded.map((ts) => [
        ts.labels.map((l) => l.value).join(","),
        ts.samples.map((s) => `${s.timestampMs}${s.stale ? "S" : ""}`).join(","),
      ]),
      [
        ["a,v", "1,2"],
        ["b", "1"],
        ["a,v", "3S"],
      ],
    );
  });

  it("encodes UTF-8 label values", () => {
    const l = labels({ __name__: "m", emoji: "🚀 naïve 日本" });
    const [ts] = decodeWriteRequest(toWriteRequest([{ labels: l, value: 1, timestampMs: 1 }]));
    assert.equal(ts!.labels[1]!.value, "🚀 naïve 日本");
  });

  it("encodes the same bytes from its label cache as on first sight", () => {
    const l = labels({ __name__: "m", a: "1" });
    const messy: Labels = [
      { name: "z", value: "2" },
      { name: "__name__", value: "n" },
    ];
    const batch: Sample[] = [
      { labels: l, value: 1, timestampMs: 10 },
      { labels: messy, value: 2, timestampMs: 10 },
    ];
    const first = Buffer.from(encodeWriteRequest(batch));
    for (let i = 0; i < 3; i++) assert.deepEqual(Buffer.from(encodeWriteRequest(batch)), first);
    assert.deepEqual(
      decodeWriteRequest(snappy.compress(first)).map((s) => s.labels.map((x) => x.name)),
      [
        ["__name__", "a"],
        ["__name__", "z"],
      ],
    );
  });

  it("an empty batch is an empty WriteRequest", () => {
    assert.equal(encodeWriteRequest([]).length, 0);
    assert.deepEqual(decodeWriteRequest(toWriteRequest([])), []);
  });
});

describe("toWriteRequest", () => {
  it("uses the snappy block format, not the framed format", () => {
    const l = labels({ __name__: "m" });
    const raw = encodeWriteRequest([{ labels: l, value: 1, timestampMs: 1 }]);
    const body = toWriteRequest([{ labels: l, value: 1, timestampMs: 1 }]);
    assert.notEqual(body[0], 0xff, "framed snappy starts with a stream identifier chunk 0xff");
    assert.equal(body[0], raw.length, "a block starts with the uncompressed length as a varint");
    assert.deepEqual(Buffer.from(snappy.uncompress(body)), Buffer.from(raw));
  });

  it("compresses what snappyjs, an independent decoder, restores byte for byte, across 64 KiB blocks and sizes", () => {
    // The WebAssembly compressor keeps its memory between calls: large inputs first, then small ones over it.
    let seed = 17;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (const n of [5_000_000, 200_000, 65_537, 65_536, 65_535, 1000, 17, 16, 1, 0]) {
      for (const kind of ["random", "zeros", "text"] as const) {
        const input = new Uint8Array(n);
        for (let i = 0; i < n; i++) input[i] = kind === "random" ? rand() : kind === "zeros" ? 0 : 97 + ((i * 7) % 23);
        const body = compress(input);
        assert.deepEqual(Buffer.from(snappy.uncompress(body)), Buffer.from(input), `${kind} ${n}`);
        if (kind !== "random" && n > 1000) assert.ok(body.length < n / 4, `${kind} ${n} compressed to ${body.length}`);
      }
    }
  });
});
