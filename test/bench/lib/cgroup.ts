// A memory cgroup for one benchmarked process, as the kubelet gives a container with a memory limit. Node sizes V8's
// heap from the limit it finds (process.constrainedMemory()): under the sidecar's default 192Mi its young generation
// stays near 8 MiB, where on this 24 GiB host it grows to 128 MiB. So ours is measured as users get it only inside
// its default limit. cgroup v2 where the machine has it, else v1's memory controller; root is needed for either.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = "/sys/fs/cgroup";

export interface MemoryCgroup {
  readonly dir: string;
  readonly limitBytes: number;
  /** The command line that enters the cgroup and then execs `command` (the pid stays the measured process's). */
  wrap(command: string, args: readonly string[]): [string, string[]];
  /** OOM kills inside the cgroup so far. */
  oomKills(): number;
  /** Removes the cgroup once its process has exited (it must be empty). */
  remove(): void;
}

let serial = 0;

export function memoryCgroup(name: string, limitBytes: number): MemoryCgroup {
  const v2 = existsSync(join(ROOT, "cgroup.controllers"));
  const parent = v2 ? ROOT : join(ROOT, "memory");
  if (!existsSync(parent)) throw new Error(`no memory cgroup controller at ${parent}: cannot run ${name} in a limit`);
  const dir = join(parent, `metrics-pusher-bench-${process.pid}-${serial++}-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`);
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, v2 ? "memory.max" : "memory.limit_in_bytes"), String(limitBytes));
  } catch (err) {
    throw new Error(
      `cannot create the memory cgroup ${dir} (${(err as Error).message}); the benchmark runs ours in its default memory limit, which needs root`,
      { cause: err },
    );
  }
  return {
    dir,
    limitBytes,
    wrap: (command, args) => [
      "/bin/sh",
      ["-c", `echo $$ > ${join(dir, "cgroup.procs")} && exec "$@"`, "sh", command, ...args],
    ],
    oomKills: () => {
      const file = join(dir, v2 ? "memory.events" : "memory.oom_control");
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, "utf8"));
      return m ? Number(m[1]) : 0;
    },
    remove: () => {
      if (existsSync(dir)) rmdirSync(dir);
    },
  };
}
