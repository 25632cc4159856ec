// A real node for the tests: the project's control plane (test/controlplane/) plus containerd and runc from Debian,
// kubelet, kube-scheduler and kube-proxy built from the same Kubernetes module, CNI bridge networking and CoreDNS.
// Pods are scheduled as usual and get their own addresses; nothing they send can leave the machine (see network()).
// Every daemon is started and stopped by pid; what the bed changes on the host is recorded first and undone on stop
// (hoststate.ts). One bed per host at a time: a host-wide lock, which we say we wait for.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statfsSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import {
  ensureBinaries,
  freePort,
  registerCleanup,
  startControlPlane,
  startProcess,
  stopProcess,
  versions,
  waitFor,
  type ControlPlane,
  type Managed,
} from "../controlplane/harness.ts";
import { cleanupHost, NODE, recordHost, saveRecord, staleRecords, writeSysctl, type HostRecord } from "./hoststate.ts";

const run = promisify(execFile);
const HERE = fileURLToPath(new URL(".", import.meta.url));
const NODE_BUILD_SCRIPT = join(HERE, "build.sh");
const CLEANUP_SCRIPT = join(HERE, "cleanup.ts");

/** Below these the bed does not start (containerd's images and kubelet's eviction thresholds need room). */
export const MIN_FREE_DISK_BYTES = 5 * 1024 ** 3;
export const MIN_AVAILABLE_MEMORY_BYTES = 2 * 1024 ** 3;

const READY_TIMEOUT_MS = 180_000;

export interface NodeBedOptions {
  log?: (line: string) => void;
  /** Image archives (`docker save` format) to import besides the bed's own; default: those `make images` left in
   * $METRICS_PUSHER_CACHE/images/. */
  imageArchives?: readonly string[];
}

export interface NodeBed {
  cp: ControlPlane;
  kubeconfigPath: string;
  kubectl: string;
  nodeName: string;
  /** The bridge's address: the apiserver, CoreDNS and any receiver the pods push to listen here. */
  bridgeIp: string;
  /** The image the tests run (busybox + Node), and the pause image; both imported, never pulled. */
  testImage: string;
  pauseImage: string;
  /** Image references imported into containerd. */
  images: string[];
  runDir: string;
  stateDir: string;
  containerdSocket: string;
  pids: Readonly<Record<string, number>>;
  /** Seconds from start to a Ready node with DNS, after the builds. */
  startupSeconds: number;
  /** `ctr` against the bed's containerd (namespace k8s.io). */
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export const TEST_IMAGE = "localhost/metrics-pusher/node-test:1";
export const pauseImage = (): string => `localhost/metrics-pusher/pause:${versions().KUBERNETES_VERSION}`;

function cacheRoot(): string {
  return (
    process.env.METRICS_PUSHER_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? "/root", ".cache"), "metrics-pusher")
  );
}

/** The archives `make images` leaves (operator, pusher, the samples' builder stand-in), when present. */
export function defaultImageArchives(): string[] {
  const dir = join(cacheRoot(), "images");
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".tar"))
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Prerequisites

function fail(step: string, reason: string): never {
  throw new Error(`node bed: ${step}: ${reason}`);
}

/** Fails, naming what is short, when the disk under the bed or the memory is below the minimum. */
export function checkResources(): void {
  if (process.getuid?.() !== 0) fail("prerequisites", "the node bed needs root (containerd, kubelet, iptables)");
  mkdirSync(NODE.stateRoot, { recursive: true });
  const fs = statfsSync(NODE.stateRoot);
  const freeDisk = fs.bavail * fs.bsize;
  if (freeDisk < MIN_FREE_DISK_BYTES) {
    fail("disk", `${gib(freeDisk)} GiB free under ${NODE.stateRoot}, ${gib(MIN_FREE_DISK_BYTES)} GiB needed`);
  }
  const available = Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) * 1024;
  if (available < MIN_AVAILABLE_MEMORY_BYTES) {
    fail("memory", `${gib(available)} GiB available, ${gib(MIN_AVAILABLE_MEMORY_BYTES)} GiB needed`);
  }
}

const gib = (bytes: number): string => (bytes / 1024 ** 3).toFixed(1);

let nodeBuildPromise: Promise<string> | undefined;

/** Runs test/node/build.sh (a no-op when current); returns the directory with coredns, pause.tar, node-test.tar. */
export function ensureNodeBuild(log?: (line: string) => void): Promise<string> {
  nodeBuildPromise ??= new Promise<string>((resolve, reject) => {
    const child = spawn("bash", [NODE_BUILD_SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    const stderr: string[] = [];
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      for (const line of c.split("\n").filter(Boolean)) {
        stderr.push(line);
        log?.(`[build] ${line}`);
      }
    });
    child.on("close", (code) => {
      const dir = stdout.trim().split("\n").at(-1) ?? "";
      if (code === 0 && dir !== "") return resolve(dir);
      reject(new Error(`node bed: ${NODE_BUILD_SCRIPT} failed (exit ${code})\n${stderr.slice(-30).join("\n")}`));
    });
  });
  nodeBuildPromise.catch(() => (nodeBuildPromise = undefined));
  return nodeBuildPromise;
}

// ---------------------------------------------------------------------------------------------------------------
// The host-wide lock: held by a `flock` child whose stdin is our pipe, so it is released when we exit, however.

interface HostLock {
  release(): void;
}

async function acquireHostLock(log: (line: string) => void): Promise<HostLock> {
  mkdirSync("/run/lock", { recursive: true });
  const ownerFile = `${NODE.lockFile}.owner`;
  const child: ChildProcess = spawn("flock", [NODE.lockFile, "sh", "-c", "echo locked; read -r _"], {
    stdio: ["pipe", "pipe", "ignore"],
  });
  child.stdin!.on("error", () => {});
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (c: string) => {
      if (c.includes("locked")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`node bed: lock: flock ${NODE.lockFile} exited (${code})`)));
    child.on("error", (err) => reject(new Error(`node bed: lock: cannot run flock: ${err.message}`)));
  });
  const first = await Promise.race([locked.then(() => true), sleep(500, false)]);
  if (!first) {
    let owner = "unknown";
    try {
      owner = readFileSync(ownerFile, "utf8").trim();
    } catch {
      // no owner note
    }
    log(`[node] waiting for the host-wide node bed lock ${NODE.lockFile} (held by ${owner})`);
    process.stderr.write(`node bed: waiting for the host-wide lock ${NODE.lockFile} (held by ${owner})\n`);
    const waitStarted = Date.now();
    await locked;
    log(`[node] got the lock after ${Math.round((Date.now() - waitStarted) / 1000)}s`);
  }
  writeFileSync(ownerFile, `pid ${process.pid} (${process.argv.slice(1, 3).join(" ")})\n`);
  child.unref();
  (child.stdout as Socket).unref();
  (child.stdin as Socket).unref();
  return {
    release: () => {
      child.stdin!.end();
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Commands

async function sh(step: string, cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`node bed: ${step}: ${cmd} ${args.join(" ")} failed: ${(e.stderr ?? e.message).trim()}`, {
      cause: err,
    });
  }
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Network: the bridge, routes, and a chain of ours that keeps every packet of the pods on the machine.

async function setUpNetwork(): Promise<void> {
  const step = "network";
  // Forwarding on (Service traffic from a pod is routed back into the bridge), bridged frames through iptables (so
  // the replies of a DNATed connection between two pods are translated back). Both are restored on stop.
  writeSysctl("net/ipv4/ip_forward", "1");
  writeSysctl("net/bridge/bridge-nf-call-iptables", "1");
  await sh(step, "ip", ["link", "add", NODE.bridge, "type", "bridge"]);
  await sh(step, "ip", ["addr", "add", NODE.bridgeCidr, "dev", NODE.bridge]);
  await sh(step, "ip", ["link", "set", NODE.bridge, "up"]);
  // The Service range goes to the bridge: kube-proxy's DNAT turns every served address into a pod's (or the
  // bridge's own); what is left untranslated is dropped below. A blackhole route cannot serve here: the kernel
  // refuses a local connect() to a blackholed address (EINVAL) before the nat OUTPUT chain can translate it.
  await sh(step, "ip", ["route", "add", NODE.serviceCidr, "dev", NODE.bridge, "src", NODE.bridgeIp]);
  // Pod addresses beyond this node's own range lead nowhere.
  await sh(step, "ip", ["route", "add", "blackhole", NODE.podSupernet]);

  const fwd = NODE.forwardChain;
  const out = NODE.outputChain;
  const rules: string[][] = [
    ["-N", fwd],
    // An address of the Service range that kube-proxy did not translate has nobody behind it.
    ["-A", fwd, "-d", NODE.serviceCidr, "-j", "DROP", "-m", "comment", "--comment", "untranslated Service address"],
    // Pod to pod (also after a Service's DNAT): the bridge to itself.
    ["-A", fwd, "-i", NODE.bridge, "-o", NODE.bridge, "-j", "ACCEPT"],
    // Anything else from or to the pods would cross the host to another interface: never.
    ["-A", fwd, "-i", NODE.bridge, "-j", "DROP", "-m", "comment", "--comment", "no pod packet leaves the machine"],
    ["-A", fwd, "-o", NODE.bridge, "-j", "DROP", "-m", "comment", "--comment", "nothing from outside to the pods"],
    ["-I", "FORWARD", "1", "-j", fwd],
    ["-N", out],
    ["-A", out, "-d", NODE.serviceCidr, "-j", "DROP", "-m", "comment", "--comment", "untranslated Service address"],
    ["-I", "OUTPUT", "1", "-j", out],
  ];
  for (const rule of rules) await sh(step, "iptables", ["-w", "-t", "filter", ...rule]);
  // The pods have no IPv6 addresses; should one appear, it is not forwarded either.
  for (const rule of [
    ["-N", fwd],
    ["-A", fwd, "-i", NODE.bridge, "-j", "DROP"],
    ["-A", fwd, "-o", NODE.bridge, "-j", "DROP"],
    ["-I", "FORWARD", "1", "-j", fwd],
  ]) {
    await sh(step, "ip6tables", ["-w", "-t", "filter", ...rule]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration files

function containerdConfig(dirs: Dirs): string {
  // TOML, version 2 (containerd 1.6). Every path is ours; no registry is configured and no image is pulled.
  return `version = 2
root = "${dirs.containerdRoot}"
state = "${dirs.containerdState}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${dirs.containerdSocket}"

[ttrpc]
  address = "${dirs.containerdSocket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${dirs.state}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage()}"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to lower its oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${dirs.run}/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dirs.cniConf}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
`;
}

function cniConfig(dirs: Dirs): object {
  return {
    cniVersion: "0.4.0",
    name: "metrics-pusher-node",
    plugins: [
      {
        type: "bridge",
        bridge: NODE.bridge,
        isGateway: true,
        // No masquerading: a pod's packets keep their source and the chain above keeps them on the machine.
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: NODE.podCidr, gateway: NODE.bridgeIp }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: join(dirs.state, "cni-ipam"),
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
}

function kubeletConfig(dirs: Dirs, ports: { kubelet: number; healthz: number }): object {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address: NODE.bridgeIp,
    port: ports.kubelet,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: ports.healthz,
    tlsCertFile: join(dirs.pki, "kubelet.crt"),
    tlsPrivateKeyFile: join(dirs.pki, "kubelet.key"),
    // Only the apiserver's client certificate (signed by the test CA) gets in; it may do anything.
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: dirs.ca } },
    authorization: { mode: "AlwaysAllow" },
    // This machine: cgroup v1 (1.34 still runs on it when told), cgroupfs (no systemd), swap tolerated.
    cgroupDriver: "cgroupfs",
    failCgroupV1: false,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${dirs.containerdSocket}`,
    clusterDNS: [NODE.dnsServiceIp],
    clusterDomain: NODE.clusterDomain,
    // No upstream resolver for pods: `dnsPolicy: Default` gets this empty file, never the host's.
    resolvConf: dirs.resolvConf,
    podLogsDir: join(dirs.state, "pod-logs"),
    volumePluginDir: join(dirs.state, "volume-plugins"),
    // Secret and ConfigMap volumes follow their objects within seconds (the rotated-token test depends on it).
    syncFrequency: "5s",
    nodeStatusUpdateFrequency: "5s",
    fileCheckFrequency: "5s",
    // Imported images must never be collected (they cannot be pulled back).
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%" },
    serializeImagePulls: false,
    registerNode: true,
    maxPods: 60,
    shutdownGracePeriod: "0s",
  };
}

function kubeProxyConfig(kubeconfig: string, ports: { healthz: number; metrics: number }): object {
  return {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig },
    mode: "iptables",
    hostnameOverride: NODE.nodeName,
    bindAddress: NODE.bridgeIp,
    clusterCIDR: NODE.podSupernet,
    healthzBindAddress: `127.0.0.1:${ports.healthz}`,
    metricsBindAddress: `127.0.0.1:${ports.metrics}`,
    // NodePorts only on the bridge; no route_localnet change for localhost NodePorts.
    nodePortAddresses: [`${NODE.bridgeIp}/32`],
    iptables: { localhostNodePorts: false, masqueradeAll: false, syncPeriod: "10s", minSyncPeriod: "0s" },
    // 0 leaves the host's conntrack settings alone (root here may not change them anyway).
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
  };
}

function corefile(kubeconfig: string, ports: { ready: number; health: number }): string {
  // Only the cluster's zones are answered (from the API); every other name gets NXDOMAIN from template. There is
  // no forward plugin in this CoreDNS at all (coredns/main.go), so no query can leave the machine.
  return `${NODE.clusterDomain}:53 in-addr.arpa:53 ip6.arpa:53 {
  bind ${NODE.bridgeIp}
  errors
  ready 127.0.0.1:${ports.ready}
  health 127.0.0.1:${ports.health}
  kubernetes ${NODE.clusterDomain} in-addr.arpa ip6.arpa {
    kubeconfig ${kubeconfig}
    pods insecure
    ttl 5
  }
}
.:53 {
  bind ${NODE.bridgeIp}
  errors
  template ANY ANY {
    rcode NXDOMAIN
  }
}
`;
}

interface Dirs {
  state: string;
  run: string;
  pki: string;
  ca: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  cniConf: string;
  kubeletRoot: string;
  resolvConf: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Start

/**
 * Starts the control plane with a node and waits until the node is Ready, CoreDNS answers and kube-proxy is up.
 * Throws, naming the step, when a prerequisite is missing or a daemon does not come up; everything started until
 * then is stopped and the host restored.
 */
export async function startNodeBed(options: NodeBedOptions = {}): Promise<NodeBed> {
  const log = options.log ?? (() => {});
  checkResources();
  const [binDir, nodeBuild] = await Promise.all([ensureBinaries(log), ensureNodeBuild(log)]);
  const lock = await acquireHostLock(log);
  const startedAt = performance.now();

  // A bed whose owner died (SIGKILL) before its watchdog could clean up: undo it now, we hold the lock.
  for (const stale of staleRecords()) {
    log(`[node] cleaning up after a bed whose owner (pid ${stale.ownerPid}) is gone: ${stale.stateDir}`);
    const problems = cleanupHost(stale, log);
    if (problems.length > 0) log(`[node] stale cleanup left: ${problems.join("; ")}`);
  }

  const runId = `${process.pid}-${Date.now().toString(36)}`;
  const dirs: Dirs = {
    state: join(NODE.stateRoot, runId),
    run: join(NODE.runRoot, runId),
    pki: join(NODE.stateRoot, runId, "pki"),
    ca: join(NODE.stateRoot, runId, "pki", "ca.crt"),
    containerdRoot: join(NODE.stateRoot, runId, "containerd"),
    containerdState: join(NODE.runRoot, runId, "containerd"),
    containerdSocket: join(NODE.runRoot, runId, "containerd.sock"),
    cniConf: join(NODE.stateRoot, runId, "cni"),
    kubeletRoot: join(NODE.stateRoot, runId, "kubelet"),
    resolvConf: join(NODE.stateRoot, runId, "resolv.conf"),
  };
  const record: HostRecord = recordHost(runId, dirs.state, dirs.run);
  for (const d of [dirs.state, dirs.run, dirs.pki, dirs.cniConf, dirs.kubeletRoot]) mkdirSync(d, { recursive: true });
  saveRecord(record);

  // A SIGKILLed test process runs no handler: this watchdog (its stdin is our pipe) then runs cleanup.ts.
  // It reads the pids and everything else from the record, which each launch below updates.
  const watchdog = spawn(
    "sh",
    [
      "-c",
      'while read -r _; do :; done; exec "$0" --conditions=source "$1" "$2"',
      process.execPath,
      CLEANUP_SCRIPT,
      join(dirs.state, "host-record.json"),
    ],
    { detached: true, stdio: ["pipe", "ignore", "ignore"] },
  );
  watchdog.unref();
  (watchdog.stdin as Socket).unref();
  watchdog.stdin.on("error", () => {});

  const processes: Managed[] = [];
  const launch = (name: string, command: string, args: string[]): Managed => {
    const m = startProcess(name, command, args, dirs.state, log, [NODE.bridgeIp, NODE.serviceCidr, NODE.podCidr]);
    processes.push(m);
    record.pids[name] = m.pid;
    saveRecord(record);
    return m;
  };
  let cp: ControlPlane | undefined;
  let stopping: Promise<void> | undefined;

  const stopSync = (): void => {
    // 'exit': the managed processes were already killed by the control plane's harness; undo the host.
    cleanupHost(record);
    lock.release();
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      unregister();
      const started = performance.now();
      // Clients of the API first, then the node (kubelet before containerd), then the control plane.
      for (const m of [...processes].reverse()) {
        const t = performance.now();
        await stopProcess(m, 10_000);
        log(`[node] ${m.name} stopped in ${((performance.now() - t) / 1000).toFixed(1)}s`);
      }
      let t = performance.now();
      await cp?.stop();
      log(`[node] control plane stopped in ${((performance.now() - t) / 1000).toFixed(1)}s`);
      t = performance.now();
      const problems = cleanupHost(record, log);
      log(`[node] host cleaned up in ${((performance.now() - t) / 1000).toFixed(1)}s`);
      try {
        if (watchdog.pid !== undefined) process.kill(watchdog.pid, "SIGKILL");
      } catch {
        // gone
      }
      lock.release();
      log(`[node] stopped in ${((performance.now() - started) / 1000).toFixed(1)}s`);
      if (problems.length > 0) throw new Error(`node bed: cleanup left: ${problems.join("; ")}`);
    })();
    return stopping;
  };
  const unregister = registerCleanup(stop, stopSync);

  try {
    const step = (name: string): void =>
      log(`[node] ${name} (${((performance.now() - startedAt) / 1000).toFixed(1)}s)`);
    step("network");
    await setUpNetwork();

    step("control plane");
    cp = await startControlPlane({
      log,
      readyTimeoutMs: READY_TIMEOUT_MS,
      node: {
        address: NODE.bridgeIp,
        serviceCidr: NODE.serviceCidr,
        kubernetesServiceIp: NODE.kubernetesServiceIp,
        podCidr: NODE.podCidr,
      },
    });
    const kubeconfig = cp.kubeconfigPath;
    writeFileSync(dirs.ca, cp.caCertPem);
    writeFileSync(join(dirs.pki, "kubelet.crt"), cp.kubeletServing!.certPem);
    writeFileSync(join(dirs.pki, "kubelet.key"), cp.kubeletServing!.keyPem, { mode: 0o600 });
    writeFileSync(dirs.resolvConf, "# metrics-pusher node bed: no upstream resolver\n");

    const [kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics, dnsReady, dnsHealth] = await distinctPorts(6);
    const deadline = Date.now() + READY_TIMEOUT_MS;

    step("containerd");
    writeFileSync(join(dirs.cniConf, "10-metrics-pusher.conflist"), JSON.stringify(cniConfig(dirs), null, 2));
    writeFileSync(join(dirs.state, "containerd.toml"), containerdConfig(dirs));
    const containerd = launch("containerd", "/usr/bin/containerd", [
      `--config=${join(dirs.state, "containerd.toml")}`,
      "--log-level=warn",
    ]);
    const ctr = (args: string[]): Promise<string> =>
      sh("ctr", "ctr", [`--address=${dirs.containerdSocket}`, "--namespace=k8s.io", ...args]);
    await waitFor("containerd", [containerd], deadline, async () => {
      await ctr(["version"]);
      return true;
    });

    step("images");
    const archives = [
      join(nodeBuild, "pause.tar"),
      join(nodeBuild, "node-test.tar"),
      ...(options.imageArchives ?? defaultImageArchives()),
    ];
    for (const archive of archives) if (!existsSync(archive)) fail("images", `${archive} does not exist`);
    // Side by side: each import is mostly waiting on the disk.
    await Promise.all(
      archives.map((archive) =>
        ctr(["images", "import", archive]).catch((err: Error) =>
          fail("images", `importing ${archive}: ${err.message}`),
        ),
      ),
    );
    const images = (await ctr(["images", "list", "--quiet"]))
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("sha256:"));

    step("kubelet");
    writeFileSync(
      join(dirs.state, "kubelet.json"),
      JSON.stringify(kubeletConfig(dirs, { kubelet: kubeletPort!, healthz: kubeletHealthz! }), null, 2),
    );
    launch("kubelet", join(binDir, "kubelet"), [
      `--config=${join(dirs.state, "kubelet.json")}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${dirs.kubeletRoot}`,
      `--cert-dir=${join(dirs.pki, "kubelet-certs")}`,
      `--hostname-override=${NODE.nodeName}`,
      `--node-ip=${NODE.bridgeIp}`,
      "--v=1",
    ]);

    step("kube-proxy, kube-scheduler, CoreDNS");
    writeFileSync(
      join(dirs.state, "kube-proxy.json"),
      JSON.stringify(kubeProxyConfig(kubeconfig, { healthz: proxyHealthz!, metrics: proxyMetrics! }), null, 2),
    );
    launch("kube-proxy", join(binDir, "kube-proxy"), [`--config=${join(dirs.state, "kube-proxy.json")}`]);
    launch("kube-scheduler", join(binDir, "kube-scheduler"), [
      `--kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      // No serving port: nothing reads its health here, and serving would want the front-proxy CA we do not make.
      "--secure-port=0",
    ]);
    writeFileSync(join(dirs.state, "Corefile"), corefile(kubeconfig, { ready: dnsReady!, health: dnsHealth! }));
    launch("coredns", join(nodeBuild, "coredns"), [`-conf=${join(dirs.state, "Corefile")}`]);
    await createDnsService(cp);

    step("waiting for the node to be Ready");
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const watched = [...processes];
    await waitFor("the node (Ready)", watched, deadline, async () => {
      const node = await core.readNode({ name: NODE.nodeName });
      return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
    });
    await waitFor(
      "kube-proxy",
      watched,
      deadline,
      async () => (await get(`http://127.0.0.1:${proxyHealthz}/healthz`)) === 200,
    );
    await waitFor("CoreDNS", watched, deadline, async () => (await get(`http://127.0.0.1:${dnsReady}/ready`)) === 200);

    const startupSeconds = Math.round((performance.now() - startedAt) / 100) / 10;
    const pids = { ...cp.pids, ...Object.fromEntries(processes.map((m) => [m.name, m.pid])) };
    log(`[node] node ${NODE.nodeName} Ready in ${startupSeconds}s with ${images.length} images`);
    return {
      cp,
      kubeconfigPath: kubeconfig,
      kubectl: join(binDir, "kubectl"),
      nodeName: NODE.nodeName,
      bridgeIp: NODE.bridgeIp,
      testImage: TEST_IMAGE,
      pauseImage: pauseImage(),
      images,
      runDir: dirs.run,
      stateDir: dirs.state,
      containerdSocket: dirs.containerdSocket,
      pids,
      startupSeconds,
      ctr,
      stop,
    };
  } catch (err) {
    await stop().catch((e: Error) => log(`[node] ${e.message}`));
    throw err;
  }
}

/** The cluster DNS Service: CoreDNS runs on the host at the bridge's address, so it has no selector, and its
 * Endpoints (mirrored into an EndpointSlice by the controller) point at the bridge. */
async function createDnsService(cp: ControlPlane): Promise<void> {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const ports = [
    { name: "dns", port: 53, protocol: "UDP" },
    { name: "dns-tcp", port: 53, protocol: "TCP" },
  ];
  await core.createNamespacedService({
    namespace: "kube-system",
    body: {
      metadata: { name: "kube-dns", labels: { "k8s-app": "kube-dns" } },
      spec: { clusterIP: NODE.dnsServiceIp, ports: ports.map((p) => ({ ...p, targetPort: 53 })) },
    },
  });
  await core.createNamespacedEndpoints({
    namespace: "kube-system",
    body: {
      metadata: { name: "kube-dns", labels: { "k8s-app": "kube-dns" } },
      subsets: [{ addresses: [{ ip: NODE.bridgeIp }], ports }],
    },
  });
}

async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
