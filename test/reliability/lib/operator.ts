// Starts the real operator (operator/src/main.ts) as a local process against the test control plane, in webhook URL
// mode on free loopback ports, and kills it by pid on stop and on test-process exit.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./kube.ts";
import { freePort, parseExposition, type ExpoSample, type LogLine } from "./pusher.ts";
import { waitFor } from "../../lib/wait.ts";
import { collectOutput } from "./output.ts";

const live = new Set<ChildProcess>();
let installed = false;

export interface OperatorProcess {
  readonly pid: number;
  readonly webhookPort: number;
  readonly webhookUrl: string;
  readonly metricsPort: number;
  readonly probePort: number;
  readonly logs: LogLine[];
  readonly exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  metrics(): Promise<ExpoSample[]>;
  probe(path: "/healthz" | "/readyz"): Promise<number>;
  tail(n?: number): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartOperatorOptions {
  kubeconfigPath: string;
  env?: Record<string, string>;
  /** Wait for /readyz 200 (default true). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
}

export async function startOperator(opts: StartOperatorOptions): Promise<OperatorProcess> {
  if (!installed) {
    installed = true;
    process.on("exit", () => {
      for (const c of live)
        if (c.pid !== undefined && c.exitCode === null)
          try {
            process.kill(c.pid, "SIGKILL");
          } catch {
            /* gone */
          }
    });
  }
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const [webhookPort, metricsPort, probePort] = [...ports] as [number, number, number];
  const webhookUrl = `https://127.0.0.1:${webhookPort}/mutate-v1-pod`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    KUBECONFIG: opts.kubeconfigPath,
    WEBHOOK_URL: webhookUrl,
    WEBHOOK_PORT: String(webhookPort),
    METRICS_PORT: String(metricsPort),
    PROBE_PORT: String(probePort),
    BIND_ADDRESS: "127.0.0.1",
    POD_NAMESPACE: "metrics-pusher-system",
    POD_NAME: "operator-reliability",
    LEADER_ELECTION: "false",
    LOG_LEVEL: "info",
    ...(opts.env ?? {}),
  };
  const child = spawn(process.execPath, ["--conditions=source", join(ROOT, "operator/src/main.ts")], {
    env,
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  if (child.pid === undefined) throw new Error("the operator did not start");
  const pid = child.pid;
  const { logs, raw } = collectOutput<LogLine>(child);
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      live.delete(child);
      resolve(exitInfo);
    }),
  );
  const tail = (n = 30): string => [...logs.slice(-n).map((l) => JSON.stringify(l)), ...raw.slice(-n)].join("\n");
  const metrics = async (): Promise<ExpoSample[]> => {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    return parseExposition(await r.text());
  };
  const op: OperatorProcess = {
    pid,
    webhookPort,
    webhookUrl,
    metricsPort,
    probePort,
    logs,
    get exitInfo() {
      return exitInfo;
    },
    exited,
    metrics,
    async metric(name, labels = {}) {
      let sum = 0;
      for (const s of await metrics())
        if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
      return sum;
    },
    async probe(path) {
      const r = await fetch(`http://127.0.0.1:${probePort}${path}`, { signal: AbortSignal.timeout(3000) });
      await r.arrayBuffer();
      return r.status;
    },
    tail,
    async stop(signal = "SIGTERM") {
      if (exitInfo === undefined) {
        try {
          process.kill(pid, signal);
        } catch {
          /* gone */
        }
        const timer = setTimeout(() => {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            /* gone */
          }
        }, 20_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  if (opts.waitReady ?? true) {
    try {
      await waitFor(
        async () => {
          if (exitInfo !== undefined) throw new Error(`the operator exited ${JSON.stringify(exitInfo)}`);
          return (await op.probe("/readyz")) === 200;
        },
        { timeoutMs: opts.readyTimeoutMs ?? 45_000, message: "the operator's /readyz answering 200" },
      );
    } catch (e) {
      await op.stop("SIGKILL");
      throw new Error(`${(e as Error).message}\n--- operator output ---\n${tail()}`);
    }
  }
  return op;
}
