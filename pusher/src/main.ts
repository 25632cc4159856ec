// The pusher daemon: wiring and the loop. Config → logger → registry and collectors → client and queue → loop →
// shutdown. Collection pushes into the queue and never waits for delivery.
import { hostname } from "node:os";
import { setInterval, setTimeout as sleep } from "node:timers/promises";
import { pino, type Logger } from "pino";
import { Registry } from "prom-client";
import { readFileSync } from "node:fs";
import { ConfigError, credentialFileProblems, formatDuration, parse, type Config } from "./config.ts";
import { collectOnce } from "./cycle.ts";
import { redactUrl } from "./redact.ts";
import { RegistryCollector, registerSelfMetrics, selfTargetLabels } from "./collect/self.ts";
import { startStatusServer, type StatusServer } from "./http.ts";
import { RemoteWriteClient } from "./remote-write/client.ts";
import type { DiskBuffer } from "./remote-write/disk.ts";
import { SendQueue } from "./remote-write/queue.ts";
import type { Sample } from "./series.ts";
import { userAgent, version } from "./version.ts";

/** What a collector must offer the loop (the scraper is loaded only when SCRAPE_TARGETS is set). */
interface Source {
  scrape(nowMs: number): Promise<Sample[]>;
  staleAll(nowMs: number): Sample[];
}

const EXIT_CONFIG = 2;

function readConfig(): Config {
  try {
    const config = parse(process.env);
    // A credential file the client could never send (an inner line feed, a non-Latin-1 character) is a configuration
    // error at start. One that cannot be read yet is not: the Secret may come later, and requests wait for it.
    const problems = credentialFileProblems(config, (path) => {
      try {
        return readFileSync(path, "utf8").trim();
      } catch {
        return undefined;
      }
    });
    if (problems.length > 0) throw new ConfigError(problems);
    return config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // Both a JSON line for log pipelines and plain text for a human reading `kubectl logs`.
    pino({ base: null }).fatal({ problems: e.problems }, "Invalid configuration");
    process.stderr.write(`metrics-pusher: ${e.message}\n`);
    process.exit(EXIT_CONFIG);
  }
}

function createLogger(config: Config): Logger {
  return pino({
    level: config.logLevel,
    base: { pod: config.podName, node: config.nodeName },
    // Nothing below should ever carry a secret; this is the safety net if one day it does.
    redact: {
      paths: [
        "authorization",
        "*.authorization",
        "headers.authorization",
        "*.headers.authorization",
        "password",
        "*.password",
        "token",
        "*.token",
      ],
      censor: "[REDACTED]",
    },
  });
}

/** Proxy settings as Node's agent reads them, for the start-up log, credentials hidden. */
function proxySummary(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"]) {
    const v = process.env[k];
    if (v) out[k] = k.toLowerCase() === "no_proxy" ? v : redactUrl(v);
  }
  return out;
}

/** The disk copy of the buffer; a directory that cannot be used is logged and the pusher runs from memory. */
async function openJournal(config: Config, log: Logger): Promise<DiskBuffer | undefined> {
  const diskLog = log.child({ component: "disk-buffer" });
  try {
    const { openDiskBuffer } = await import("./remote-write/disk.ts");
    return openDiskBuffer({ dir: config.bufferDir!, maxBytes: config.bufferMaxBytes, log: diskLog });
  } catch (e) {
    diskLog.error(
      { dir: config.bufferDir, err: (e as Error).message },
      "Cannot use BUFFER_DIR; buffering in memory only",
    );
    return undefined;
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const log = createLogger(config);
  const instance = config.podName ?? hostname();

  const registry = new Registry();
  let queue: SendQueue | undefined;
  let journal: DiskBuffer | undefined;
  const self = registerSelfMetrics(
    registry,
    config.metricPrefix,
    () => queue?.buffered ?? 0,
    () => journal?.notDurable() ?? 0,
  );
  const collector = new RegistryCollector(
    registry,
    selfTargetLabels({ namespace: config.namespace, podName: config.podName, externalLabels: config.externalLabels }),
  );

  const client = new RemoteWriteClient({
    url: config.remoteWriteUrl,
    timeoutMs: config.timeoutMs,
    userAgent: userAgent(),
    headers: config.headers,
    bearerTokenFile: config.bearerTokenFile,
    basicAuthUsername: config.basicAuthUsername,
    basicAuthUsernameFile: config.basicAuthUsernameFile,
    basicAuthPasswordFile: config.basicAuthPasswordFile,
    tlsCaFile: config.tlsCaFile,
    tlsInsecureSkipVerify: config.tlsInsecureSkipVerify,
    log: log.child({ component: "credentials" }),
  });
  journal = config.bufferDir !== undefined ? await openJournal(config, log) : undefined;
  queue = new SendQueue({
    maxSamples: config.bufferMaxSamples,
    maxPerSend: config.maxSamplesPerSend,
    send: (body, signal) => client.send(body, signal),
    observer: self.observer,
    log: log.child({ component: "remote-write" }),
    ...(journal ? { journal } : {}),
  });
  const q = queue;
  if (journal) {
    // Prometheus refuses samples more than an hour behind its newest (out of bounds), and one such sample makes it
    // refuse the whole request: those are dropped and counted here instead. 55 minutes leaves a margin for the time
    // the backlog takes to send.
    const { samples, tooOld } = journal.readAll({ nowMs: Date.now(), maxAgeMs: 55 * 60_000 });
    if (tooOld > 0) self.observer.dropped(tooOld, "too_old");
    q.restore(samples);
  }

  let scraper: Source | undefined;
  if (config.scrapeTargets.length > 0) {
    // Loaded on demand: a pusher without targets does not pay for the parser in memory.
    const { Scraper } = await import("./collect/scrape.ts");
    const extraLabels: Record<string, string> = { ...config.externalLabels, namespace: config.namespace };
    if (config.podName) extraLabels.pod = config.podName;
    scraper = new Scraper({
      targets: config.scrapeTargets,
      job: config.scrapeJob,
      timeoutMs: config.scrapeTimeoutMs,
      sampleLimit: config.scrapeSampleLimit,
      labelLimit: config.scrapeLabelLimit,
      labelValueLengthLimit: config.scrapeLabelValueLengthLimit,
      maxBytes: config.scrapeMaxBytes,
      ...(config.scrapeDrop ? { drop: config.scrapeDrop } : {}),
      extraLabels,
      log: log.child({ component: "scrape" }),
      registry,
      metricPrefix: config.metricPrefix,
    });
  }

  const loop = new AbortController();
  let running = false;
  let server: StatusServer | undefined;
  if (config.httpPort > 0) {
    try {
      server = await startStatusServer({
        port: config.httpPort,
        host: config.httpAddress,
        registry,
        ready: () => running,
      });
    } catch (e) {
      log.fatal({ port: config.httpPort, err: (e as Error).message }, "Cannot start the HTTP server");
      process.exit(1);
    }
  }

  log.info(
    {
      version: version(),
      url: client.displayUrl,
      pushInterval: formatDuration(config.pushIntervalMs),
      timeout: formatDuration(config.timeoutMs),
      namespace: config.namespace,
      instance,
      externalLabels: config.externalLabels,
      headers: Object.keys(config.headers),
      auth: config.bearerTokenFile ? "bearer" : config.basicAuthPasswordFile ? "basic" : "none",
      scrapeTargets: config.scrapeTargets.map(redactUrl),
      bufferMaxSamples: config.bufferMaxSamples,
      bufferDir: config.bufferDir ?? null,
      maxSamplesPerSend: config.maxSamplesPerSend,
      httpPort: server?.port ?? 0,
      proxy: proxySummary(),
    },
    "Pusher started",
  );

  let lastCycleMs = 0;
  const collectLog = log.child({ component: "collect" });
  const cycleOptions = (sources: Parameters<typeof collectOnce>[0]["sources"]): Parameters<typeof collectOnce>[0] => ({
    sources,
    push: (samples) => q.push(samples),
    log: collectLog,
    failed: (source) => self.collectionFailed(source),
  });
  const collectSources = cycleOptions([
    ...(scraper ? [{ name: "scrape", collect: (now: number) => scraper.scrape(now) }] : []),
    { name: "self", collect: (now: number) => collector.collect(now) },
  ]);
  /** One collection: own metrics and scraped targets, one timestamp, straight into the queue. Never rejects. */
  const cycle = async (): Promise<void> => {
    // Timestamps of one series must increase even if the wall clock steps back a little.
    const now = Math.max(Date.now(), lastCycleMs + 1);
    lastCycleMs = now;
    await collectOnce(collectSources, now);
  };

  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      log.warn({ signal, buffered: q.buffered }, "Second signal: exiting at once; buffered samples are lost");
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    shuttingDown = true;
    log.info({ signal, shutdownTimeout: formatDuration(config.shutdownTimeoutMs) }, "Shutting down");
    loop.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  running = true;
  let current: Promise<void> = cycle();
  try {
    // setInterval yields a missed tick at once after a slow cycle; a cycle never waits for delivery.
    for await (const _ of setInterval(config.pushIntervalMs, undefined, { signal: loop.signal })) {
      await current;
      if (loop.signal.aborted) break;
      current = cycle();
    }
  } catch (e) {
    if ((e as Error).name !== "AbortError") throw e;
  }
  running = false;

  // Bounded shutdown: the deadline runs from the signal, covering the last collection and the flush.
  const deadline = Date.now() + config.shutdownTimeoutMs;
  await Promise.race([current, sleep(config.shutdownTimeoutMs)]);
  await Promise.race([cycle(), sleep(Math.max(0, deadline - Date.now()))]);
  if (config.staleMarkersOnShutdown) {
    // In a sidecar the pod is going away and our series end here: stale markers tell the receiver at once instead of
    // after five minutes. Standalone (the default), the series carry on after a restart, as with Prometheus' sender,
    // which sends no markers at shutdown: markers would open a gap in every series at each restart.
    const staleAt = Math.max(Date.now(), lastCycleMs + 1);
    await collectOnce(
      cycleOptions([
        ...(scraper ? [{ name: "scrape", collect: (now: number) => scraper.staleAll(now) }] : []),
        { name: "self", collect: (now: number) => collector.staleAll(now) },
      ]),
      staleAt,
    );
  }
  const { lost, kept } = await q.close(Math.max(0, deadline - Date.now()));
  if (kept > 0) {
    // lost, when > 0: samples whose BUFFER_DIR write had failed (disk full) or that were evicted from it.
    log.warn(
      { undelivered: kept, ...(lost > 0 ? { lost } : {}), bufferDir: config.bufferDir },
      "Shutdown: undelivered samples stay in BUFFER_DIR for the next start",
    );
  } else if (lost > 0) {
    log.warn(
      { lost, shutdownTimeout: formatDuration(config.shutdownTimeoutMs) },
      "Shutdown: samples not delivered before the deadline are lost",
    );
  } else {
    log.info({}, "Shutdown complete: every sample delivered");
  }
  await server?.close();
  client.close();
  self.close();
  process.exit(0);
}

process.on("uncaughtException", (err) => {
  process.stderr.write(
    `${JSON.stringify({ level: 60, time: Date.now(), msg: "Uncaught exception", err: err.stack ?? String(err) })}\n`,
  );
  process.exit(1);
});

await main();
