// Processes under measurement: started by the benchmark, measured from outside through /proc, stopped by pid.
// Every process started here is killed when the benchmark exits, also on errors and signals.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor, WaitAborted } from "../../lib/wait.ts";
import { freePort } from "../../lib/net.ts";
import { memoryCgroup, type MemoryCgroup } from "./cgroup.ts";
export { memory, type Memory } from "../../lib/memory.ts";

const live = new Map<number, ChildProcess>();
const started: number[] = [];
const tempDirs = new Set<string>();
const cgroups = new Set<MemoryCgroup>();

function killAll(): void {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const cg of cgroups) {
    try {
      cg.remove();
    } catch {
      // a killed process leaves it a moment later; nothing to wait for at exit
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** A temporary directory removed at exit (or earlier by the caller). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export { freePort };

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Where stdout and stderr go; read it when something fails. */
  readonly logPath: string;
  readonly exited: Promise<number | null>;
  /** Its memory limit, when it runs in one (StartOptions.memoryLimit), and the OOM kills there so far. */
  readonly memoryLimit?: { readonly bytes: number; oomKills(): number };
  /** The last lines of the log, for error messages. */
  tail(lines?: number): string;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Pin to these CPUs with taskset (e.g. "1"). */
  cpus?: string;
  /** Run in a memory cgroup of this many bytes, as a container with that memory limit (lib/cgroup.ts). */
  memoryLimit?: number;
}

export function startProcess(name: string, command: string, args: readonly string[], opts: StartOptions = {}): Proc {
  const logDir = tempDir(`log-${name}`);
  const logPath = join(logDir, "out.log");
  const fd = openSync(logPath, "a");
  const [pinned, pinnedArgs] = opts.cpus ? ["taskset", ["-c", opts.cpus, command, ...args]] : [command, [...args]];
  const cgroup = opts.memoryLimit !== undefined ? memoryCgroup(name, opts.memoryLimit) : undefined;
  if (cgroup) cgroups.add(cgroup);
  const [cmd, argv] = cgroup ? cgroup.wrap(pinned, pinnedArgs) : [pinned, pinnedArgs];
  // taskset and the cgroup's shell exec the command, so the pid stays the measured process's own.
  const child = spawn(cmd, argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;
  live.set(pid, child);
  started.push(pid);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(pid);
      resolve(code ?? (signal ? -1 : null));
    });

    child.once("error", () => {
      live.delete(pid);
      resolve(-1);
    });
  });
  // The cgroup goes once its only process has exited; its OOM count is read first.
  let oomAtExit: number | undefined;
  if (cgroup) {
    void exited.then(async () => {
      oomAtExit = cgroup.oomKills();
      for (let i = 0; i < 50; i++) {
        try {
          cgroup.remove();
          cgroups.delete(cgroup);
          return;
        } catch {
          await sleep(20); // the kernel empties it a moment after the exit
        }
      }
    });
  }
  const tail = (lines = 20): string => {
    try {
      return readFileSync(logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  };
  const signalAndWait = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (!live.has(pid)) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    // An unref'd timer: a process that exits in time must not leave the caller waiting for the grace period.
    const done = await Promise.race([
      exited.then(() => true),
      sleep(graceMs, undefined, { ref: false }).then(() => false),
    ]);
    if (!done) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
      await exited;
    }
  };
  return {
    name,
    pid,
    child,
    logPath,
    exited,
    tail,
    ...(cgroup ? { memoryLimit: { bytes: cgroup.limitBytes, oomKills: () => oomAtExit ?? cgroup.oomKills() } } : {}),
    stop: (graceMs = 5000) => signalAndWait("SIGTERM", graceMs),
    kill: () => signalAndWait("SIGKILL", 5000),
  };
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of the process (its own threads; children are not included) in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may contain spaces and parentheses: fields are counted after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5) are utime and stime; after the name and state they sit at index 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Resolves when an HTTP GET of `url` answers 2xx. */
export async function waitHttpOk(what: string, url: string, timeoutMs: number, proc?: Proc): Promise<void> {
  await waitFor(
    async () => {
      if (proc && !live.has(proc.pid)) throw new WaitAborted(`${proc.name} exited:\n${proc.tail()}`);
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.ok ? true : undefined;
    },
    { timeoutMs: timeoutMs, message: what },
  );
}

/** Every pid started here, running or not: tests check that none is left behind. */
export function startedPids(): readonly number[] {
  return started;
}

export function isAlive(proc: Proc): boolean {
  return live.has(proc.pid);
}
