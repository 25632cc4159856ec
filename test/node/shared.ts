// One node bed for every node test file of a run. node --test runs each file in its own process, so the bed lives
// in a supervisor process (supervisor.ts) that the first file starts and later files attach to; scripts/run-tests.ts
// gives the run a directory in METRICS_PUSHER_NODE_BED and stops the supervisor, by its pid, when the run ends.
// A file run on its own (no such variable) starts a bed in its own process and stops it in release().
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { startNodeBed, type NodeBed } from "./bed.ts";

const run = promisify(execFile);
const SUPERVISOR = fileURLToPath(new URL("supervisor.ts", import.meta.url));
export const SHARED_BED_ENV = "METRICS_PUSHER_NODE_BED";
const START_TIMEOUT_MS = 15 * 60_000; // a cold build of everything included

/** What a test needs of a bed, whichever process runs it: NodeBed's plain fields, which cross processes as JSON. */
export type NodeBedInfo = Pick<
  NodeBed,
  | "kubeconfigPath"
  | "kubectl"
  | "nodeName"
  | "bridgeIp"
  | "testImage"
  | "pauseImage"
  | "images"
  | "runDir"
  | "stateDir"
  | "containerdSocket"
  | "startupSeconds"
> & { caCertPem: string; pids: Record<string, number> };

export interface SharedNodeBed extends NodeBedInfo {
  kubeConfig: KubeConfig;
  /** kubectl against the bed; rejects with stderr on a non-zero exit. */
  kubectlRun(args: string[], input?: string): Promise<string>;
  /** ctr against the bed's containerd, namespace k8s.io. */
  ctr(args: string[]): Promise<string>;
  /** Whether this process started the bed (and release() stops it). */
  owned: boolean;
  release(): Promise<void>;
}

export function infoOf(bed: NodeBed): NodeBedInfo {
  return {
    kubeconfigPath: bed.kubeconfigPath,
    kubectl: bed.kubectl,
    nodeName: bed.nodeName,
    bridgeIp: bed.bridgeIp,
    testImage: bed.testImage,
    pauseImage: bed.pauseImage,
    images: bed.images,
    runDir: bed.runDir,
    stateDir: bed.stateDir,
    containerdSocket: bed.containerdSocket,
    caCertPem: bed.cp.caCertPem,
    pids: { ...bed.pids },
    startupSeconds: bed.startupSeconds,
  };
}

function handle(info: NodeBedInfo, owned: boolean, release: () => Promise<void>): SharedNodeBed {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(info.kubeconfigPath);
  const exec = async (cmd: string, args: string[], input?: string): Promise<string> => {
    const child = run(cmd, args, { env: { ...process.env, KUBECONFIG: info.kubeconfigPath }, maxBuffer: 32 << 20 });
    if (input !== undefined) {
      child.child.stdin!.end(input);
    }
    try {
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${cmd} ${args.join(" ")}: ${(e.stderr ?? "").trim() || e.message}`, { cause: err });
    }
  };
  return {
    ...info,
    kubeConfig,
    kubectlRun: (args, input) => exec(info.kubectl, args, input),
    ctr: (args) => exec("ctr", [`--address=${info.containerdSocket}`, "--namespace=k8s.io", ...args]),
    owned,
    release,
  };
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The run's bed: attached to when the supervisor has it up, started (through the supervisor) otherwise. */
export async function acquireNodeBed(log: (line: string) => void = () => {}): Promise<SharedNodeBed> {
  const dir = process.env[SHARED_BED_ENV];
  if (dir === undefined || dir === "") {
    const bed = await startNodeBed({ log });
    process.stderr.write(`node bed: started in ${bed.startupSeconds}s (this file's own bed)\n`);
    return handle(infoOf(bed), true, () => bed.stop());
  }
  mkdirSync(dir, { recursive: true });
  const infoFile = join(dir, "bed.json");
  const pidFile = join(dir, "supervisor.pid");
  const readPid = (): number | undefined => {
    try {
      return Number(readFileSync(pidFile, "utf8").trim());
    } catch {
      return undefined;
    }
  };
  // Files run one at a time, but a person may run two at once: the start itself is serialised by the host lock.
  let pid = readPid();
  if (pid === undefined || !isAlive(pid)) {
    const logFile = join(dir, "supervisor.log");
    const out = openSync(logFile, "a");
    const child = spawn(process.execPath, ["--conditions=source", SUPERVISOR, dir], {
      detached: true,
      stdio: ["ignore", out, out],
      env: process.env,
    });
    closeSync(out);
    child.unref();
    pid = child.pid!;
    process.stderr.write(`node bed: starting the run's shared bed (supervisor pid ${pid}, log ${logFile})\n`);
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!existsSync(infoFile)) {
    if (!isAlive(pid)) {
      const tail = readFileSync(join(dir, "supervisor.log"), "utf8").split("\n").slice(-40).join("\n");
      throw new Error(`node bed: the supervisor (pid ${pid}) exited before the bed was up:\n${tail}`);
    }
    if (Date.now() > deadline) throw new Error(`node bed: not up within ${START_TIMEOUT_MS / 60_000} minutes`);
    await sleep(500);
  }
  const info = JSON.parse(readFileSync(infoFile, "utf8")) as NodeBedInfo;
  log(`[node] attached to the run's bed (supervisor pid ${pid}, started in ${info.startupSeconds}s)`);
  return handle(info, false, async () => {});
}

/** Stops the run's shared bed, if one is up (a test that needs the host to itself: the lifecycle test). */
export async function stopSharedNodeBed(): Promise<void> {
  const dir = process.env[SHARED_BED_ENV];
  if (dir === undefined || dir === "") return;
  await stopSupervisor(dir);
}

/** SIGTERM to the supervisor, by the pid it wrote, and a wait for it to exit (it stops the bed first). */
export async function stopSupervisor(dir: string, timeoutMs = 120_000): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, "supervisor.pid"), "utf8").trim());
  } catch {
    return;
  }
  if (!isAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(200);
  if (isAlive(pid)) {
    process.kill(pid, "SIGKILL"); // its watchdogs then clean up the host
    throw new Error(`node bed: supervisor ${pid} did not stop within ${timeoutMs / 1000}s; killed`);
  }
}
