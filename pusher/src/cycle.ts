// One collection: every source read at one timestamp, the samples pushed into the queue. This is the root of the
// collect path: a source that throws (synchronously or not) loses only its own samples of this cycle — it is logged
// and counted, the other sources' samples are still pushed, and the loop goes on. Nothing here may end the process.
import type { Sample } from "./series.ts";

export interface CycleSource {
  /** The `source` label of the failures counter: "self", "scrape". */
  readonly name: string;
  collect(nowMs: number): Promise<readonly Sample[]> | readonly Sample[];
}

export interface CycleLog {
  debug(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CycleOptions {
  readonly sources: readonly CycleSource[];
  readonly push: (samples: readonly Sample[]) => void;
  readonly log: CycleLog;
  /** Counts one failed source of one cycle. */
  readonly failed: (source: string) => void;
}

/** Runs one collection at `nowMs`; never throws, never rejects. Returns the number of samples pushed. */
export async function collectOnce(o: CycleOptions, nowMs: number): Promise<number> {
  const started = performance.now();
  // The async wrapper turns a synchronous throw into a rejection, so that both are handled alike.
  const results = await Promise.allSettled(o.sources.map(async (s) => s.collect(nowMs)));
  const samples: Sample[] = [];
  results.forEach((r, i) => {
    const source = o.sources[i]!.name;
    if (r.status === "fulfilled") {
      for (const s of r.value) samples.push(s);
      return;
    }
    o.failed(source);
    o.log.error({ source, err: describe(r.reason) }, "Collection failed; its samples of this cycle are lost");
  });
  try {
    if (samples.length > 0) o.push(samples);
  } catch (e) {
    o.failed("push");
    o.log.error({ err: describe(e), samples: samples.length }, "Collection failed; its samples of this cycle are lost");
    return 0;
  }
  o.log.debug({ samples: samples.length, ms: Math.round(performance.now() - started) }, "Collected");
  return samples.length;
}

function describe(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}
