// Scrapes local Prometheus exposition endpoints the way Prometheus 2.42's scrape loop does (scrape/scrape.go with
// honor_labels false), turning each scrape into Samples: the exposed series with job/instance/extra labels, the five
// report series (up, scrape_duration_seconds, scrape_samples_scraped, scrape_samples_post_metric_relabeling,
// scrape_series_added) and stale markers for series that disappeared or whose target failed.
//
// Like Prometheus, series with an exposed timestamp are not tracked for staleness (a marker "now" could land before
// or after their own samples), and a repeated series in one scrape keeps its first sample only (Prometheus drops the
// later ones as duplicates; a receiver would reject a request holding both).

import http from "../node-http.ts";
import https from "node:https";
import { performance } from "node:perf_hooks";
import { createGunzip } from "node:zlib";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { DEFAULT_METRIC_PREFIX } from "../config.ts";
import { redactUrl } from "../redact.ts";
import { seriesKey, type Label, type Labels, type Sample } from "../series.ts";
import { ExpositionError, ExpositionReader, LabelLimitError, LabelValueLengthError } from "./exposition.ts";

export interface ScraperOptions {
  /** http(s) URLs of exposition endpoints. */
  readonly targets: readonly string[];
  /** The `job` label of every scraped series. */
  readonly job: string;
  /** Whole-scrape deadline: connect, answer and body. */
  readonly timeoutMs: number;
  /**
   * Most samples accepted from one scrape after the drop regex (Prometheus' sample_limit); the parse stops at the
   * sample past it and the scrape fails. 0 = no limit.
   */
  readonly sampleLimit: number;
  /**
   * Most labels of one series, its name and the target's labels included (Prometheus' label_limit); a series with
   * more fails the scrape, and a label set longer than this in the exposition is refused while it is read. 0 = none.
   */
  readonly labelLimit?: number;
  /**
   * Longest label value in characters (Prometheus' label_value_length_limit); a longer one fails the scrape as soon as
   * it is read, and so does a line longer than labelLimit such values can fill. 0 = none.
   */
  readonly labelValueLengthLimit?: number;
  /** Largest (decompressed) body accepted; counted while reading, the scrape is cut off beyond it. */
  readonly maxBytes: number;
  /** Metric names to drop; matched against the whole name. */
  readonly drop?: RegExp;
  /** Target labels besides job and instance (namespace, pod, external labels); exposed clashes become exported_*. */
  readonly extraLabels: Readonly<Record<string, string>>;
  readonly log: Logger;
  readonly registry: Registry;
  /** Prefix of the scraper's own metrics; defaults to the pusher's. */
  readonly metricPrefix?: string;
}

/** Why a scrape failed: the `reason` label of the failure counter. */
export const ScrapeFailure = {
  Network: "network",
  Timeout: "timeout",
  HttpStatus: "http_status",
  BodyTooLarge: "body_too_large",
  InvalidUtf8: "invalid_utf8",
  Parse: "parse_error",
  SampleLimit: "sample_limit",
  LabelLimit: "label_limit",
  LabelValueLengthLimit: "label_value_length_limit",
} as const;
export type ScrapeFailure = (typeof ScrapeFailure)[keyof typeof ScrapeFailure];

export class ScrapeError extends Error {
  readonly reason: ScrapeFailure;
  constructor(reason: ScrapeFailure, message: string) {
    super(message);
    this.name = "ScrapeError";
    this.reason = reason;
  }
}

/**
 * Samples with an exposed timestamp older than this are dropped: Prometheus' TSDB refuses them (out of bounds) when it
 * scrapes, and over Remote-Write one such sample makes Prometheus reject the whole request.
 */
const MAX_SAMPLE_AGE_MS = 3_600_000;

const ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
const USER_AGENT = "metrics-pusher";

/**
 * One final series of a target, kept across scrapes: a table with generation numbers instead of Maps rebuilt every
 * scrape (three new Maps per scrape were 13 % of the CPU when forwarding 10,000 series, docs/benchmarks.md).
 */
interface SeriesEntry {
  readonly labels: Labels;
  readonly key: string;
  /** Generation of the last scrape that exposed it (by any text): the others are pruned after a scrape. */
  seen: number;
  /** Generation of the scrape that last took a sample of it: a second sample in the same scrape is a duplicate. */
  taken: number;
  /** Whether that sample had no exposed timestamp (then the series is live, tracked for staleness). */
  untimed: boolean;
  /**
   * Generation of the last successful scrape in which it was live: a stale marker candidate. Written only once a scrape
   * succeeded, so that a failed one leaves the candidates of the last good one.
   */
  live: number;
}
/**
 * The decision for one exposed series text: its final series, or null when dropped by the drop regex. Kept per text
 * (two texts can make one series) with its own generation, so that texts no longer exposed are pruned.
 */
interface CacheSlot {
  readonly entry: SeriesEntry | null;
  seen: number;
}

interface Target {
  readonly url: URL;
  readonly instance: string;
  /** Target labels (job, instance, extra), sorted by name, empty values left out. */
  readonly targetLabels: Labels;
  readonly targetNames: ReadonlySet<string>;
  /** Final series by key, pruned after each successful scrape to those it saw: it never outgrows the target. */
  series: Map<string, SeriesEntry>;
  /** Exposed series text → its entry, pruned like `series`. */
  cache: Map<string, CacheSlot>;
  /** Generation of the current (or last) scrape; entries compare their own against it. */
  generation: number;
  /**
   * Generation of the last successful scrape whose live series still await their stale marker (entries with `live`
   * equal to it); 0 when there are none (after a failure or staleAll).
   */
  liveGeneration: number;
  readonly report: { readonly [K in ReportName]: Labels };
  reported: boolean;
  /** Reason of the last scrape's failure; undefined while it succeeds. */
  lastFailure: ScrapeFailure | undefined;
}

const REPORT_NAMES = [
  "up",
  "scrape_duration_seconds",
  "scrape_samples_scraped",
  "scrape_samples_post_metric_relabeling",
  "scrape_series_added",
] as const;
type ReportName = (typeof REPORT_NAMES)[number];

export class Scraper {
  readonly #opts: ScraperOptions;
  readonly #targets: Target[];
  readonly #drop: RegExp | undefined;
  readonly #log: Logger;
  readonly #agents: { http: http.Agent; https: https.Agent };
  readonly #failures: Counter<"target" | "reason">;
  readonly #dropped: Counter<"target" | "reason">;
  #busy: Promise<unknown> = Promise.resolve();

  constructor(opts: ScraperOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    // Anchored like a Prometheus relabel regex, and without /g or /y, which would make test() stateful.
    this.#drop = opts.drop ? new RegExp(`^(?:${opts.drop.source})$`, opts.drop.flags.replace(/[gy]/g, "")) : undefined;
    this.#agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
    const prefix = opts.metricPrefix ?? DEFAULT_METRIC_PREFIX;
    this.#failures = new Counter({
      name: `${prefix}_scrape_failures_total`,
      help: "Scrapes of local targets that failed (up 0), by target (host:port) and reason.",
      labelNames: ["target", "reason"],
      registers: [opts.registry],
    });
    this.#dropped = new Counter({
      name: `${prefix}_scrape_samples_dropped_total`,
      help: "Scraped samples not forwarded, by reason: drop_regex (SCRAPE_DROP), duplicate (a series repeated in one scrape), too_old (exposed timestamp over an hour old).",
      labelNames: ["target", "reason"],
      registers: [opts.registry],
    });
    this.#targets = opts.targets.map((t) => this.#target(t));
    const instances = new Set<string>();
    for (const t of this.#targets) {
      if (instances.has(t.instance)) {
        this.#log.warn(
          { instance: t.instance },
          "Two scrape targets share host:port: their up and report series collide",
        );
      }
      instances.add(t.instance);
    }
  }

  #target(raw: string): Target {
    const url = new URL(raw);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`scrape target ${raw}: not http(s)`);
    // Prometheus' instance is host:port, with the scheme's default port made explicit.
    const instance = url.port === "" ? `${url.host}:${url.protocol === "https:" ? 443 : 80}` : url.host;
    const labels = new Map<string, string>();
    for (const [k, v] of Object.entries(this.#opts.extraLabels)) if (v !== "") labels.set(k, v);
    labels.set("job", this.#opts.job);
    labels.set("instance", instance);
    const targetLabels = sortLabels([...labels].map(([name, value]) => ({ name, value })));
    const report = {} as Record<ReportName, Labels>;
    for (const n of REPORT_NAMES) report[n] = withName(n, targetLabels);
    return {
      url,
      instance,
      targetLabels,
      targetNames: new Set(labels.keys()),
      series: new Map(),
      cache: new Map(),
      generation: 0,
      liveGeneration: 0,
      report,
      reported: false,
      lastFailure: undefined,
    };
  }

  /** Scrapes every target concurrently; calls are serialised so that staleness is computed in order. */
  scrape(nowMs: number): Promise<Sample[]> {
    const run = this.#busy.then(() => this.#scrapeAll(nowMs));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #scrapeAll(nowMs: number): Promise<Sample[]> {
    const parts = await Promise.all(this.#targets.map((t) => this.#scrapeTarget(t, nowMs)));
    return parts.length === 1 ? parts[0]! : parts.flat();
  }

  /** Stale markers for every series last seen, report series included (shutdown). */
  staleAll(nowMs: number): Sample[] {
    const out: Sample[] = [];
    for (const t of this.#targets) {
      pushStale(t, out, nowMs);
      t.series = new Map();
      t.cache = new Map();
      if (t.reported) {
        for (const n of REPORT_NAMES) out.push({ labels: t.report[n], value: NaN, timestampMs: nowMs, stale: true });
        t.reported = false;
      }
    }
    return out;
  }

  async #scrapeTarget(t: Target, nowMs: number): Promise<Sample[]> {
    const started = performance.now();
    let scraped = 0;
    try {
      const out: Sample[] = [];
      const gen = ++t.generation;
      const prevLive = t.liveGeneration;
      const cache = t.cache;
      let added = 0;
      let dropped = 0;
      let duplicates = 0;
      let tooOld = 0;
      /** Samples past the drop regex, duplicates and too-old ones included, as Prometheus' sample_limit counts. */
      let accepted = 0;
      let droppedCached = 0;
      const sampleLimit = this.#opts.sampleLimit;
      const labelLimit = this.#opts.labelLimit ?? 0;
      const oldest = nowMs - MAX_SAMPLE_AGE_MS;
      // Each sample is judged as soon as it is parsed, while the body arrives, and nothing else of the body is kept:
      // a limit stops the parse (and the download) at the sample past it, so memory is bounded by the limits rather
      // than by the body's size.
      const reader = new ExpositionReader(
        {
          sample: (name, exposed, value, timestampMs, series) => {
            scraped++;
            let slot = cache.get(series);
            if (slot === undefined) {
              slot = { entry: this.#entry(t, name, exposed), seen: 0 };
              // Dropped series are remembered only up to the sample limit: they must not cost unbounded memory.
              if (slot.entry !== null || sampleLimit === 0 || droppedCached++ < sampleLimit) {
                cache.set(series, slot);
                slot.seen = gen;
              }
            } else if (slot.seen !== gen) {
              if (slot.entry !== null || sampleLimit === 0 || droppedCached++ < sampleLimit) slot.seen = gen;
            }
            const entry = slot.entry;
            if (entry === null) {
              dropped++;
              return;
            }
            entry.seen = gen;
            if (labelLimit > 0 && entry.labels.length > labelLimit) {
              throw new ScrapeError(
                ScrapeFailure.LabelLimit,
                `${name} has ${entry.labels.length} labels with the target's, over the label limit of ${labelLimit}`,
              );
            }
            if (sampleLimit > 0 && ++accepted > sampleLimit) {
              throw new ScrapeError(ScrapeFailure.SampleLimit, `more samples than the sample limit of ${sampleLimit}`);
            }
            // Duplicate by final series: two exposed texts can make the same labels (an empty value, the order).
            if (entry.taken === gen) {
              duplicates++;
              return;
            }
            if (timestampMs === undefined) {
              entry.taken = gen;
              entry.untimed = true;
              if (prevLive === 0 || entry.live !== prevLive) added++;
              out.push({ labels: entry.labels, value, timestampMs: nowMs });
            } else if (timestampMs < oldest) {
              tooOld++;
            } else {
              entry.taken = gen;
              entry.untimed = false;
              out.push({ labels: entry.labels, value, timestampMs });
            }
          },
        },
        { labelLimit, labelValueLengthLimit: this.#opts.labelValueLengthLimit ?? 0 },
      );
      await fetchExposition(t.url, {
        timeoutMs: this.#opts.timeoutMs,
        maxBytes: this.#opts.maxBytes,
        agent: t.url.protocol === "https:" ? this.#agents.https : this.#agents.http,
        reader,
      });
      if (dropped > 0) this.#dropped.inc({ target: t.instance, reason: "drop_regex" }, dropped);
      if (tooOld > 0) {
        this.#dropped.inc({ target: t.instance, reason: "too_old" }, tooOld);
        this.#log.debug(
          { target: t.instance, samples: tooOld },
          "Dropped samples whose exposed timestamp is over an hour old",
        );
      }
      if (duplicates > 0) {
        this.#dropped.inc({ target: t.instance, reason: "duplicate" }, duplicates);
        this.#log.debug({ target: t.instance, duplicates }, "Dropped repeated series from a scrape");
      }
      const kept = out.length;
      // Stale markers for series live last time and not this time; then forget what this scrape did not see.
      for (const [key, e] of t.series) {
        const liveNow = e.taken === gen && e.untimed;
        if (prevLive !== 0 && e.live === prevLive && !liveNow) {
          out.push({ labels: e.labels, value: NaN, timestampMs: nowMs, stale: true });
        }
        if (liveNow) e.live = gen;
        if (e.seen !== gen) t.series.delete(key);
      }
      prune(t, gen);
      t.liveGeneration = gen;
      if (t.lastFailure !== undefined) {
        this.#log.info({ target: t.instance, url: redactUrl(t.url) }, "Scrape target is back up");
        t.lastFailure = undefined;
      }
      const seconds = (performance.now() - started) / 1000;
      for (const r of this.#report(t, nowMs, 1, seconds, scraped, kept, added)) out.push(r);
      return out;
    } catch (e) {
      const err = asScrapeError(e);
      this.#failures.inc({ target: t.instance, reason: err.reason });
      // Warn when a target goes down (or a different failure starts); repeats every interval are debug only.
      const level = t.lastFailure === err.reason ? "debug" : "warn";
      t.lastFailure = err.reason;
      this.#log[level](
        { target: t.instance, url: redactUrl(t.url), reason: err.reason, err: err.message },
        "Scrape failed",
      );
      const out: Sample[] = [];
      pushStale(t, out, nowMs);
      // What this scrape saw stays (bounded by the limits); what only earlier scrapes saw goes, as after a success.
      for (const [key, e] of t.series) if (e.seen !== t.generation) t.series.delete(key);
      prune(t, t.generation);
      const seconds = (performance.now() - started) / 1000;
      out.push(...this.#report(t, nowMs, 0, seconds, scraped, 0, 0));
      return out;
    }
  }

  #report(
    t: Target,
    nowMs: number,
    up: number,
    seconds: number,
    scraped: number,
    kept: number,
    added: number,
  ): Sample[] {
    t.reported = true;
    const values: Record<ReportName, number> = {
      up,
      scrape_duration_seconds: seconds,
      scrape_samples_scraped: scraped,
      scrape_samples_post_metric_relabeling: kept,
      scrape_series_added: added,
    };
    return REPORT_NAMES.map((n) => ({ labels: t.report[n], value: values[n], timestampMs: nowMs }));
  }

  /** The final labels of one exposed series, as Prometheus' mutateSampleLabels builds them; null when dropped. */
  #entry(t: Target, name: string, exposed: readonly string[]): SeriesEntry | null {
    if (this.#drop?.test(name)) return null;
    const labels: Label[] = [{ name: "__name__", value: name }];
    let conflicts: Label[] | undefined;
    for (let i = 0; i < exposed.length; i += 2) {
      const n = exposed[i]!;
      const v = exposed[i + 1]!;
      if (v === "") continue;
      if (t.targetNames.has(n)) (conflicts ??= []).push({ name: n, value: v });
      else labels.push({ name: n, value: v });
    }
    if (conflicts) {
      // Shorter names first, each prefixed with exported_ until it clashes with nothing exposed, targeted or
      // already resolved (resolveConflictingExposedLabels).
      conflicts.sort((a, b) => a.name.length - b.name.length);
      const exposedNames = new Set<string>();
      for (let i = 0; i < exposed.length; i += 2) exposedNames.add(exposed[i]!);
      const taken = new Set<string>();
      for (const c of conflicts) {
        let newName = c.name;
        do newName = `exported_${newName}`;
        while (exposedNames.has(newName) || t.targetNames.has(newName) || taken.has(newName));
        taken.add(newName);
        // An exposed label of that name (with an empty value) may have been skipped above; nothing to replace.
        labels.push({ name: newName, value: c.value });
      }
    }
    for (const l of t.targetLabels) labels.push(l);
    const sorted = sortLabels(labels);
    const key = seriesKey(sorted);
    let entry = t.series.get(key);
    if (entry === undefined) {
      entry = { labels: sorted, key, seen: 0, taken: 0, untimed: false, live: 0 };
      t.series.set(key, entry);
    }
    return entry;
  }
}

/** Stale markers for the series of the last successful scrape; none are awaited afterwards. */
function pushStale(t: Target, out: Sample[], nowMs: number): void {
  if (t.liveGeneration !== 0) {
    for (const e of t.series.values()) {
      if (e.live === t.liveGeneration) out.push({ labels: e.labels, value: NaN, timestampMs: nowMs, stale: true });
    }
  }
  t.liveGeneration = 0;
}

/**
 * Forgets the exposed texts that scrape `gen` did not see. A text it saw marked its series seen too, so no kept text
 * points at a series pruned from the table.
 */
function prune(t: Target, gen: number): void {
  for (const [text, slot] of t.cache) if (slot.seen !== gen) t.cache.delete(text);
}

function withName(name: string, labels: Labels): Labels {
  return sortLabels([{ name: "__name__", value: name }, ...labels]);
}

function sortLabels(labels: Label[]): Labels {
  // Label names are ASCII, so UTF-16 comparison is byte order.
  return labels.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function asScrapeError(e: unknown): ScrapeError {
  if (e instanceof ScrapeError) return e;
  if (e instanceof LabelLimitError) return new ScrapeError(ScrapeFailure.LabelLimit, e.message);
  if (e instanceof LabelValueLengthError) return new ScrapeError(ScrapeFailure.LabelValueLengthLimit, e.message);
  if (e instanceof ExpositionError) return new ScrapeError(ScrapeFailure.Parse, e.message);
  return new ScrapeError(ScrapeFailure.Network, e instanceof Error ? e.message : String(e));
}

/** Where fetchExposition hands the decoded text, piece by piece (ExpositionReader). */
export interface TextSink {
  write(text: string): Promise<void>;
  end(): Promise<void>;
}

/**
 * GETs one exposition within the deadline and the size limit (counted on the decompressed bytes as they arrive),
 * decodes it as strict UTF-8 and hands it to `reader` as it arrives; reading pauses while a piece is parsed, and the
 * deadline covers the parse. Only status 200 is accepted, as in Prometheus.
 */
export function fetchExposition(
  url: URL,
  opts: { timeoutMs: number; maxBytes: number; agent?: http.Agent; reader: TextSink },
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err: ScrapeError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve();
    };
    const timer = setTimeout(
      () => finish(new ScrapeError(ScrapeFailure.Timeout, `scrape timed out after ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    const mod = url.protocol === "https:" ? https : http;
    const req = mod.request(url, {
      method: "GET",
      agent: opts.agent,
      headers: {
        accept: ACCEPT,
        "accept-encoding": "gzip",
        "user-agent": USER_AGENT,
        "x-prometheus-scrape-timeout-seconds": String(opts.timeoutMs / 1000),
      },
    });
    req.on("error", (e) => finish(new ScrapeError(ScrapeFailure.Network, e.message)));
    req.on("response", (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(
          new ScrapeError(
            ScrapeFailure.HttpStatus,
            `server returned HTTP status ${res.statusCode} ${res.statusMessage ?? ""}`.trim(),
          ),
        );
        return;
      }
      const declared = Number(res.headers["content-length"]);
      const gzip = /\bgzip\b/i.test(res.headers["content-encoding"] ?? "");
      if (!gzip && declared > opts.maxBytes) {
        finish(
          new ScrapeError(
            ScrapeFailure.BodyTooLarge,
            `body of ${declared} bytes exceeds the limit of ${opts.maxBytes}`,
          ),
        );
        return;
      }
      const stream = gzip ? res.pipe(createGunzip()) : res;
      const stop = (err: ScrapeError): void => {
        if (stream !== res) stream.destroy();
        finish(err);
      };
      // One decoder per scrape: a streaming decoder keeps the bytes of a character split across two chunks.
      const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
      const invalid = new ScrapeError(ScrapeFailure.InvalidUtf8, "body is not valid UTF-8");
      // Pieces are parsed one after the other; the stream is paused meanwhile, so at most one chunk waits.
      let parsing: Promise<void> = Promise.resolve();
      const parse = (piece: () => string, then?: () => Promise<void>): void => {
        parsing = parsing.then(async () => {
          if (settled) return;
          let text: string;
          try {
            text = piece();
          } catch {
            return stop(invalid);
          }
          try {
            await opts.reader.write(text);
            if (then) await then();
          } catch (e) {
            return stop(asScrapeError(e));
          }
          if (!settled && !then) stream.resume();
        });
      };
      let size = 0;
      stream.on("data", (chunk: Buffer) => {
        if (settled) return;
        size += chunk.length;
        if (size > opts.maxBytes) {
          stop(new ScrapeError(ScrapeFailure.BodyTooLarge, `body exceeds the limit of ${opts.maxBytes} bytes`));
          return;
        }
        stream.pause();
        parse(() => decoder.decode(chunk, { stream: true }));
      });
      stream.on("error", (e) => finish(new ScrapeError(ScrapeFailure.Network, `reading the body: ${e.message}`)));
      res.on("close", () => {
        if (!res.complete) finish(new ScrapeError(ScrapeFailure.Network, "connection closed while reading the body"));
      });
      stream.on("end", () => {
        parse(
          () => decoder.decode(),
          async () => {
            await opts.reader.end();
            finish(undefined);
          },
        );
      });
    });
    req.end();
  });
}
