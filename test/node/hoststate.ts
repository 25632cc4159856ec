// What the node bed changes on the host, recorded before it starts and undone after it stops: only what was not
// there before, found by our own names (chains, the bridge, our run directories) and by the host paths that kubelet,
// containerd and CNI hard-code. Synchronous on purpose: it also runs from process 'exit' and from cleanup.ts, where
// there is no event loop.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Names and ranges of the bed. One bed per host at a time (a host-wide lock), so they can be fixed. */
export const NODE = {
  nodeName: "metrics-pusher-node",
  bridge: "mpnode0",
  bridgeIp: "10.244.0.1",
  bridgeCidr: "10.244.0.1/24",
  podCidr: "10.244.0.0/24",
  // Pod addresses outside this node's range are blackholed: no route may lead them off the machine.
  podSupernet: "10.244.0.0/16",
  serviceCidr: "10.96.0.0/24",
  kubernetesServiceIp: "10.96.0.1",
  dnsServiceIp: "10.96.0.10",
  clusterDomain: "cluster.local",
  forwardChain: "MP-NODE-FORWARD",
  outputChain: "MP-NODE-OUTPUT",
  stateRoot: "/var/lib/metrics-pusher-node",
  runRoot: "/run/metrics-pusher-node",
  lockFile: "/run/lock/metrics-pusher-node.lock",
} as const;

/** Host paths kubelet and CNI use whatever their configuration says. Nothing else on this kind of machine uses
 * them, so what is new in them after a bed is the bed's. */
export const HARD_CODED_PATHS = [
  "/var/lib/kubelet",
  "/var/log/pods",
  "/var/log/containers",
  "/run/netns",
  "/var/lib/cni",
  "/run/kubernetes",
  "/usr/libexec/kubernetes",
] as const;

/** Host paths containerd hard-codes (the shims' sockets in /run/containerd/s) which a Docker running beside
 * us shares: only empty directories are removed there, never an entry another daemon may still use. */
export const SHARED_PATHS = ["/run/containerd", "/opt/containerd"] as const;

/** Sysctls the bed sets (forwarding, bridged traffic through iptables) or kubelet sets (its kernel defaults). */
export const SYSCTLS = [
  "net/ipv4/ip_forward",
  "net/bridge/bridge-nf-call-iptables",
  "net/bridge/bridge-nf-call-ip6tables",
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
] as const;

// kube-proxy's and kubelet's chains, portmap's (the only CNI plugin here that makes chains), and ours.
const OUR_CHAINS = /^(KUBE-|CNI-HOSTPORT-|CNI-DN-|MP-NODE-)/;
const TABLES = ["filter", "nat", "mangle"] as const;
const FAMILIES = ["iptables", "ip6tables"] as const;
const CGROUP_ROOT = "/sys/fs/cgroup";

/** Everything needed to undo the bed, written to the run directory before anything changes. */
export interface HostRecord {
  runId: string;
  ownerPid: number;
  stateDir: string;
  runDir: string;
  /** Existing entries of each hard-coded path, or null when the path did not exist. */
  paths: Record<string, string[] | null>;
  sharedPaths: Record<string, string[] | null>;
  sysctls: Record<string, string>;
  /** `family/table` → chain names matching our prefixes that already existed. */
  chains: Record<string, string[]>;
  links: string[];
  mounts: string[];
  cgroups: string[];
  /** Pids the bed started, filled in as they start. */
  pids: Record<string, number>;
}

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
}

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    return run(cmd, args);
  } catch {
    return undefined;
  }
}

function listDir(path: string): string[] | null {
  try {
    return readdirSync(path).sort();
  } catch {
    return null;
  }
}

export function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

export function writeSysctl(name: string, value: string): void {
  writeFileSync(`/proc/sys/${name}`, value + "\n");
}

/** Mount points, in /proc/self/mountinfo order (parents before children). */
export function mountPoints(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ")[4]!.replace(/\\040/g, " "));
}

export function linkNames(): string[] {
  return run("ip", ["-o", "link", "show"])
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .sort();
}

/** Cgroup directories named kubepods* (any depth below each hierarchy's first level). */
export function kubepodsCgroups(): string[] {
  const found: string[] = [];
  for (const controller of listDir(CGROUP_ROOT) ?? []) {
    const top = join(CGROUP_ROOT, controller);
    for (const entry of listDir(top) ?? []) {
      if (entry.startsWith("kubepods")) found.push(join(top, entry));
    }
  }
  return found.sort();
}

export function ourChains(): Record<string, string[]> {
  const chains: Record<string, string[]> = {};
  for (const family of FAMILIES) {
    for (const table of TABLES) {
      const save = tryRun(`${family}-save`, ["-t", table]) ?? "";
      chains[`${family}/${table}`] = save
        .split("\n")
        .filter((l) => l.startsWith(":"))
        .map((l) => l.slice(1).split(" ")[0]!)
        .filter((c) => OUR_CHAINS.test(c))
        .sort();
    }
  }
  return chains;
}

export function recordHost(runId: string, stateDir: string, runDir: string): HostRecord {
  return {
    runId,
    ownerPid: process.pid,
    stateDir,
    runDir,
    paths: Object.fromEntries(HARD_CODED_PATHS.map((p) => [p, listDir(p)])),
    sharedPaths: Object.fromEntries(SHARED_PATHS.map((p) => [p, listDir(p)])),
    sysctls: Object.fromEntries(
      SYSCTLS.flatMap((name): [string, string][] => {
        const value = readSysctl(name);
        return value === undefined ? [] : [[name, value]];
      }),
    ),
    chains: ourChains(),
    links: linkNames(),
    mounts: mountPoints(),
    cgroups: kubepodsCgroups(),
    pids: {},
  };
}

export function saveRecord(record: HostRecord): void {
  writeFileSync(join(record.stateDir, "host-record.json"), JSON.stringify(record, null, 2) + "\n");
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** SIGTERM, up to `graceMs`, then SIGKILL; synchronous. */
export function killPidsSync(pids: number[], graceMs = 5000): void {
  const alive = pids.filter(isAlive);
  for (const pid of alive) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive.some(isAlive) && Date.now() < deadline) sleepSync(50);
  for (const pid of alive) if (isAlive(pid)) signal(pid, "SIGKILL");
  const hard = Date.now() + 5000;
  while (alive.some(isAlive) && Date.now() < hard) sleepSync(50);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

/** Processes whose command line mentions `needle` (containerd's shims carry our socket's path). */
export function pidsMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of listDir("/proc") ?? []) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/**
 * Undoes the bed on the host: kills its pids and the shims of its containerd, unmounts and removes what it created
 * under its own directories and the hard-coded paths, removes its iptables chains, links, cgroups, restores sysctls.
 * Returns what it could not undo (empty when all went well).
 */
export function cleanupHost(record: HostRecord, log: (line: string) => void = () => {}): string[] {
  const problems: string[] = [];
  const attempt = (what: string, fn: () => void): void => {
    const started = Date.now();
    try {
      fn();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message.split("\n")[0]}`);
    }
    if (Date.now() - started > 1000) log(`[cleanup] ${what}: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  };

  // 1. Processes: the daemons by pid, then every shim of our containerd (found by our socket's path), which takes
  //    the containers with it (runc kills a container's processes when its init dies).
  attempt("stop the bed's processes", () => killPidsSync(Object.values(record.pids)));
  attempt("stop containerd's shims", () => {
    const shims = pidsMentioning(record.runDir);
    if (shims.length > 0) log(`[cleanup] stopping ${shims.length} containerd shim(s): ${shims.join(" ")}`);
    killPidsSync(shims, 2000);
  });
  // Container processes that outlived their shim (reparented to init) still sit in our cgroups: kill them there.
  attempt("kill what is left in kubepods cgroups", () => {
    const before = new Set(record.cgroups);
    const pids = new Set<number>();
    for (const cg of kubepodsCgroups().filter((c) => !before.has(c))) {
      for (const file of walk(cg).filter((f) => f.endsWith("/cgroup.procs"))) {
        for (const p of readFileSync(file, "utf8").split("\n").filter(Boolean)) pids.add(Number(p));
      }
    }
    if (pids.size > 0) killPidsSync([...pids], 1000);
  });

  // 2. Mounts under our directories and new ones under the hard-coded paths, deepest first.
  attempt("unmount", () => {
    const before = new Set(record.mounts);
    const roots = [record.stateDir, record.runDir, ...HARD_CODED_PATHS, ...SHARED_PATHS];
    const ours = mountPoints()
      .filter((m) => !before.has(m) && roots.some((r) => m === r || m.startsWith(r + "/")))
      .reverse();
    for (const m of ours) {
      if (tryRun("umount", [m]) === undefined && tryRun("umount", ["-l", m]) === undefined) {
        problems.push(`umount ${m} failed`);
      }
    }
  });

  // 3. Network: links attached to our bridge (veths whose netns survived), the bridge (its routes go with it), our
  //    blackhole route, then chains: ours and kube-proxy's/kubelet's/CNI's that were not there before.
  attempt("remove links", () => {
    const before = new Set(record.links);
    for (const name of linkNames().filter((n) => !before.has(n))) {
      const detail = tryRun("ip", ["-o", "link", "show", "dev", name]) ?? "";
      if (name === NODE.bridge || detail.includes(`master ${NODE.bridge} `)) {
        tryRun("ip", ["link", "delete", "dev", name]);
      }
    }
    if (!before.has(NODE.bridge) && linkNames().includes(NODE.bridge)) problems.push(`${NODE.bridge} still exists`);
  });
  attempt("remove routes", () => {
    while (tryRun("ip", ["route", "delete", "blackhole", NODE.podSupernet]) !== undefined) {
      // repeat until no such route is left
    }
  });
  attempt("remove iptables chains", () => removeChains(record.chains, problems));

  // 4. Cgroups kubelet created (children first; rmdir removes an empty cgroup).
  attempt("remove cgroups", () => {
    const before = new Set(record.cgroups);
    for (const cg of kubepodsCgroups().filter((c) => !before.has(c))) {
      const dirs = walkDirs(cg).reverse();
      for (const d of dirs) tryRun("rmdir", [d]);
      if (existsSync(cg)) problems.push(`cgroup ${cg} could not be removed`);
    }
  });

  // 5. Files: what is new under the hard-coded paths, then our own directories.
  attempt("remove files", () => {
    for (const [path, entries] of Object.entries(record.paths)) {
      if (entries === null) {
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      const keep = new Set(entries);
      for (const entry of listDir(path) ?? []) {
        if (!keep.has(entry)) rmSync(join(path, entry), { recursive: true, force: true });
      }
    }
    for (const [path, entries] of Object.entries(record.sharedPaths ?? {})) {
      const keep = new Set(entries ?? []);
      for (const entry of listDir(path) ?? []) {
        if (!keep.has(entry)) for (const d of walkDirs(join(path, entry)).reverse()) tryRun("rmdir", [d]);
      }
      if (entries === null) tryRun("rmdir", [path]);
    }
    rmSync(record.runDir, { recursive: true, force: true });
    rmSync(record.stateDir, { recursive: true, force: true });
    // The roots are ours by name; empty, they go too (another bed's record would keep them).
    for (const root of [NODE.stateRoot, NODE.runRoot]) tryRun("rmdir", [root]);
  });

  // 6. Sysctls back to what they were.
  attempt("restore sysctls", () => {
    for (const [name, value] of Object.entries(record.sysctls)) {
      if (readSysctl(name) !== value) writeSysctl(name, value);
    }
  });
  return problems;
}

function removeChains(before: Record<string, string[]>, problems: string[]): void {
  for (const family of FAMILIES) {
    for (const table of TABLES) {
      const existed = new Set(before[`${family}/${table}`] ?? []);
      const save = tryRun(`${family}-save`, ["-t", table]);
      if (save === undefined) continue;
      const chains = save
        .split("\n")
        .filter((l) => l.startsWith(":"))
        .map((l) => l.slice(1).split(" ")[0]!);
      const doomed = new Set(chains.filter((c) => OUR_CHAINS.test(c) && !existed.has(c)));
      if (doomed.size === 0) continue;
      // One restore per table, without flushing the rest: the jumps into doomed chains from chains we keep (the
      // built-in hooks) deleted rule by rule, then the doomed chains flushed and deleted.
      const script = [`*${table}`];
      for (const line of save.split("\n").filter((l) => l.startsWith("-A "))) {
        const parts = line.split(" ");
        const chain = parts[1]!;
        const jump = parts.findIndex((p) => p === "-j" || p === "-g");
        const target = jump >= 0 ? parts[jump + 1] : undefined;
        if (!doomed.has(chain) && target !== undefined && doomed.has(target)) script.push(`-D ${line.slice(3)}`);
      }
      for (const c of doomed) script.push(`-F ${c}`);
      for (const c of doomed) script.push(`-X ${c}`);
      script.push("COMMIT", "");
      try {
        run(`${family}-restore`, ["-w", "--noflush"], script.join("\n"));
      } catch (err) {
        problems.push(`${family}-restore of table ${table} failed: ${(err as Error).message.split("\n")[0]}`);
      }
    }
  }
}

function walkDirs(dir: string): string[] {
  const out = [dir];
  for (const entry of listDir(dir) ?? []) {
    const p = join(dir, entry);
    try {
      if (statSync(p).isDirectory()) out.push(...walkDirs(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function walk(dir: string): string[] {
  return walkDirs(dir).flatMap((d) => (listDir(d) ?? []).map((e) => join(d, e)));
}

/** Records of beds whose owner died without cleaning up (SIGKILL, power loss): cleaned before a new bed starts. */
export function staleRecords(): HostRecord[] {
  const records: HostRecord[] = [];
  for (const id of listDir(NODE.stateRoot) ?? []) {
    const file = join(NODE.stateRoot, id, "host-record.json");
    try {
      const record = JSON.parse(readFileSync(file, "utf8")) as HostRecord;
      if (!isAlive(record.ownerPid)) records.push(record);
    } catch {
      // not a record of ours
    }
  }
  return records;
}
