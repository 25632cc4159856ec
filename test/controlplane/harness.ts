// A real Kubernetes control plane for tests: etcd, kube-apiserver and (on request) kube-controller-manager, built from
// source by build.sh, started on free loopback ports with certificates made here, stopped by pid on stop() and on
// process exit, signal or crash. No kubelet and no scheduler: Pods stay Pending, which is all admission needs.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import {
  CertUsage,
  createCA,
  createServiceAccountKeyPair,
  issueCert,
  type CertificateAuthority,
  type KeyPairPem,
} from "./pki.ts";
import { freePort } from "../lib/net.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const BUILD_SCRIPT = join(HERE, "build.sh");

/** The versions build.sh builds, from versions.env (the one place they are written), e.g. `{ KUBERNETES_VERSION:
 * "1.34.4", ETCD_VERSION: "3.6.4" }`. */
export function versions(): Readonly<Record<string, string>> {
  const entries = readFileSync(join(HERE, "versions.env"), "utf8")
    .split("\n")
    .map((line) => /^([A-Z_]+)=(\S+)$/.exec(line.trim()))
    .filter((m) => m !== null)
    .map((m) => [m[1]!, m[2]!] as const);
  return Object.freeze(Object.fromEntries(entries));
}

/** Controllers kube-controller-manager runs: enough for Deployment → ReplicaSet → Pod, namespace deletion, owner
 * references, and the `default` ServiceAccount in every namespace (as on a real cluster). */
export const CONTROLLERS = [
  "deployment",
  "replicaset",
  "namespace",
  "garbagecollector",
  "serviceaccount",
  // The built-in edit/admin/view roles take in aggregated ClusterRoles (config/rbac/aggregate_roles.yaml).
  "clusterrole-aggregation",
] as const;

const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;
const LOG_TAIL_LINES = 40;

/** What a control plane for a real node (test/node/) needs on top of the loopback one. */
export interface NodeNetworkOptions {
  /** An address of the node's bridge, already assigned: the apiserver binds and advertises it, so that pods reach it
   * through the `kubernetes` Service; the kubeconfig points at it too. */
  address: string;
  /** The Service range; its first address (the `kubernetes` Service) goes into the serving certificate. */
  serviceCidr: string;
  kubernetesServiceIp: string;
  /** The pods' range: only for NO_PROXY (nothing the apiserver sends to a pod may go through a proxy). */
  podCidr: string;
}

/** Controllers added for a node: tokens and the root CA in every namespace, Services' endpoints, Jobs, node taints. */
export const NODE_CONTROLLERS = [
  "serviceaccount-token",
  "root-ca-cert-publisher",
  "endpoint",
  "endpointslice",
  "endpointslicemirroring",
  "job",
  "ttl-after-finished",
  "nodelifecycle",
  "podgc",
  "daemonset",
  "statefulset",
  "replicationcontroller",
  "disruption",
  "clusterrole-aggregation",
] as const;

export interface StartOptions {
  /** Also start kube-controller-manager (Deployments get ReplicaSets and Pods). */
  controllers?: boolean;
  /** Serve a real node: see NodeNetworkOptions. Turns on ServiceAccount admission, the endpoint reconciler, the
   * controllers in NODE_CONTROLLERS and client credentials for the kubelet (logs, exec). */
  node?: NodeNetworkOptions;
  /** Receives every output line of the processes, prefixed with the process name. */
  log?: (line: string) => void;
  /** Start-to-ready limit, default 90 s (a busy 2-core machine needs most of it). */
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags, e.g. `--admission-control-config-file=<a file the test wrote>`. */
  apiserverFlags?: readonly string[];
}

export interface ControlPlane {
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  serverUrl: string;
  ca: KeyPairPem;
  caCertPem: string;
  caKeyPem: string;
  binDir: string;
  /** Temp dir with certificates, etcd data, the kubeconfig and one `<process>.log` per process; removed on stop(). */
  dir: string;
  /** Process ids by name, for checks that nothing is left behind. */
  pids: Readonly<Record<string, number>>;
  /** Seconds from start (after the build check) until the API answered. */
  startupSeconds: number;
  /** With `node`: a serving certificate for the kubelet (its address), signed by the CA the apiserver checks it with. */
  kubeletServing?: KeyPairPem;
  /** A KubeConfig authenticating as a ServiceAccount with a token from the TokenRequest API. */
  clientForServiceAccount(namespace: string, name: string, expirationSeconds?: number): Promise<KubeConfig>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Binaries

let binDirPromise: Promise<string> | undefined;

/** Runs build.sh (a no-op when its stamp matches) and returns the directory holding the four binaries. */
export function ensureBinaries(log?: (line: string) => void): Promise<string> {
  binDirPromise ??= new Promise<string>((resolve, reject) => {
    const child = spawn("bash", [BUILD_SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    const stderr: string[] = [];
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    forEachLine(child.stderr, (line) => {
      stderr.push(line);
      log?.(`[build] ${line}`);
    });
    child.on("error", (err) => reject(new Error(`control plane: cannot run ${BUILD_SCRIPT}: ${err.message}`)));
    child.on("close", (code, signal) => {
      const binDir = stdout.trim().split("\n").at(-1) ?? "";
      if (code === 0 && binDir !== "") return resolve(binDir);
      reject(
        new Error(
          `control plane: ${BUILD_SCRIPT} failed (${signal ?? `exit ${code}`}); the control plane cannot start.\n` +
            stderr.slice(-LOG_TAIL_LINES).join("\n"),
        ),
      );
    });
  });
  binDirPromise.catch(() => (binDirPromise = undefined));
  return binDirPromise;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes, and cleanup that also runs when the test process exits, is interrupted or crashes

export interface Managed {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  exitInfo?: string;
  tail: string[];
  expectedExit: boolean;
}

const liveProcesses = new Set<Managed>();
const liveDirs = new Set<string>();
const liveWatchdogs = new Set<ChildProcess>();
const liveStops = new Set<() => Promise<void>>();
const exitHooks = new Set<() => void>();

/** Registers an async stop for SIGINT/SIGTERM (as every control plane's), and a synchronous last resort for 'exit'
 * that runs after the managed processes are killed (test/node/ restores host state there). Returns the unregister. */
export function registerCleanup(stop: () => Promise<void>, onExitSync: () => void): () => void {
  installHandlers();
  liveStops.add(stop);
  exitHooks.add(onExitSync);
  return () => {
    liveStops.delete(stop);
    exitHooks.delete(onExitSync);
  };
}
let handlersInstalled = false;

// A SIGKILLed test process runs no handler. This shell outlives it: it learns each pid through a pipe from us, and
// when the pipe closes without it having been disarmed (killed) first, our process is gone: it stops the children
// and removes the temp dir.
const WATCHDOG_SCRIPT =
  'pids=""; while read -r pid; do pids="$pids $pid"; done; [ -z "$pids" ] && exit 0; ' +
  'kill -TERM $pids 2>/dev/null; sleep 10; kill -KILL $pids 2>/dev/null; rm -rf "$1"';

export interface Watchdog {
  watch(pid: number): void;
  disarm(): void;
}

export function startWatchdog(dir: string): Watchdog {
  const shell = spawn("sh", ["-c", WATCHDOG_SCRIPT, "metrics-pusher-watchdog", dir], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  shell.unref();
  (shell.stdin as Socket).unref();
  shell.stdin.on("error", () => {});
  liveWatchdogs.add(shell);
  return {
    watch: (pid) => void shell.stdin.write(`${pid}\n`),
    disarm: () => {
      if (shell.pid !== undefined) signalPid(shell.pid, "SIGKILL");
      liveWatchdogs.delete(shell);
    },
  };
}

export function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  });
  stream.on("end", () => {
    if (buffered !== "") onLine(buffered);
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // In the synchronous exit path nothing reaps our children: an exited one stays a zombie until we are gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** Synchronous last resort for 'exit' (no event loop left): TERM, a short wait, KILL, remove the temp dirs. */
function killEverythingSync(): void {
  for (const shell of liveWatchdogs) if (shell.pid !== undefined) signalPid(shell.pid, "SIGKILL");
  liveWatchdogs.clear();
  const pids = [...liveProcesses].map((m) => m.pid);
  for (const pid of pids) signalPid(pid, "SIGTERM");
  const deadline = Date.now() + 3000;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some(isAlive) && Date.now() < deadline) Atomics.wait(sleeper, 0, 0, 50);
  for (const pid of pids) if (isAlive(pid)) signalPid(pid, "SIGKILL");
  liveProcesses.clear();
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // the next hook still runs
    }
  }
  exitHooks.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // Also emitted when an uncaught exception ends the process. Not 'uncaughtException(Monitor)': node:test reports
  // those as test failures and carries on, and the next tests still need the control plane.
  process.on("exit", killEverythingSync);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = (): void => {
      void Promise.allSettled([...liveStops].map((stop) => stop())).then(() => {
        // Alone on this signal, we took over Node's default: die of it as Node would have. Otherwise the other
        // listener (cluster.ts, a test runner) decides when to exit.
        if (process.listenerCount(signal) === 1) {
          process.removeListener(signal, onSignal);
          process.kill(process.pid, signal);
        }
      });
    };
    process.on(signal, onSignal);
  }
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  dir: string,
  log: ((line: string) => void) | undefined,
  extraNoProxy: readonly string[] = [],
): Managed {
  const env = { ...process.env };
  // The apiserver calls webhooks through HTTPS_PROXY when one is set; loopback must never go there (nor a node's
  // addresses: extraNoProxy).
  const noProxy = [env.NO_PROXY ?? env.no_proxy, "127.0.0.1", "localhost", "::1", ...extraNoProxy]
    .filter(Boolean)
    .join(",");
  env.NO_PROXY = noProxy;
  env.no_proxy = noProxy;
  // detached: a Ctrl-C in a terminal goes to the foreground process group; our processes are stopped by us, in order.
  const child = spawn(command, args, { cwd: dir, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`control plane: could not start ${name} (${command})`);
  const managed: Managed = {
    name,
    child,
    pid: child.pid,
    tail: [],
    expectedExit: false,
    exited: new Promise<void>((resolve) => {
      child.on("exit", (code, signal) => {
        managed.exitInfo = signal ?? `exit code ${code}`;
        liveProcesses.delete(managed);
        if (!managed.expectedExit) log?.(`[${name}] exited unexpectedly (${managed.exitInfo})`);
        resolve();
      });
    }),
  };
  child.on("error", (err) => {
    managed.tail.push(`spawn error: ${err.message}`);
  });
  const file: WriteStream = createWriteStream(join(dir, `${name}.log`));
  file.on("error", () => {}); // the dir may already be gone while the last lines arrive
  const onLine = (line: string): void => {
    managed.tail.push(line);
    if (managed.tail.length > LOG_TAIL_LINES) managed.tail.shift();
    file.write(line + "\n");
    log?.(`[${name}] ${line}`);
  };
  forEachLine(child.stdout, onLine);
  forEachLine(child.stderr, onLine);
  // Neither the processes nor their pipes keep the test process alive: a forgotten stop() ends in the 'exit' cleanup.
  child.unref();
  (child.stdout as Socket).unref();
  (child.stderr as Socket).unref();
  child.on("exit", () => file.end());
  liveProcesses.add(managed);
  return managed;
}

export async function stopProcess(m: Managed, graceMs = STOP_GRACE_MS): Promise<void> {
  m.expectedExit = true;
  if (m.exitInfo !== undefined) return;
  signalPid(m.pid, "SIGTERM");
  // The grace timer holds the event loop while we wait (the child itself is unref'd), and is cancelled after.
  const cancelGrace = new AbortController();
  const grace = sleep(graceMs, "timeout" as const, { signal: cancelGrace.signal }).catch(() => "cancelled" as const);
  const first = await Promise.race([m.exited.then(() => "exited" as const), grace]);
  cancelGrace.abort();
  if (first === "timeout") {
    signalPid(m.pid, "SIGKILL");
    await m.exited;
  }
}

function describeFailure(m: Managed): string {
  return `--- last lines of ${m.name} ---\n${m.tail.join("\n")}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Network helpers

export { freePort };

interface HttpResult {
  status: number;
  body: string;
}

function get(url: string, tls?: { ca: string; cert: string; key: string }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const options = { timeout: 5000, ...(tls ?? {}) };
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Start

/**
 * Starts etcd, kube-apiserver and, with `controllers: true`, kube-controller-manager, and waits until the API
 * answers. Throws with the reason and the last log lines when the build fails, a process dies or readiness times out.
 */
export async function startControlPlane(options: StartOptions = {}): Promise<ControlPlane> {
  const binDir = await ensureBinaries(options.log);
  installHandlers();
  // A free port is free when we ask; on a machine shared by several test runs, another one may take it before our
  // process binds it. That failure is retried with new ports, once.
  try {
    return await startOnce(binDir, options);
  } catch (err) {
    if (!/address already in use/.test((err as Error).message)) throw err;
    options.log?.(`[harness] a port was taken meanwhile; starting again on other ports`);
    return await startOnce(binDir, options);
  }
}

async function startOnce(binDir: string, options: StartOptions): Promise<ControlPlane> {
  const log = options.log;
  const startedAt = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "metrics-pusher-cp-"));
  liveDirs.add(dir);
  const processes: Managed[] = [];
  const watchdog = startWatchdog(dir);
  const launch = (name: string, binary: string, args: string[]): Managed => {
    const noProxy = options.node ? [options.node.address, options.node.serviceCidr, options.node.podCidr, ".svc"] : [];
    const m = startProcess(name, join(binDir, binary), args, dir, log, noProxy);
    processes.push(m);
    watchdog.watch(m.pid);
    return m;
  };
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      liveStops.delete(stop);
      // The reverse of start order: clients before the apiserver, the apiserver before its storage.
      for (const m of [...processes].reverse()) await stopProcess(m);
      watchdog.disarm();
      rmSync(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    })();
    return stopping;
  };
  liveStops.add(stop);

  try {
    const pki = join(dir, "pki");
    await mkdir(pki);
    const ca = await createCA({ commonName: "metrics-pusher test control plane CA" });
    const node = options.node;
    const [serving, admin, saKeys, kubeletClient, kubeletServing] = await Promise.all([
      issueCert({
        ca,
        commonName: "kube-apiserver",
        ips: node ? ["127.0.0.1", node.address, node.kubernetesServiceIp] : ["127.0.0.1"],
        dns: [
          "localhost",
          "kubernetes",
          "kubernetes.default",
          "kubernetes.default.svc",
          "kubernetes.default.svc.cluster.local",
        ],
        usages: [CertUsage.server],
      }),
      issueCert({
        ca,
        commonName: "metrics-pusher-admin",
        organizations: ["system:masters"],
        usages: [CertUsage.client],
      }),
      createServiceAccountKeyPair(),
      node
        ? issueCert({
            ca,
            commonName: "kube-apiserver-kubelet-client",
            organizations: ["system:masters"],
            usages: [CertUsage.client],
          })
        : undefined,
      node ? issueCert({ ca, commonName: "kubelet", ips: [node.address], usages: [CertUsage.server] }) : undefined,
    ]);
    const files = {
      caCert: join(pki, "ca.crt"),
      servingCert: join(pki, "apiserver.crt"),
      servingKey: join(pki, "apiserver.key"),
      saPublic: join(pki, "sa.pub"),
      saPrivate: join(pki, "sa.key"),
      kubeletClientCert: join(pki, "kubelet-client.crt"),
      kubeletClientKey: join(pki, "kubelet-client.key"),
    };
    await Promise.all([
      writeFile(files.caCert, ca.certPem),
      writeFile(files.servingCert, serving.certPem),
      writeFile(files.servingKey, serving.keyPem, { mode: 0o600 }),
      writeFile(files.saPublic, saKeys.publicKeyPem),
      writeFile(files.saPrivate, saKeys.privateKeyPem, { mode: 0o600 }),
      kubeletClient ? writeFile(files.kubeletClientCert, kubeletClient.certPem) : undefined,
      kubeletClient ? writeFile(files.kubeletClientKey, kubeletClient.keyPem, { mode: 0o600 }) : undefined,
    ]);

    const [etcdClientPort, etcdPeerPort, apiPort] = await distinctFreePorts(3);
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const apiAddress = node?.address ?? "127.0.0.1";
    const serverUrl = `https://${apiAddress}:${apiPort}`;

    const etcd = launch("etcd", "etcd", [
      "--name=default",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // Throw-away data: durability costs seconds per write on a busy disk and buys nothing here.
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ]);

    const kubeconfigPath = join(dir, "kubeconfig");
    const kubeconfig = adminKubeconfig(serverUrl, ca, admin);
    await writeFile(kubeconfigPath, JSON.stringify(kubeconfig, null, 2) + "\n", { mode: 0o600 });

    const deadline = Date.now() + (options.readyTimeoutMs ?? READY_TIMEOUT_MS);
    await waitFor("etcd", [etcd], deadline, async () => (await get(`${etcdUrl}/health`)).status === 200);

    // A host without a default route cannot pick an address by itself; a loopback one needs the endpoint
    // reconciler off, or it writes an invalid `kubernetes` Endpoints object. A node's bridge address is a valid
    // endpoint: the reconciler stays on and the `kubernetes` Service leads pods to the apiserver.
    const addressArgs = node
      ? [`--bind-address=${node.address}`, `--advertise-address=${node.address}`]
      : ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"];
    const nodeArgs = node
      ? [
          `--kubelet-client-certificate=${files.kubeletClientCert}`,
          `--kubelet-client-key=${files.kubeletClientKey}`,
          `--kubelet-certificate-authority=${files.caCert}`,
          "--kubelet-preferred-address-types=InternalIP",
          "--enable-admission-plugins=PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ServiceAccount",
        ]
      : [
          "--enable-admission-plugins=PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
          // Without it a Pod needs its namespace's `default` ServiceAccount to exist, which needs the controller.
          "--disable-admission-plugins=ServiceAccount",
        ];
    const apiserver = launch("kube-apiserver", "kube-apiserver", [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${apiPort}`,
      ...addressArgs,
      `--cert-dir=${join(dir, "apiserver")}`,
      `--tls-cert-file=${files.servingCert}`,
      `--tls-private-key-file=${files.servingKey}`,
      `--client-ca-file=${files.caCert}`,
      "--authorization-mode=RBAC",
      `--service-account-issuer=${serverUrl}`,
      `--service-account-key-file=${files.saPublic}`,
      `--service-account-signing-key-file=${files.saPrivate}`,
      `--service-cluster-ip-range=${node?.serviceCidr ?? "10.0.0.0/24"}`,
      "--allow-privileged=true",
      // The admission plugins are named although most are on by default: the tests depend on them.
      ...nodeArgs,
      ...(options.apiserverFlags ?? []),
    ]);

    const tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    await waitFor("kube-apiserver", [etcd, apiserver], deadline, async () => {
      if ((await get(`${serverUrl}/readyz`, tls)).status !== 200) return false;
      return (await get(`${serverUrl}/api/v1/namespaces/default`, tls)).status === 200;
    });

    if (options.controllers === true || node) {
      const controllers = node ? [...CONTROLLERS, ...NODE_CONTROLLERS] : CONTROLLERS;
      launch("kube-controller-manager", "kube-controller-manager", [
        `--kubeconfig=${kubeconfigPath}`,
        `--controllers=${controllers.join(",")}`,
        "--leader-elect=false",
        "--secure-port=0",
        // The token controller signs legacy token Secrets; both put the CA into them and into kube-root-ca.crt.
        ...(node ? [`--service-account-private-key-file=${files.saPrivate}`, `--root-ca-file=${files.caCert}`] : []),
      ]);
      // It has no health endpoint without a serving port; the `default` ServiceAccount it creates shows it works.
      await waitFor("kube-controller-manager", processes, deadline, async () => {
        return (await get(`${serverUrl}/api/v1/namespaces/default/serviceaccounts/default`, tls)).status === 200;
      });
    }

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    const pids = Object.fromEntries(processes.map((m) => [m.name, m.pid]));
    const startupSeconds = Math.round((performance.now() - startedAt) / 100) / 10;
    log?.(`[harness] control plane ready at ${serverUrl} in ${startupSeconds}s (${JSON.stringify(pids)})`);

    return {
      kubeconfigPath,
      kubeConfig,
      serverUrl,
      ca: { certPem: ca.certPem, keyPem: ca.keyPem },
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      binDir,
      dir,
      pids,
      startupSeconds,
      ...(kubeletServing ? { kubeletServing } : {}),
      clientForServiceAccount: (namespace, name, expirationSeconds = 3600) =>
        serviceAccountKubeConfig(kubeConfig, serverUrl, ca.certPem, namespace, name, expirationSeconds),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Polls `ready` until it is true; fails early, with the log tails, when one of `watched` exits. */
export async function waitFor(
  what: string,
  watched: Managed[],
  deadline: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  let lastError: string;
  for (;;) {
    const dead = watched.find((m) => m.exitInfo !== undefined);
    if (dead) {
      throw new Error(
        `control plane: ${dead.name} exited (${dead.exitInfo}) while waiting for ${what} to become ready\n` +
          watched.map(describeFailure).join("\n"),
      );
    }
    try {
      if (await ready()) return;
      lastError = "not ready yet";
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `control plane: ${what} not ready in time (last check: ${lastError})\n` +
          watched.map(describeFailure).join("\n"),
      );
    }
    await sleep(250);
  }
}

function adminKubeconfig(serverUrl: string, ca: KeyPairPem, admin: KeyPairPem): object {
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  // JSON is YAML: kubectl and client-node read it, and no YAML library is needed here.
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: "metrics-pusher-test", cluster: { server: serverUrl, "certificate-authority-data": b64(ca.certPem) } },
    ],
    users: [
      { name: "admin", user: { "client-certificate-data": b64(admin.certPem), "client-key-data": b64(admin.keyPem) } },
    ],
    contexts: [{ name: "metrics-pusher-test", context: { cluster: "metrics-pusher-test", user: "admin" } }],
    "current-context": "metrics-pusher-test",
  };
}

async function serviceAccountKubeConfig(
  admin: KubeConfig,
  serverUrl: string,
  caCertPem: string,
  namespace: string,
  name: string,
  expirationSeconds: number,
): Promise<KubeConfig> {
  const core = admin.makeApiClient(CoreV1Api);
  const tokenRequest = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { audiences: [], expirationSeconds } },
  });
  const token = tokenRequest.status?.token;
  if (!token) throw new Error(`control plane: TokenRequest for ${namespace}/${name} returned no token`);
  const kc = new KubeConfig();
  const user = `system:serviceaccount:${namespace}:${name}`;
  kc.loadFromOptions({
    clusters: [{ name: "metrics-pusher-test", server: serverUrl, caData: Buffer.from(caCertPem).toString("base64") }],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: "metrics-pusher-test", user }],
    currentContext: user,
  });
  return kc;
}

// ---------------------------------------------------------------------------------------------------------------
// Certificates for throw-away webhook servers in tests

export interface WebhookServingCert extends KeyPairPem {
  caCertPem: string;
  /** The CA certificate, base64-encoded PEM, as a webhook's `clientConfig.caBundle` wants it. */
  caBundle: string;
}

/** A serving certificate for 127.0.0.1 (and localhost) signed by a fresh CA, or by `ca` when given. */
export async function issueWebhookServingCert(ca?: CertificateAuthority): Promise<WebhookServingCert> {
  const authority = ca ?? (await createCA({ commonName: "metrics-pusher test webhook CA" }));
  const leaf = await issueCert({
    ca: authority,
    commonName: "127.0.0.1",
    ips: ["127.0.0.1"],
    dns: ["localhost"],
    usages: [CertUsage.server],
  });
  return {
    ...leaf,
    caCertPem: authority.certPem,
    caBundle: Buffer.from(authority.certPem).toString("base64"),
  };
}
