// Benchmark 1, encoding: a WriteRequest of N series × 1 sample with realistic labels, built and snappy-compressed —
// ours (pusher/src/remote-write/encode.ts) vs the npm package prometheus-remote-write on the same input.
// Rounds alternate (A B A B ...) in one process; each round runs for a fixed time; the claim is the median ratio.
import { createRequire } from "node:module";
import snappy from "snappyjs";
import { toWriteRequest } from "../../pusher/src/remote-write/encode.ts";
import { decodeWriteRequest, type DecodedSeries } from "../../pusher/src/remote-write/prompb.ts";
import type { Sample } from "../../pusher/src/series.ts";
import { Better, log, median, type Row } from "./lib/report.ts";
import { fullSeries, toLabels, toSamples, valueFor, type LabelSet } from "./lib/workload.ts";

// The package is CommonJS and ships no ESM entry.
const require = createRequire(import.meta.url);
interface PeerTimeseries {
  labels: LabelSet & { __name__: string };
  samples: { value: number; timestamp?: number }[];
}
interface PeerModule {
  pushTimeseries(
    ts: PeerTimeseries[],
    options: {
      url: string;
      fetch: (
        url: string,
        init: { body: ArrayBufferLike | Uint8Array },
      ) => Promise<{ status: number; statusText: string; text(): Promise<string> }>;
    },
  ): Promise<{ status: number }>;
}
const peer = require("prometheus-remote-write") as PeerModule;

export const PEER_NAME = "prometheus-remote-write";
export const ENCODE_GOAL = 5;
/** Issue 17: fresh label sets every push (the first push after a start, or new series), at least 4× the peer. */
export const ENCODE_COLD_GOAL = 4;

export interface EncodeOptions {
  series: number;
  rounds: number;
  /** Time per round per side. */
  roundMs: number;
}

export interface EncodeSideResult {
  /** Samples per second, one figure per round. */
  rates: number[];
  /** Compressed body size. */
  bytes: number;
}

export interface EncodeResult {
  rows: Row[];
  /** Steady state: the same Labels objects every push, as the scraper's series cache hands them out. */
  ours: EncodeSideResult;
  /** Cold: fresh Labels objects every push (no cache hits), the first push after a start or a target change. */
  oursCold: EncodeSideResult;
  peer: EncodeSideResult;
}

/** The peer's whole path as its users call it, with the HTTP request replaced by capturing the body. */
async function peerEncode(series: PeerTimeseries[]): Promise<Uint8Array> {
  let body: Uint8Array | undefined;
  await peer.pushTimeseries(series, {
    url: "http://127.0.0.1:1/api/v1/write",
    fetch: (_url, init) => {
      body = init.body as Uint8Array;
      return Promise.resolve({ status: 200, statusText: "OK", text: () => Promise.resolve("") });
    },
  });
  if (!body) throw new Error(`${PEER_NAME} produced no body`);
  return body;
}

/**
 * The peer takes labels as an object and writes them in its key order; the protocol wants them sorted, so its users
 * must insert keys sorted. Given so, both sides put the same bytes on the wire before compression.
 */
function peerInput(sets: readonly LabelSet[], timestampMs: number): PeerTimeseries[] {
  return sets.map((set, i) => ({
    labels: Object.fromEntries(toLabels(set).map((l) => [l.name, l.value])) as PeerTimeseries["labels"],
    samples: [{ value: valueFor(i, 0), timestamp: timestampMs }],
  }));
}

/** Runs `fn` repeatedly for `ms` and returns samples per second. */
async function rate(ms: number, samplesPerCall: number, fn: () => unknown): Promise<number> {
  let calls = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    const r = fn();
    if (r instanceof Promise) await r;
    calls++;
    now = process.hrtime.bigint();
  }
  return (calls * samplesPerCall) / (Number(now - start) / 1e9);
}

function canonical(decoded: DecodedSeries[]): string {
  return JSON.stringify(
    decoded
      .map((s) => ({
        labels: [...s.labels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
        samples: s.samples,
      }))
      .sort((a, b) => (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1)),
  );
}

/** Both sides must carry the same series and samples, or the comparison means nothing. */
export async function checkSameContent(
  series: number,
): Promise<{ oursBytes: number; peerBytes: number; series: number; rawIdentical: boolean }> {
  const sets = fullSeries(series);
  const ts = Date.UTC(2026, 0, 1);
  const ours = toWriteRequest(toSamples(sets, ts));
  const theirs = await peerEncode(peerInput(sets, ts));
  const a = decodeWriteRequest(ours);
  const b = decodeWriteRequest(theirs);
  if (a.length !== series || b.length !== series)
    throw new Error(`decoded ${a.length} (ours) and ${b.length} (peer) series, want ${series}`);
  if (canonical(a) !== canonical(b)) throw new Error("ours and the peer encode different content for the same input");
  // Same content, same field order: the protobuf bytes are identical too, so compression sees the same input.
  const rawIdentical =
    Buffer.compare(Buffer.from(snappy.uncompress(ours)), Buffer.from(snappy.uncompress(theirs))) === 0;
  return { oursBytes: ours.length, peerBytes: theirs.length, series: a.length, rawIdentical };
}

export async function benchEncode(opts: EncodeOptions): Promise<EncodeResult> {
  const sets = fullSeries(opts.series);
  const ts = Date.now();
  const content = await checkSameContent(opts.series);
  const steady: Sample[] = toSamples(sets, ts);
  const peerSeries = peerInput(sets, ts);
  const result: EncodeResult = {
    rows: [],
    ours: { rates: [], bytes: content.oursBytes },
    oursCold: { rates: [], bytes: content.oursBytes },
    peer: { rates: [], bytes: content.peerBytes },
  };
  for (let round = 0; round < opts.rounds; round++) {
    result.ours.rates.push(await rate(opts.roundMs, opts.series, () => toWriteRequest(steady)));
    result.peer.rates.push(await rate(opts.roundMs, opts.series, () => peerEncode(peerSeries)));
    result.oursCold.rates.push(coldRate(opts.roundMs, sets, ts, opts.series));
    log(
      `encode round ${round + 1}/${opts.rounds}: ours ${fmtRate(result.ours.rates.at(-1)!)}, ours cold ` +
        `${fmtRate(result.oursCold.rates.at(-1)!)}, ${PEER_NAME} ${fmtRate(result.peer.rates.at(-1)!)}`,
    );
  }
  const o = median(result.ours.rates);
  const c = median(result.oursCold.rates);
  const p = median(result.peer.rates);
  result.rows.push(
    {
      bench: "encode",
      metric: `samples/s (${opts.series} series, steady)`,
      unit: "",
      better: Better.higher,
      ours: o,
      peer: { name: PEER_NAME, value: p },
      goal: { text: `≥ ${ENCODE_GOAL}× peer`, met: o >= ENCODE_GOAL * p },
      runs: result.ours.rates,
    },
    {
      bench: "encode",
      metric: `samples/s (${opts.series} series, cold labels)`,
      unit: "",
      better: Better.higher,
      ours: c,
      peer: { name: PEER_NAME, value: p },
      goal: { text: `≥ ${ENCODE_COLD_GOAL}× peer`, met: c >= ENCODE_COLD_GOAL * p },
      runs: result.oursCold.rates,
    },
    {
      bench: "encode",
      metric: "compressed bytes",
      unit: "B",
      better: Better.lower,
      ours: content.oursBytes,
      peer: { name: PEER_NAME, value: content.peerBytes },
    },
  );
  return result;
}

/** Ours with fresh label objects every push: inputs are built outside the timed part, in small batches. */
function coldRate(ms: number, sets: readonly LabelSet[], ts: number, perCall: number): number {
  let timedNs = 0n;
  let calls = 0;
  const wallEnd = Date.now() + ms;
  while (Date.now() < wallEnd || calls === 0) {
    const batch = Array.from({ length: 8 }, () => toSamples(sets, ts));
    const start = process.hrtime.bigint();
    for (const input of batch) toWriteRequest(input);
    timedNs += process.hrtime.bigint() - start;
    calls += batch.length;
  }
  return (calls * perCall) / (Number(timedNs) / 1e9);
}

function fmtRate(r: number): string {
  return `${(r / 1e6).toFixed(2)} M samples/s`;
}
