// The real operator (operator/src/main.ts) as a local process against a test control plane, in webhook URL mode on
// free loopback ports: the kube-apiserver calls https://127.0.0.1:<port>/mutate-v1-pod over TLS. Killed by pid on
// stop and when the test process exits, also after a crash.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import type { ControlPlane } from "../controlplane/harness.ts";
import { killOnExit } from "./children.ts";
import { samplesOf, sumOf, type ExpoSample } from "./exposition.ts";
import { ROOT } from "./kube.ts";
import { freePort } from "./net.ts";
import { waitFor } from "./wait.ts";

const MAIN = join(ROOT, "operator/src/main.ts");
export const OPERATOR_NAMESPACE = "metrics-pusher-system";

export interface OperatorPorts {
  webhook: number;
  metrics: number;
  probe: number;
}
export type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

export interface OperatorProcess {
  readonly name: string;
  readonly pid: number;
  readonly ports: OperatorPorts;
  readonly webhookUrl: string;
  readonly metricsUrl: string;
  readonly probeUrl: string;
  /** Every output line so far, stdout and stderr (JSON log lines from pino, and anything else). */
  readonly lines: string[];
  /** The JSON log records among the lines. */
  records(): Array<Record<string, unknown>>;
  /** Last lines of output, for failure messages. */
  tail(n?: number): string;
  readonly exitInfo: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  /** Resolves when /readyz answers 200; fails at once if the process exits, with its last lines. */
  waitReady(timeoutMs?: number): Promise<void>;
  probe(path: "/healthz" | "/readyz"): Promise<number>;
  metrics(): Promise<ExpoSample[]>;
  /** Sum of the samples of `name` whose labels include `labels`; 0 when none. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** `signal` (SIGTERM), then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<void>;
}

export interface StartOperatorOptions {
  /** The cluster; the log file goes into its directory (operator-<name>.log). */
  cp: ControlPlane;
  /** Another identity than the control plane's admin (e.g. a ServiceAccount's kubeconfig). */
  kubeconfigPath?: string;
  /** POD_NAME, also the log file's name (default "operator"). */
  name?: string;
  env?: Record<string, string>;
  /** Reuse ports (a restart keeps the webhook URL the webhook configuration points at). */
  ports?: OperatorPorts;
  /** Wait for /readyz 200 before returning (default false: call waitReady()); the process is killed if it fails. */
  waitReady?: boolean;
  readyTimeoutMs?: number;
}

/** Three distinct free loopback ports. */
export async function operatorPorts(): Promise<OperatorPorts> {
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const [webhook, metrics, probe] = [...ports] as [number, number, number];
  return { webhook, metrics, probe };
}

const webhookUrlOf = (ports: OperatorPorts): string => `https://127.0.0.1:${ports.webhook}/mutate-v1-pod`;

/** The environment of an operator on loopback in webhook URL mode (the tests' and the demo's), without log level. */
export function operatorEnv(o: { kubeconfigPath: string; ports: OperatorPorts; name: string }): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    KUBECONFIG: o.kubeconfigPath,
    WEBHOOK_URL: webhookUrlOf(o.ports),
    WEBHOOK_PORT: String(o.ports.webhook),
    METRICS_PORT: String(o.ports.metrics),
    PROBE_PORT: String(o.ports.probe),
    BIND_ADDRESS: "127.0.0.1",
    POD_NAMESPACE: OPERATOR_NAMESPACE,
    POD_NAME: o.name,
  };
}

export async function startOperator(o: StartOperatorOptions): Promise<OperatorProcess> {
  const name = o.name ?? "operator";
  const ports = o.ports ?? (await operatorPorts());
  const webhookUrl = webhookUrlOf(ports);
  const env: Record<string, string> = {
    ...operatorEnv({ kubeconfigPath: o.kubeconfigPath ?? o.cp.kubeconfigPath, ports, name }),
    LOG_LEVEL: "debug",
    // Short enough that a takeover happens within a test, long enough for a loaded 2-core machine.
    LEASE_DURATION: "6s",
    LEASE_RENEW_DEADLINE: "4s",
    LEASE_RETRY_PERIOD: "500ms",
    ...o.env,
  };
  // The Node running the tests (node_modules/.bin/node, 24.x): `node` on PATH may be another version.
  const child = spawn(process.execPath, ["--conditions=source", MAIN], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  if (child.pid === undefined) throw new Error(`the operator ${name} did not start`);
  const pid = child.pid;

  const lines: string[] = [];
  const file = createWriteStream(join(o.cp.dir, `operator-${name}.log`), { flags: "a" });
  file.on("error", () => {});
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
      if (line === "") return;
      lines.push(line);
      file.write(line + "\n");
      if (process.env.TEST_LOG) process.stderr.write(`[operator ${name}] ${line}\n`);
    });
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) =>
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      file.end();
      resolve(exitInfo);
    }),
  );
  const tail = (n = 30): string => lines.slice(-n).join("\n");
  const probeUrl = `http://127.0.0.1:${ports.probe}`;
  const metricsUrl = `http://127.0.0.1:${ports.metrics}/metrics`;
  const metrics = async (): Promise<ExpoSample[]> => {
    const r = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
    return samplesOf(await r.text());
  };
  const probe = async (path: string): Promise<number> => {
    const r = await fetch(`${probeUrl}${path}`, { signal: AbortSignal.timeout(3000) });
    await r.arrayBuffer();
    return r.status;
  };

  const op: OperatorProcess = {
    name,
    pid,
    ports,
    webhookUrl,
    metricsUrl,
    probeUrl,
    lines,
    records: () =>
      lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    tail,
    get exitInfo() {
      return exitInfo;
    },
    exited,
    async waitReady(timeoutMs = 60_000) {
      try {
        await waitFor(
          async () => {
            if (exitInfo !== undefined) throw new Error(`the operator ${name} exited ${JSON.stringify(exitInfo)}`);
            return (await probe("/readyz")) === 200;
          },
          { timeoutMs, message: `the operator ${name}'s /readyz answering 200` },
        );
      } catch (e) {
        await op.stop({ signal: "SIGKILL" });
        throw new Error(`${(e as Error).message}\n--- last operator lines ---\n${tail()}`, { cause: e });
      }
    },
    probe,
    metrics,
    async metric(metricName, labels = {}) {
      return sumOf(await metrics(), metricName, labels);
    },
    async stop({ signal = "SIGTERM", graceMs = 20_000 } = {}) {
      if (exitInfo !== undefined) return;
      try {
        process.kill(pid, signal);
      } catch {
        /* gone */
      }
      const r = await Promise.race([
        exited.then(() => "exited" as const),
        sleep(graceMs, "timeout" as const, { ref: false }),
      ]);
      if (r === "timeout") {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
        await exited;
      }
    },
  };
  if (o.waitReady) await op.waitReady(o.readyTimeoutMs);
  return op;
}
