// Starts the real pusher (pusher/src/main.ts, run by Node 24's type stripping) as a child process for the reliability
// suites: its JSON log lines are kept, its /metrics is read over HTTP_PORT, its resident memory from /proc, and it is
// killed by pid when the test ends or the test process exits.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "../../lib/wait.ts";
import { collectOutput } from "./output.ts";
import { freePort } from "../../lib/net.ts";
import { memory } from "../../lib/memory.ts";
import { killOnExit } from "../../lib/children.ts";
import { samplesOf, sumOf, type ExpoSample } from "../../lib/exposition.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PUSHER_MAIN = join(ROOT, "pusher/src/main.ts");

export { freePort };

export interface LogLine {
  level?: number | string;
  msg?: string;
  [k: string]: unknown;
}

export interface PusherProcess {
  readonly pid: number;
  readonly httpPort: number;
  /** Parsed JSON log lines (stdout), in order. */
  readonly logs: LogLine[];
  /** Lines that were not JSON (stderr included), for failure messages. */
  readonly rawOutput: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The exposition text of /metrics. */
  metricsText(): Promise<string>;
  /** Sum of the samples of `name` whose labels include `labels`; 0 when none. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Every sample of /metrics as [name, labels, value]. */
  metrics(): Promise<ExpoSample[]>;
  /** VmRSS of the process in bytes. */
  rssBytes(): number;
  /** VmHWM of the process in bytes: the peak RSS since it started. */
  peakRssBytes(): number;
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL (if still running) and wait for the exit. */
  stop(): Promise<void>;
  /** Last lines of output, for assertion messages. */
  tail(n?: number): string;
}

export interface StartPusherOptions {
  env: Record<string, string>;
  /** Wait until /ready answers 200 (default true). */
  waitReady?: boolean;
  /** Extra node flags (e.g. --max-old-space-size). */
  nodeArgs?: string[];
}

export async function startPusher(options: StartPusherOptions): Promise<PusherProcess> {
  const httpPort = options.env.HTTP_PORT ? Number(options.env.HTTP_PORT) : await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LOG_LEVEL: "info",
    HTTP_PORT: String(httpPort),
    HTTP_ADDRESS: "127.0.0.1",
    POD_NAME: "reliability",
    ...options.env,
  };
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--conditions=source", PUSHER_MAIN], {
    env,
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  const { logs, raw: rawOutput } = collectOutput<LogLine>(child);
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  if (child.pid === undefined) throw new Error("the pusher did not start (no pid)");
  const pid = child.pid;

  const tail = (n = 30): string => [...logs.slice(-n).map((l) => JSON.stringify(l)), ...rawOutput.slice(-n)].join("\n");

  const metricsText = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return res.text();
  };
  const metrics = async (): Promise<ExpoSample[]> => samplesOf(await metricsText());

  const p: PusherProcess = {
    pid,
    httpPort,
    logs,
    rawOutput,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    metricsText,
    metrics,
    async metric(name, labels = {}) {
      return sumOf(await metrics(), name, labels);
    },
    rssBytes: () => memory(pid).rss,
    peakRssBytes: () => memory(pid).peakRss,
    signal(sig) {
      if (exitInfo === undefined) process.kill(pid, sig);
    },
    async stop() {
      if (exitInfo === undefined) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      await exited;
    },
    tail,
  };

  if (options.waitReady ?? true) {
    try {
      await waitFor(
        async () => {
          if (exitInfo !== undefined) throw new Error(`the pusher exited (${JSON.stringify(exitInfo)})`);
          const r = await fetch(`http://127.0.0.1:${httpPort}/ready`, { signal: AbortSignal.timeout(2000) });
          return r.status === 200;
        },
        { timeoutMs: 20_000, message: `the pusher answering /ready on port ${httpPort}` },
      );
    } catch (e) {
      await p.stop();
      throw new Error(`${(e as Error).message}\n--- pusher output ---\n${tail()}`, { cause: e });
    }
  }
  return p;
}

/** The first log line whose msg matches, or undefined. */
export function findLog(logs: readonly LogLine[], re: RegExp): LogLine | undefined {
  return logs.find((l) => typeof l.msg === "string" && re.test(l.msg));
}
