// The operator as a local process (node --conditions=source operator/src/main.ts) against a test control plane, in
// URL mode: the real kube-apiserver calls its webhook at https://127.0.0.1:<port>/mutate-v1-pod over TLS.
import { spawn, type ChildProcess, execFile } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiextensionsV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { freePort, type ControlPlane } from "../controlplane/harness.ts";
import { waitFor } from "../lib/wait.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, "../..");
// The Node running the tests (node_modules/.bin/node, 24.x): `node` on PATH may be another version.
const NODE = process.execPath;
const MAIN = join(ROOT, "operator/src/main.ts");
export const OPERATOR_NAMESPACE = "metrics-pusher-system";

export interface OperatorProcess {
  readonly name: string;
  readonly pid: number;
  readonly webhookUrl: string;
  readonly metricsUrl: string;
  readonly probeUrl: string;
  /** Every output line so far (JSON log lines from pino). */
  readonly lines: string[];
  /** Parsed JSON log records. */
  records(): Array<Record<string, unknown>>;
  waitReady(timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcess>();
let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // No operator survives its test file, also when the test crashes.
  process.on("exit", () => {
    for (const c of live)
      if (c.pid)
        try {
          process.kill(c.pid, "SIGKILL");
        } catch {
          /* gone */
        }
  });
}

export interface StartOperatorOptions {
  cp: ControlPlane;
  /** POD_NAME, also the log file name. */
  name: string;
  env?: Record<string, string>;
  /** Reuse ports (a restart keeps the webhook URL the webhook configuration points at). */
  ports?: { webhook: number; metrics: number; probe: number };
}

export async function operatorPorts(): Promise<{ webhook: number; metrics: number; probe: number }> {
  return { webhook: await freePort(), metrics: await freePort(), probe: await freePort() };
}

export async function startOperator(
  o: StartOperatorOptions,
): Promise<OperatorProcess & { ports: { webhook: number; metrics: number; probe: number } }> {
  installHandlers();
  const ports = o.ports ?? (await operatorPorts());
  const webhookUrl = `https://127.0.0.1:${ports.webhook}/mutate-v1-pod`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    KUBECONFIG: o.cp.kubeconfigPath,
    WEBHOOK_URL: webhookUrl,
    WEBHOOK_PORT: String(ports.webhook),
    METRICS_PORT: String(ports.metrics),
    PROBE_PORT: String(ports.probe),
    BIND_ADDRESS: "127.0.0.1",
    POD_NAMESPACE: OPERATOR_NAMESPACE,
    POD_NAME: o.name,
    LOG_LEVEL: "debug",
    // Short enough that a takeover happens within a test, long enough for a loaded 2-core machine.
    LEASE_DURATION: "6s",
    LEASE_RENEW_DEADLINE: "4s",
    LEASE_RETRY_PERIOD: "500ms",
    ...o.env,
  };
  const child = spawn(NODE, ["--conditions=source", MAIN], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  const lines: string[] = [];
  const file = createWriteStream(join(o.cp.dir, `operator-${o.name}.log`), { flags: "a" });
  file.on("error", () => {});
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line === "") continue;
      lines.push(line);
      file.write(line + "\n");
      if (process.env.TEST_LOG) process.stderr.write(`[operator ${o.name}] ${line}\n`);
    }
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on("exit", (code, signal) => {
      live.delete(child);
      file.end();
      res({ code, signal });
    }),
  );
  let exitInfo: string | undefined;
  void exited.then((e) => (exitInfo = e.signal ?? `exit code ${e.code}`));
  child.on("error", (err) => {
    exitInfo = `spawn error: ${err.message}`;
    live.delete(child);
  });

  const probeUrl = `http://127.0.0.1:${ports.probe}`;
  return {
    name: o.name,
    pid: child.pid ?? -1,
    ports,
    webhookUrl,
    metricsUrl: `http://127.0.0.1:${ports.metrics}/metrics`,
    probeUrl,
    lines,
    exited,
    records: () =>
      lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    async waitReady(timeoutMs = 60_000) {
      await waitFor(
        async () => {
          if (exitInfo)
            throw new Error(`operator ${o.name} exited (${exitInfo}); last lines:\n${lines.slice(-20).join("\n")}`);
          const r = await fetch(`${probeUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
          return r.status === 200;
        },
        { timeoutMs: timeoutMs, message: `operator ${o.name} /readyz 200` },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- last operator lines ---\n${lines.slice(-30).join("\n")}`);
      });
    },
    async stop(graceMs = 10_000) {
      if (exitInfo !== undefined || child.pid === undefined) return;
      child.kill("SIGTERM");
      const r = await Promise.race([exited.then(() => "exited" as const), sleep(graceMs, "timeout" as const)]);
      if (r === "timeout") {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

/** kubectl from the control plane build, against the test cluster. */
export async function kubectl(cp: ControlPlane, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(
    join(cp.binDir, "kubectl"),
    ["--kubeconfig", cp.kubeconfigPath, ...args],
    { cwd: ROOT, maxBuffer: 16 << 20 },
  );
  return stdout;
}

/** Applies crds/ (kustomize) and waits until the CRD is Established. */
export async function installCrds(cp: ControlPlane): Promise<void> {
  const crds = join(ROOT, "crds");
  await kubectl(cp, "apply", "--server-side", existsSync(join(crds, "kustomization.yaml")) ? "-k" : "-f", crds);
  const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  await waitFor(
    async () => {
      const crd = await ext.readCustomResourceDefinition({ name: "metricspushers.metricspusher.dev" });
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    },
    { timeoutMs: 30_000, intervalMs: 100, message: "CRD metricspushers.metricspusher.dev Established" },
  );
}

export async function createNamespace(
  kc: KubeConfig,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels } } });
}
