// Starts the real Remote-Write receivers the tests and benchmarks read back from: Prometheus 2.42 (with
// --web.enable-remote-write-receiver) and VictoriaMetrics 1.79, unpacked by fetch.sh from Debian's packages. Each
// peer gets a free loopback port and a temporary data directory, is polled until ready, and is killed by pid on
// stop(), on process exit and on SIGINT/SIGTERM; its directory is removed. A peer that does not start is an error
// carrying its last log lines, never a skip.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort } from "../lib/net.ts";

const FETCH_SH = path.join(path.dirname(fileURLToPath(import.meta.url)), "fetch.sh");

let binDirPromise: Promise<string> | undefined;
/** The directory holding prometheus, victoria-metrics, vmagent…: `<root>/usr/bin` from fetch.sh (run once). */
export function peersBinDir(): Promise<string> {
  binDirPromise ??= new Promise<string>((resolve, reject) => {
    execFile("bash", [FETCH_SH], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`test/peers/fetch.sh failed: ${err.message}\n${stderr}`));
      else resolve(path.join(stdout.trim().split("\n").pop()!, "usr", "bin"));
    });
  });
  return binDirPromise;
}

export { freePort };

export interface PeerSpec {
  /** For messages and the temp dir name. */
  readonly name: string;
  /** Absolute path of the executable. */
  readonly command: string;
  /** Arguments given the chosen port and a fresh temporary directory (write config files there). */
  readonly args: (ctx: { port: number; dir: string }) => string[];
  /** Path polled with GET until it answers 200 (e.g. /-/ready, /health). */
  readonly readyPath: string;
  readonly readyTimeoutMs?: number;
  /** Added to this process's environment; a function receives the port and directory. */
  readonly env?:
    Readonly<Record<string, string>> | ((ctx: { port: number; dir: string }) => Readonly<Record<string, string>>);
  /** Working directory; default: the temporary directory. */
  readonly cwd?: string;
  /** The address it listens on and is read at; default 127.0.0.1 (the node bed's pods need its bridge address). */
  readonly host?: string;
}

export interface Peer {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** http://<host>:<port>, host 127.0.0.1 unless the spec says otherwise */
  readonly url: string;
  readonly dir: string;
  /** The last lines the process wrote (stdout and stderr). */
  logs(): string;
  /** Settles when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, SIGKILL after a grace period, then removes the directory. Idempotent. */
  stop(): Promise<void>;
}

const LOG_LINES = 200;
const live = new Set<{ child: ChildProcess; dir: string }>();
let hooksInstalled = false;

function killAllSync(): void {
  for (const p of live) {
    try {
      if (p.child.exitCode === null && p.child.signalCode === null) process.kill(p.child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    rmSync(p.dir, { recursive: true, force: true });
  }
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAllSync);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = (): void => {
      // Alone on this signal, we took over Node's default: stop the peers and die of it as Node would have.
      // Otherwise another listener (the demo, a test runner) decides the order: it may still need a peer, e.g. for
      // the pusher's last flush, and its exit runs killAllSync.
      if (process.listenerCount(sig) !== 1) return;
      killAllSync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Starts one peer process and waits until it is ready; retries on another port if the port was taken meanwhile. */
export async function spawnPeer(spec: PeerSpec): Promise<Peer> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await spawnOnce(spec);
    } catch (e) {
      lastError = e as Error;
      if (!/address already in use/i.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

async function spawnOnce(spec: PeerSpec): Promise<Peer> {
  installHooks();
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), `metrics-pusher-${spec.name}-`));
  const url = `http://${spec.host ?? "127.0.0.1"}:${port}`;
  const lines: string[] = [];
  let partial = "";
  const onData = (chunk: Buffer): void => {
    const text = partial + chunk.toString("utf8");
    const parts = text.split("\n");
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      if (lines.length > LOG_LINES) lines.shift();
    }
  };
  const logs = (): string => [...lines, partial].filter((l) => l !== "").join("\n");

  const extraEnv = typeof spec.env === "function" ? spec.env({ port, dir }) : spec.env;
  const child = spawn(spec.command, spec.args({ port, dir }), {
    cwd: spec.cwd ?? dir,
    env: { ...process.env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const entry = { child, dir };
  live.add(entry);
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let spawnError: Error | undefined;
  child.once("error", (e) => (spawnError = e));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, "SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            process.kill(child.pid!, "SIGKILL");
          } catch {
            // already gone
          }
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
      live.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    })());

  const timeoutMs = spec.readyTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError || child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(
        `${spec.name} (${spec.command}) exited before it was ready (${spawnError?.message ?? `code ${child.exitCode}, signal ${child.signalCode}`}); last log lines:\n${logs()}`,
      );
    }
    try {
      const res = await fetch(url + spec.readyPath, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `${spec.name} was not ready at ${url}${spec.readyPath} within ${timeoutMs} ms; last log lines:\n${logs()}`,
      );
    }
    await sleep(100);
  }
  return { name: spec.name, pid: child.pid!, port, url, dir, logs, exited, stop };
}

// ---- reading back ----

/** One series of an instant vector. */
export interface VectorSample {
  readonly metric: Record<string, string>;
  readonly value: number;
  readonly timestampMs: number;
}
/** Raw samples of one series. */
export interface RawSeries {
  readonly metric: Record<string, string>;
  readonly values: number[];
  readonly timestampsMs: number[];
}

export interface Receiver extends Peer {
  /** Where the pusher sends: <url>/api/v1/write. */
  readonly remoteWriteUrl: string;
  /** Instant query; `time` in ms (default: now). Throws on an error answer or a non-vector result. */
  query(promql: string, timeMs?: number): Promise<VectorSample[]>;
  /** Label sets of the series matching a selector (/api/v1/series), over the last `sinceMs` (default 1 h). */
  series(match: string, sinceMs?: number): Promise<Record<string, string>[]>;
  /** Every stored sample of the series matching a selector over the last `sinceMs` (default 1 h). */
  samples(match: string, sinceMs?: number): Promise<RawSeries[]>;
}

/** Prometheus' string form of a float: "+Inf", "-Inf", "NaN" or a decimal. */
export function promValue(s: string): number {
  if (s === "+Inf" || s === "Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  return Number(s);
}

async function apiGet(base: string, pathname: string, params: [string, string][]): Promise<unknown> {
  const u = new URL(pathname, base);
  for (const [k, v] of params) u.searchParams.append(k, v);
  const res = await fetch(u, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${u.href}: HTTP ${res.status}: ${text.slice(0, 1000)}`);
  return pathname.endsWith("/export") ? text : JSON.parse(text);
}

interface ApiAnswer<T> {
  status: string;
  data: T;
  error?: string;
}

function receiver(
  peer: Peer,
  readRaw: (match: string, sinceMs: number) => Promise<RawSeries[]>,
  beforeRead: () => Promise<void> = async () => {},
): Receiver {
  return {
    ...peer,
    remoteWriteUrl: `${peer.url}/api/v1/write`,
    async query(promql, timeMs = Date.now()) {
      await beforeRead();
      const a = (await apiGet(peer.url, "/api/v1/query", [
        ["query", promql],
        ["time", (timeMs / 1000).toFixed(3)],
      ])) as ApiAnswer<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>;
      if (a.status !== "success") throw new Error(`query ${promql}: ${a.error}`);
      if (a.data.resultType !== "vector") throw new Error(`query ${promql}: got a ${a.data.resultType}, not a vector`);
      return a.data.result.map((r) => ({
        metric: r.metric,
        value: promValue(r.value[1]),
        timestampMs: Math.round(r.value[0] * 1000),
      }));
    },
    async series(match, sinceMs = 3_600_000) {
      await beforeRead();
      const now = Date.now();
      const a = (await apiGet(peer.url, "/api/v1/series", [
        ["match[]", match],
        ["start", ((now - sinceMs) / 1000).toFixed(3)],
        ["end", (now / 1000 + 60).toFixed(3)],
      ])) as ApiAnswer<Record<string, string>[]>;
      if (a.status !== "success") throw new Error(`series ${match}: ${a.error}`);
      return a.data;
    },
    samples: async (match, sinceMs = 3_600_000) => {
      await beforeRead();
      return readRaw(match, sinceMs);
    },
  };
}

export async function startPrometheus(
  opts: { extraArgs?: string[]; config?: string; host?: string } = {},
): Promise<Receiver> {
  const bin = path.join(await peersBinDir(), "prometheus");
  const host = opts.host ?? "127.0.0.1";
  const peer = await spawnPeer({
    name: "prometheus",
    command: bin,
    readyPath: "/-/ready",
    host,
    args: ({ port, dir }) => {
      const config = path.join(dir, "prometheus.yml");
      // No scrape jobs: everything arrives by Remote-Write.
      writeFileSync(config, opts.config ?? "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n");
      return [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(dir, "data")}`,
        `--web.listen-address=${host}:${port}`,
        "--web.enable-remote-write-receiver",
        "--log.level=info",
        ...(opts.extraArgs ?? []),
      ];
    },
  });
  // Prometheus has no raw export: a range selector evaluated now returns the stored samples (stale markers hidden).
  return receiver(peer, async (match, sinceMs) => {
    const a = (await apiGet(peer.url, "/api/v1/query", [
      ["query", `${match}[${Math.ceil(sinceMs / 1000)}s]`],
      ["time", (Date.now() / 1000 + 1).toFixed(3)],
    ])) as ApiAnswer<{ result: { metric: Record<string, string>; values: [number, string][] }[] }>;
    if (a.status !== "success") throw new Error(`samples ${match}: ${a.error}`);
    return a.data.result.map((r) => ({
      metric: r.metric,
      values: r.values.map((v) => promValue(v[1])),
      timestampsMs: r.values.map((v) => Math.round(v[0] * 1000)),
    }));
  });
}

export async function startVictoriaMetrics(opts: { extraArgs?: string[] } = {}): Promise<Receiver> {
  const bin = path.join(await peersBinDir(), "victoria-metrics");
  const peer = await spawnPeer({
    name: "victoria-metrics",
    command: bin,
    readyPath: "/health",
    args: ({ port, dir }) => [
      `-storageDataPath=${path.join(dir, "data")}`,
      `-httpListenAddr=127.0.0.1:${port}`,
      // Without these, queries hide the last 30 s and cache answers: tests read back what they just wrote.
      "-search.latencyOffset=0s",
      "-search.disableCache",
      "-retentionPeriod=100y",
      ...(opts.extraArgs ?? []),
    ],
  });
  // Freshly ingested rows become searchable only after an in-memory flush (seconds): force it before each read.
  const flush = async (): Promise<void> => {
    const res = await fetch(`${peer.url}/internal/force_flush`, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${peer.url}/internal/force_flush: HTTP ${res.status}`);
  };
  return receiver(
    peer,
    async (match, sinceMs) => {
      const now = Date.now();
      const text = (await apiGet(peer.url, "/api/v1/export", [
        ["match[]", match],
        ["start", ((now - sinceMs) / 1000).toFixed(3)],
        ["end", (now / 1000 + 60).toFixed(3)],
      ])) as string;
      return text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => {
          const r = JSON.parse(l) as {
            metric: Record<string, string>;
            values: (number | string | null)[];
            timestamps: number[];
          };
          // VictoriaMetrics writes non-finite values as JSON null or strings ("Inf", "NaN").
          return {
            metric: r.metric,
            values: r.values.map((v) => (typeof v === "number" ? v : v === null ? NaN : promValue(String(v)))),
            timestampsMs: r.timestamps,
          };
        });
    },
    flush,
  );
}
