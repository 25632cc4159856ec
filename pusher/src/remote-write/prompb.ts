// The Remote-Write 1.0 schema (prometheus/prompb types.proto and remote.proto, the fields a 1.0 sender uses) as
// protobufjs types, and a decoder for request bodies. The pusher's hot path encodes by hand (encode.ts); this module
// is the reference the encoder is tested against and what test receivers use to read what the pusher sent.
import protobuf from "protobufjs";
import snappy from "snappyjs";

export const PROMPB_PROTO = `
syntax = "proto3";
package prometheus;

message WriteRequest {
  repeated TimeSeries timeseries = 1;
  reserved 2;
  repeated MetricMetadata metadata = 3;
}

message TimeSeries {
  repeated Label labels = 1;
  repeated Sample samples = 2;
}

message Label {
  string name = 1;
  string value = 2;
}

message Sample {
  double value = 1;
  int64 timestamp = 2;
}

message MetricMetadata {
  enum MetricType {
    UNKNOWN = 0;
    COUNTER = 1;
    GAUGE = 2;
    HISTOGRAM = 3;
    GAUGEHISTOGRAM = 4;
    SUMMARY = 5;
    INFO = 6;
    STATESET = 7;
  }
  MetricType type = 1;
  string metric_family_name = 2;
  string help = 4;
  string unit = 5;
}
`;

export const prompb = protobuf.parse(PROMPB_PROTO, { keepCase: true }).root;
export const WriteRequestType = prompb.lookupType("prometheus.WriteRequest");

/** The bits of a Prometheus stale marker, little-endian as they appear on the wire. */
export const STALE_NAN_BYTES: readonly number[] = Object.freeze([0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x7f]);

export interface DecodedSample {
  value: number;
  timestampMs: number;
  /** The value's 8 bytes were exactly the stale-marker bits. */
  stale: boolean;
}
export interface DecodedSeries {
  labels: { name: string; value: string }[];
  samples: DecodedSample[];
}

/** Decodes a protobuf WriteRequest (not compressed) with protobufjs; stale markers are recognised by their bytes. */
export function decodeWriteRequestBytes(bytes: Uint8Array): DecodedSeries[] {
  const msg = WriteRequestType.toObject(WriteRequestType.decode(bytes), {
    longs: String,
    defaults: true,
    arrays: true,
  }) as {
    timeseries: { labels: { name: string; value: string }[]; samples: { value: number; timestamp: string }[] }[];
  };
  const staleFlags = staleFlagsOf(bytes);
  let k = 0;
  return msg.timeseries.map((ts) => ({
    labels: ts.labels.map((l) => ({ name: l.name, value: l.value })),
    samples: ts.samples.map((s) => ({
      value: s.value,
      timestampMs: Number(s.timestamp),
      stale: staleFlags[k++] ?? false,
    })),
  }));
}

/** Decodes a Remote-Write request body (snappy block + protobuf). */
export function decodeWriteRequest(body: Uint8Array): DecodedSeries[] {
  return decodeWriteRequestBytes(snappy.uncompress(body));
}

// protobufjs returns doubles as JavaScript numbers, whose NaN payload is not guaranteed to survive: walk the raw
// message with protobufjs' Reader to see each sample's value bytes, in the order protobufjs decodes samples.
function staleFlagsOf(bytes: Uint8Array): boolean[] {
  const flags: boolean[] = [];
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 !== 1 || (tag & 7) !== 2) {
      r.skipType(tag & 7);
      continue;
    }
    const tsEnd = r.uint32() + r.pos;
    while (r.pos < tsEnd) {
      const t = r.uint32();
      if (t >>> 3 !== 2 || (t & 7) !== 2) {
        r.skipType(t & 7);
        continue;
      }
      const sEnd = r.uint32() + r.pos;
      let stale = false;
      while (r.pos < sEnd) {
        const f = r.uint32();
        if (f === 0x09) {
          stale = STALE_NAN_BYTES.every((b, i) => r.buf[r.pos + i] === b);
          r.skip(8);
        } else r.skipType(f & 7);
      }
      flags.push(stale);
    }
  }
  return flags;
}
