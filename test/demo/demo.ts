// `make demo`: the whole product on one machine. A real control plane (etcd, kube-apiserver,
// kube-controller-manager), a real Prometheus with its Remote-Write receiver, the operator as a local process whose
// webhook the apiserver calls at https://127.0.0.1, and config/samples applied. No kubelet runs here, so the demo
// starts the injected pusher container's command itself, with the environment the webhook injected, and shows the
// series that arrive in Prometheus. DEMO_EXIT=1 stops after that (exit 0 only when the series arrived); otherwise
// everything stays up until Ctrl-C.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import {
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  type WriteStream,
} from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor, WaitAborted, WaitTimeout } from "../lib/wait.ts";
import { OPERATOR_NAMESPACE, operatorEnv, operatorPorts } from "../lib/operator.ts";
import {
  AdmissionregistrationV1Api,
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type V1Container,
  type V1DeploymentSpec,
  type V1Pod,
  type V1Volume,
} from "@kubernetes/client-node";
import { Counter, Gauge, Registry } from "prom-client";
import { parseAllDocuments, stringify } from "yaml";
import {
  Annotations,
  CRD_NAME,
  GROUP,
  PLURAL,
  SIDECAR_CONTAINER_NAME,
  VERSION,
  type MetricsPusher,
  type MetricsPusherSpec,
} from "../../operator/src/api/index.ts";
import { freePort, startControlPlane, versions, type ControlPlane } from "../controlplane/harness.ts";
import { startPrometheus, type Receiver, type VectorSample } from "../peers/receivers.ts";
import { findContainer, prepareLocalContainer, type ObjectReader } from "./local-pod.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const NODE = process.execPath;
const EXIT_AFTER_SERIES = process.env.DEMO_EXIT === "1" || process.env.DEMO_EXIT === "true";
/** Every wait on the cluster or a process; a busy 2-core machine needs most of it. */
const WAIT_MS = Number(process.env.DEMO_TIMEOUT_MS ?? 90_000);
const SAMPLES_NAMESPACE = "builds";
const PUSHER_NAME = "builders";
const DEPLOYMENT_NAME = "builder";
const SAMPLE_TARGET_PORT = 8080;
/** Added by the demo to show the Secret path; Prometheus' receiver ignores the Authorization header. */
const DEMO_SECRET = { name: "remote-write-auth", key: "token", value: "demo-token-not-checked-by-prometheus" } as const;
/** The image's command (Dockerfile.pusher); the same program runs here from source. */
const IMAGE_COMMAND = "node --no-maglev pusher/dist/main.js";
const LOCAL_PUSHER_ARGS = ["--conditions=source", join(ROOT, "pusher/src/main.ts")];

// ---------------------------------------------------------------------------------------------------------------
// Output: a line per step with the elapsed time, and a reminder while a step takes long

const startedAt = performance.now();
const elapsed = (): string => `${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)}s`;
const say = (line = ""): void => void process.stdout.write(`${line}\n`);
const progress = (line: string): void => say(`[${elapsed()}] ${line}`);

// A DemoError thrown by a wait's check ends the wait at once (a process died): it is a WaitAborted.
class DemoError extends WaitAborted {}

async function step<T>(title: string, fn: () => Promise<T>, done?: (v: T) => string): Promise<T> {
  const t = performance.now();
  progress(`▸ ${title}...`);
  const ticker = setInterval(
    () =>
      progress(
        `  … still ${title.charAt(0).toLowerCase()}${title.slice(1)} (${Math.round((performance.now() - t) / 1000)}s)`,
      ),
    15_000,
  );
  ticker.unref();
  try {
    const v = await fn();
    const took = ((performance.now() - t) / 1000).toFixed(1);
    progress(`✓ ${done ? done(v) : title} (${took}s)`);
    return v;
  } catch (err) {
    progress(`✗ ${title} failed`);
    throw err;
  } finally {
    clearInterval(ticker);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What the demo started, stopped in reverse order by pid

interface Started {
  name: string;
  /** Shown when stopped; demo.test.ts checks that every one is gone afterwards. */
  pids?: () => string;
  stop: () => Promise<void>;
}
const started: Started[] = [];
const children = new Set<ChildProcess>();
let workDir: string | undefined;

// A crash or process.exit without stopAll(): no local process survives the demo.
process.on("exit", () => {
  for (const c of children)
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null)
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        /* gone */
      }
  if (workDir && !keepLogs) rmSync(workDir, { recursive: true, force: true });
});

let stopping: Promise<void> | undefined;
/** After a failure the logs stay for a post-mortem; the Secret copies never do. */
let keepLogs = false;
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const s of [...started].reverse()) {
      const t = performance.now();
      try {
        await s.stop();
        progress(
          `stopped ${s.name}${s.pids ? ` (${s.pids()})` : ""} in ${((performance.now() - t) / 1000).toFixed(1)}s`,
        );
      } catch (err) {
        progress(`stopping ${s.name} failed: ${(err as Error).message}`);
      }
    }
    if (workDir && keepLogs) {
      for (const entry of readdirSync(workDir, { withFileTypes: true })) {
        if (entry.isDirectory() && entry.name !== "controlplane")
          rmSync(join(workDir, entry.name), { recursive: true, force: true });
      }
    }
    if (workDir && keepLogs && readdirSync(workDir, { recursive: true }).some((f) => String(f).endsWith(".log"))) {
      progress(`kept the logs in ${workDir} (the Secret copies removed)`);
    } else if (workDir) {
      rmSync(workDir, { recursive: true, force: true });
      progress(`removed ${workDir}`);
    }
  })();
  return stopping;
}

interface LocalProcess {
  child: ChildProcess;
  pid: number;
  lines: string[];
  exited: Promise<string>;
  exitInfo?: string;
  stop(graceMs?: number): Promise<void>;
}

/** A local process in its own process group (a Ctrl-C reaches only the demo, which stops it in order). */
function startLocal(name: string, args: string[], env: Record<string, string>, logFile: string): LocalProcess {
  const child = spawn(NODE, args, { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new DemoError(`could not start ${name}`);
  children.add(child);
  const file: WriteStream = createWriteStream(logFile, { flags: "a" });
  file.on("error", () => {});
  const lines: string[] = [];
  const onData = (chunk: Buffer): void => {
    file.write(chunk);
    for (const l of chunk.toString("utf8").split("\n")) if (l !== "") lines.push(l);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const p: LocalProcess = {
    child,
    pid: child.pid,
    lines,
    exited: new Promise((res) => {
      child.on("exit", (code, signal) => {
        p.exitInfo = signal ?? `exit code ${code}`;
        children.delete(child);
        file.end();
        res(p.exitInfo);
      });
    }),
    /** SIGTERM; after `graceMs` a second SIGTERM (the operator and the pusher then exit at once); SIGKILL last. */
    async stop(graceMs = 20_000) {
      for (const [signal, waitMs] of [
        ["SIGTERM", graceMs],
        ["SIGTERM", 2000],
        ["SIGKILL", 0],
      ] as const) {
        if (p.exitInfo !== undefined) return;
        process.kill(p.pid, signal);
        const cancel = new AbortController();
        await Promise.race([
          p.exited,
          sleep(waitMs || 60_000, undefined, { signal: cancel.signal }).catch(() => undefined),
        ]);
        cancel.abort();
      }
    },
  };
  child.on("error", (err) => {
    p.exitInfo = `spawn error: ${err.message}`;
    children.delete(child);
  });
  return p;
}

function tail(p: LocalProcess, n = 15): string {
  return p.lines
    .slice(-n)
    .map((l) => `    ${l}`)
    .join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// kubectl (the one built with the control plane) and the API

let cp: ControlPlane;
/** Set as soon as the control plane is up (also while other parts still start), for the logs after a failure. */
let startedControlPlane: ControlPlane | undefined;

function kubectl(args: string[], input?: string): Promise<string> {
  return new Promise((res, rej) => {
    const child = execFile(
      join(cp.binDir, "kubectl"),
      args,
      { cwd: ROOT, env: { ...process.env, KUBECONFIG: cp.kubeconfigPath }, maxBuffer: 16 << 20, timeout: 60_000 },
      (err, stdout, stderr) =>
        err ? rej(new DemoError(`kubectl ${args.join(" ")}: ${stderr.trim() || err.message}`)) : res(stdout),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

const notFound = (err: unknown): boolean => err instanceof ApiException && err.code === 404;

// ---------------------------------------------------------------------------------------------------------------
// The builder's stand-in: what quay.io/brancz/prometheus-example-app would expose on :8080/metrics

async function startBuilderStandIn(): Promise<{ server: Server; port: number }> {
  const registry = new Registry();
  const requests = new Counter({
    name: "http_requests_total",
    help: "Count of all HTTP requests",
    labelNames: ["code", "method"],
    registers: [registry],
  });
  new Gauge({
    name: "version",
    help: "Version information about this binary",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version: "v0.5.0" }, 1);
  requests.inc({ code: "200", method: "get" }, 0);
  requests.inc({ code: "404", method: "get" }, 0);
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      requests.inc({ code: "404", method: (req.method ?? "get").toLowerCase() });
      return void res.writeHead(404).end("not found\n");
    }
    requests.inc({ code: "200", method: "get" });
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  const port = await freePort();
  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(port, "127.0.0.1", () => res());
  });
  return { server, port };
}

// ---------------------------------------------------------------------------------------------------------------
// The samples, rewritten for this machine at apply time (the files stay as a user would apply them)

interface Rewritten {
  /** The Namespace, Secret and MetricsPusher: applied first, so the webhook knows the MetricsPusher before pods come. */
  first: string;
  /** The builder Deployment. */
  second: string;
  changes: string[];
}

function rewriteSamples(rendered: string, remoteWriteUrl: string, targetPort: number): Rewritten {
  const docs = parseAllDocuments(rendered).map((d) => {
    if (d.errors.length > 0)
      throw new DemoError(`kubectl kustomize config/samples: invalid YAML: ${d.errors[0]!.message}`);
    return d.toJS() as { kind?: string; metadata?: { name?: string; namespace?: string }; spec?: unknown };
  });
  const changes: string[] = [];
  const mpDoc = docs.find((d) => d.kind === "MetricsPusher" && d.metadata?.name === PUSHER_NAME);
  const depDoc = docs.find((d) => d.kind === "Deployment" && d.metadata?.name === DEPLOYMENT_NAME);
  if (!mpDoc || !depDoc)
    throw new DemoError(`config/samples must hold MetricsPusher ${PUSHER_NAME} and Deployment ${DEPLOYMENT_NAME}`);
  // The samples are this repo's own manifests of these kinds; the specs are edited in place, so the documents
  // written out below carry the changes.
  const mpSpec = mpDoc.spec as MetricsPusherSpec;
  const depSpec = depDoc.spec as V1DeploymentSpec;

  changes.push(
    `MetricsPusher ${PUSHER_NAME}: spec.remoteWrite.url ${mpSpec.remoteWrite.url} → ${remoteWriteUrl} (the local Prometheus)`,
  );
  mpSpec.remoteWrite.url = remoteWriteUrl;
  for (const t of mpSpec.scrape?.targets ?? []) {
    if (t.port === SAMPLE_TARGET_PORT) {
      changes.push(
        `MetricsPusher ${PUSHER_NAME}: spec.scrape.targets port ${t.port} → ${targetPort} (the builder's stand-in /metrics)`,
      );
      t.port = targetPort;
    }
  }
  for (const c of depSpec.template.spec!.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.containerPort === SAMPLE_TARGET_PORT) {
        changes.push(`Deployment ${DEPLOYMENT_NAME}: container ${c.name} port ${p.containerPort} → ${targetPort}`);
        p.containerPort = targetPort;
      }
    }
  }
  if (depSpec.strategy?.type !== "Recreate") {
    changes.push(
      `Deployment ${DEPLOYMENT_NAME}: spec.strategy Recreate (no kubelet: Pods never become Ready, so a RollingUpdate would never remove the old Pods)`,
    );
    depSpec.strategy = { type: "Recreate" };
  }
  // Shows the Secret path end to end: an optional Secret volume in the Pod, a file the pusher reads.
  mpSpec.remoteWrite.bearerTokenSecret = { name: DEMO_SECRET.name, key: DEMO_SECRET.key };
  changes.push(
    `MetricsPusher ${PUSHER_NAME}: + spec.remoteWrite.bearerTokenSecret ${DEMO_SECRET.name}/${DEMO_SECRET.key}, and that Secret (Prometheus ignores the token)`,
  );
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: DEMO_SECRET.name, namespace: SAMPLES_NAMESPACE },
    stringData: { [DEMO_SECRET.key]: DEMO_SECRET.value },
  };
  const toYaml = (objs: object[]): string => objs.map((o) => stringify(o)).join("---\n");
  const others = docs.filter((d) => d !== mpDoc && d !== depDoc);
  return { first: toYaml([...others, secret, mpDoc]), second: toYaml([depDoc]), changes };
}

// ---------------------------------------------------------------------------------------------------------------
// Showing containers, readably

function describeContainers(
  title: string,
  spec: { initContainers?: V1Container[]; containers?: V1Container[]; volumes?: V1Volume[] } | undefined,
): string[] {
  const lines = [title];
  const groups: Array<[string, V1Container[] | undefined]> = [
    ["initContainers", spec?.initContainers],
    ["containers", spec?.containers],
  ];
  for (const [group, list] of groups) {
    if (!list || list.length === 0) continue;
    lines.push(`  ${group}:`);
    for (const c of list) {
      const ports = (c.ports ?? []).map((p) => `port ${p.containerPort}`).join(", ");
      const native = c.restartPolicy === "Always" ? "native sidecar (restartPolicy: Always)" : "";
      lines.push(`    - ${c.name}  ${c.image}${ports ? `  ${ports}` : ""}${native ? `  ${native}` : ""}`);
      if (c.name !== SIDECAR_CONTAINER_NAME) continue;
      const width = Math.max(...(c.env ?? []).map((e) => e.name.length));
      for (const e of c.env ?? []) {
        const from = e.valueFrom?.fieldRef
          ? `← downward API ${e.valueFrom.fieldRef.fieldPath}`
          : e.valueFrom
            ? `← ${Object.keys(e.valueFrom).join(",")}`
            : `= ${e.value}`;
        lines.push(`        env ${e.name.padEnd(width)} ${from}`);
      }
      for (const m of c.volumeMounts ?? []) {
        const v = spec?.volumes?.find((x) => x.name === m.name);
        const src = v?.secret
          ? `Secret ${v.secret.secretName}${v.secret.optional ? " (optional)" : ""}`
          : v?.emptyDir
            ? "emptyDir"
            : "volume";
        lines.push(`        mount ${m.mountPath} ← ${src}${m.readOnly ? ", read-only" : ""}`);
      }
      const sc = c.securityContext;
      if (sc) {
        const parts = [
          sc.runAsUser !== undefined ? `runAsUser ${sc.runAsUser}` : "",
          sc.runAsNonRoot ? "runAsNonRoot" : "",
          sc.readOnlyRootFilesystem ? "readOnlyRootFilesystem" : "",
          sc.allowPrivilegeEscalation === false ? "no privilege escalation" : "",
          sc.capabilities?.drop?.length ? `drop ${sc.capabilities.drop.join(",")}` : "",
          sc.seccompProfile?.type ? `seccomp ${sc.seccompProfile.type}` : "",
        ].filter(Boolean);
        lines.push(`        security ${parts.join(", ")}`);
      }
      const r = c.resources;
      if (r) {
        const fmt = (o: Record<string, string> | undefined): string =>
          Object.entries(o ?? {})
            .map(([k, v]) => `${k} ${v}`)
            .join(", ");
        lines.push(`        resources requests ${fmt(r.requests) || "-"}; limits ${fmt(r.limits) || "-"}`);
      }
    }
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// The series table

const LABEL_COLUMNS = ["job", "instance", "namespace", "pod"] as const;

function formatValue(name: string, v: number): string {
  // The heartbeat is a Unix time in seconds: a date says more.
  if (/heartbeat|timestamp_seconds/.test(name) && v > 1e9)
    return `${v.toFixed(3)} (${new Date(v * 1000).toISOString().slice(11, 19)}Z)`;
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

function seriesTable(rows: VectorSample[]): string[] {
  const cells = rows.map((r) => {
    const { __name__: name = "", ...labels } = r.metric;
    const other = Object.entries(labels)
      .filter(([k]) => !(LABEL_COLUMNS as readonly string[]).includes(k))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    const value = formatValue(name, r.value);
    return [name, ...LABEL_COLUMNS.map((k) => labels[k] ?? ""), other, value];
  });
  const header = ["SERIES", ...LABEL_COLUMNS, "OTHER LABELS", "VALUE"];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    `  ${c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join("  ")}`;
  return [line(header), ...cells.map(line)];
}

// ---------------------------------------------------------------------------------------------------------------
// The pusher, run locally as the kubelet would run the injected container

const SHOWN_PUSHER_SERIES = ["heartbeat", "uptime_seconds", "system_memory_sys_bytes", "system_memory_alloc_bytes"];

interface RunningPusher {
  pod: string;
  injected: string;
  process: LocalProcess;
}

/** The newest Pod of the builder Deployment (by creation time); with `injected`, the newest one carrying the sidecar. */
async function newestPod(core: CoreV1Api, injected: boolean): Promise<V1Pod | undefined> {
  const pods = await core.listNamespacedPod({
    namespace: SAMPLES_NAMESPACE,
    labelSelector: `app.kubernetes.io/name=${DEPLOYMENT_NAME}`,
  });
  return pods.items
    .filter(
      (p) =>
        p.metadata?.deletionTimestamp === undefined &&
        (!injected || findContainer(p, SIDECAR_CONTAINER_NAME) !== undefined),
    )
    .sort((a, b) => {
      const ta = new Date(a.metadata?.creationTimestamp ?? 0).getTime();
      const tb = new Date(b.metadata?.creationTimestamp ?? 0).getTime();
      return tb - ta || (b.metadata?.name ?? "").localeCompare(a.metadata?.name ?? "");
    })[0];
}

async function startPusherFor(pod: V1Pod, reader: ObjectReader, dir: string, verbose: boolean): Promise<RunningPusher> {
  const container = findContainer(pod, SIDECAR_CONTAINER_NAME)!;
  const podName = pod.metadata!.name!;
  const local = await prepareLocalContainer(pod, container, reader, join(dir, podName));
  if (container.command?.length || container.args?.length) {
    // The operator leaves command/args to the image; if that changes, the demo must learn the new command.
    throw new DemoError(
      `the injected container sets command/args (${[...(container.command ?? []), ...(container.args ?? [])].join(" ")}); the demo only knows the image's own command`,
    );
  }
  if (verbose) {
    say(
      `  The image runs \`${IMAGE_COMMAND}\`; here: \`node ${LOCAL_PUSHER_ARGS.map((a) => a.replace(`${ROOT}/`, "")).join(" ")}\` (the same program, from source),`,
    );
    say(
      `  with exactly the ${Object.keys(local.env).length} variables the webhook injected: the literal ones as above, the others resolved as a kubelet would:`,
    );
    for (const n of local.notes)
      say(
        `    ${n.variable.padEnd(18)} ${n.variable in local.env ? `= ${local.env[n.variable] || '""'}` : "(unset)"}   from ${n.from}`,
      );
    for (const m of local.mounts) say(`    mount ${m.mountPath} → ${m.localPath} (${m.source})`);
  }
  const proc = startLocal("pusher", LOCAL_PUSHER_ARGS, { ...local.env }, join(dir, "pusher.log"));
  return { pod: podName, injected: pod.metadata?.annotations?.[Annotations.injected] ?? "", process: proc };
}

// ---------------------------------------------------------------------------------------------------------------
// Main

let exitCode = 0;
let interrupted = false;
let firstSignalAt = 0;

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    // The peer helpers re-raise the signal to themselves after their own cleanup: the same Ctrl-C arrives again.
    if (interrupted) {
      if (Date.now() - firstSignalAt > 2000) {
        say(`\n${signal} again: exiting now`);
        process.exit(1);
      }
      return;
    }
    interrupted = true;
    firstSignalAt = Date.now();
    say(`\n${signal}: stopping everything the demo started...`);
    void stopAll().then(() => {
      say("Stopped. Bye.");
      process.exit(exitCode === 0 && EXIT_AFTER_SERIES ? 130 : exitCode);
    });
  });
}

try {
  await main();
} catch (err) {
  if (!interrupted) {
    exitCode = 1;
    // Our own errors and the helpers' carry the reason and the log lines that matter; a stack only helps a bug hunt.
    const message =
      err instanceof Error ? (process.env.DEMO_DEBUG ? (err.stack ?? err.message) : err.message) : String(err);
    say(`\nDemo FAILED: ${message}`);
    if (workDir) {
      keepLogs = true;
      // The harness removes its dir on stop: copy the control plane's logs first.
      const cpLogs = join(workDir, "controlplane");
      mkdirSync(cpLogs, { recursive: true });
      const cpDir = startedControlPlane?.dir;
      if (cpDir) for (const f of readdirSync(cpDir)) if (f.endsWith(".log")) cpSync(join(cpDir, f), join(cpLogs, f));
      const logs = [
        join(workDir, "operator.log"),
        join(workDir, "pusher.log"),
        ...readdirSync(cpLogs).map((f) => join(cpLogs, f)),
      ].filter((f) => existsSync(f));
      if (logs.length > 0) say(`Logs:\n${logs.map((f) => `  ${f}`).join("\n")}`);
    }
    await stopAll();
    process.exit(exitCode);
  }
}

/** Promise.all that waits for every promise before rejecting with the first failure. */
async function settledAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

async function main(): Promise<void> {
  say(`metrics-pusher demo: a MetricsPusher makes the operator inject the pusher into a builder's pods; the pusher's`);
  say(`and the builder's metrics arrive in Prometheus by Remote-Write. Everything runs on this machine, on loopback.`);
  say(EXIT_AFTER_SERIES ? "(DEMO_EXIT=1: stops once the series arrived.)" : "(Stays up until Ctrl-C.)");
  say();
  workDir = mkdtempSync(join(tmpdir(), "metrics-pusher-demo-"));
  const dir = workDir;

  // 1. Control plane, Prometheus and the builder's stand-in, side by side.
  // allSettled: when one fails, the others are still registered in `started` before everything is stopped.
  const [controlPlane, prometheus, standIn] = await settledAll([
    step(
      `Starting the control plane (Kubernetes v${versions().KUBERNETES_VERSION}: etcd, kube-apiserver, kube-controller-manager; built first if needed)`,
      () =>
        startControlPlane({
          controllers: true,
          readyTimeoutMs: WAIT_MS,
          log: (line) => {
            if (line.startsWith("[build]") || line.includes("exited unexpectedly")) progress(`  ${line}`);
          },
        }),
      (c) => `control plane ready at ${c.serverUrl}`,
    ).then((c) => {
      const pids = Object.entries(c.pids)
        .map(([name, pid]) => `${name} pid ${pid}`)
        .join(", ");
      started.push({ name: "control plane", pids: () => pids, stop: () => c.stop() });
      startedControlPlane = c;
      return c;
    }),
    step(
      "Starting Prometheus 2.42 with --web.enable-remote-write-receiver",
      () => startPrometheus(),
      (p) => `Prometheus ready at ${p.url}`,
    ).then((p: Receiver) => {
      started.push({ name: "Prometheus", pids: () => `pid ${p.pid}`, stop: () => p.stop() });
      return p;
    }),
    step(
      "Serving the builder's stand-in /metrics",
      () => startBuilderStandIn(),
      (s) => `builder stand-in serving http://127.0.0.1:${s.port}/metrics`,
    ).then((s) => {
      started.push({
        name: "builder stand-in /metrics",
        stop: () => new Promise<void>((res) => s.server.close(() => res())),
      });
      return s;
    }),
  ]);
  cp = controlPlane;
  const kc = cp.kubeConfig;
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);

  // 2. The CRD, then the operator.
  await step(
    "Applying crds/ (kubectl apply -k crds)",
    async () => {
      await kubectl(["apply", "--server-side", "-k", join(ROOT, "crds")]);
      const ext = kc.makeApiClient(ApiextensionsV1Api);
      await waitFor(
        async () => {
          const crd = await ext.readCustomResourceDefinition({ name: CRD_NAME });
          return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
        },
        { timeoutMs: WAIT_MS, intervalMs: 500, message: `CRD ${CRD_NAME} Established` },
      );
    },
    () => `CRD ${CRD_NAME} established`,
  );

  const operator = await step(
    "Starting the operator as a local process (node operator/src/main.ts, webhook at https://127.0.0.1)",
    async () => {
      await kubectl(["create", "namespace", OPERATOR_NAMESPACE]);
      const ports = await operatorPorts();
      const env: Record<string, string> = {
        ...operatorEnv({ kubeconfigPath: cp.kubeconfigPath, ports, name: "metrics-pusher-operator-demo" }),
        LOG_LEVEL: "info",
      };
      const webhookUrl = env.WEBHOOK_URL!;
      const p = startLocal(
        "operator",
        ["--conditions=source", join(ROOT, "operator/src/main.ts")],
        env,
        join(dir, "operator.log"),
      );
      started.push({ name: "operator", pids: () => `pid ${p.pid}, ${p.exitInfo ?? "running"}`, stop: () => p.stop() });
      const alive = (): void => {
        if (p.exitInfo !== undefined)
          throw new DemoError(`the operator exited (${p.exitInfo}); its last lines:\n${tail(p)}`);
      };
      try {
        await waitFor(
          async () => {
            alive();
            const r = await fetch(`http://127.0.0.1:${ports.probe}/readyz`, { signal: AbortSignal.timeout(2000) });
            await r.arrayBuffer();
            return r.status === 200;
          },
          { timeoutMs: WAIT_MS, intervalMs: 500, message: "the operator's /readyz to answer 200" },
        );
        const admission = kc.makeApiClient(AdmissionregistrationV1Api);
        await waitFor(
          async () => {
            alive();
            const cc = (await admission.readMutatingWebhookConfiguration({ name: "metrics-pusher" })).webhooks?.[0]
              ?.clientConfig;
            return cc?.url === webhookUrl && !!cc.caBundle;
          },
          {
            timeoutMs: WAIT_MS,
            intervalMs: 500,
            message: "the MutatingWebhookConfiguration metrics-pusher to point at the operator, with a caBundle",
          },
        );
      } catch (err) {
        if ((err instanceof DemoError || err instanceof WaitTimeout) && p.exitInfo === undefined)
          throw new DemoError(`${err.message}\n  the operator's last lines:\n${tail(p)}`);
        throw err;
      }
      return { process: p, webhookUrl, metricsUrl: `http://127.0.0.1:${ports.metrics}/metrics` };
    },
    (o) => `operator ready (pid ${o.process.pid}), webhook registered at ${o.webhookUrl}`,
  );

  const operatorAlive = (): void => {
    const p = operator.process;
    if (p.exitInfo !== undefined)
      throw new DemoError(`the operator exited (${p.exitInfo}); its last lines:\n${tail(p)}`);
  };

  // 3. The samples.
  const rendered = await kubectl(["kustomize", join(ROOT, "config/samples")]);
  const samples = rewriteSamples(rendered, prometheus.remoteWriteUrl, standIn.port);
  say();
  say("config/samples/ is applied as it is, except (rewritten at apply time for this machine):");
  for (const c of samples.changes) say(`  - ${c}`);
  say();
  const readSamplePusher = async (): Promise<MetricsPusher> =>
    (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: SAMPLES_NAMESPACE,
      name: PUSHER_NAME,
    })) as MetricsPusher;
  await step(
    "Applying the Namespace, the Secret and the MetricsPusher (kubectl apply -f -)",
    async () => {
      await kubectl(["apply", "-f", "-"], samples.first);
      // The controller adds its finalizer once it has seen the MetricsPusher: from then on the webhook knows it too.
      await waitFor(
        async () => {
          operatorAlive();
          const mp = await readSamplePusher();
          return (mp.metadata.finalizers ?? []).length > 0;
        },
        {
          timeoutMs: WAIT_MS,
          intervalMs: 500,
          message: `the controller to pick up MetricsPusher ${SAMPLES_NAMESPACE}/${PUSHER_NAME} (its finalizer)`,
        },
      );
    },
    () => `MetricsPusher ${SAMPLES_NAMESPACE}/${PUSHER_NAME} seen by the operator`,
  );
  const pod = await step(
    "Applying the builder Deployment; waiting for its Pod (made by the ReplicaSet controller, admitted through the webhook)",
    async () => {
      await kubectl(["apply", "-f", "-"], samples.second);
      let seenWithout = "";
      try {
        return await waitFor(
          async () => {
            operatorAlive();
            const p = await newestPod(core, true);
            if (!p) {
              const any = (await core.listNamespacedPod({ namespace: SAMPLES_NAMESPACE })).items[0];
              if (any) seenWithout = any.metadata?.name ?? "";
            }
            return p;
          },
          {
            timeoutMs: WAIT_MS,
            intervalMs: 500,
            message: `a Pod of Deployment ${SAMPLES_NAMESPACE}/${DEPLOYMENT_NAME} with the ${SIDECAR_CONTAINER_NAME} container`,
          },
        );
      } catch (err) {
        if (operator.process.exitInfo !== undefined) throw err;
        const hint = seenWithout
          ? ` Pod ${seenWithout} exists without the sidecar: see \`kubectl get events -n ${SAMPLES_NAMESPACE}\` and the operator log.`
          : " No Pod was created: is kube-controller-manager running?";
        throw new DemoError(
          `${(err as Error).message}.${hint}\n  the operator's last lines:\n${tail(operator.process)}`,
        );
      }
    },
    (p) =>
      `Pod ${p.metadata?.name} created with the sidecar: ${Annotations.injected}=${p.metadata?.annotations?.[Annotations.injected]}`,
  );
  await step(
    `Waiting for MetricsPusher ${PUSHER_NAME} to report Ready with 1 matched Deployment`,
    () =>
      waitFor(
        async () => {
          const mp = await readSamplePusher();
          return (
            mp.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
            mp.status?.matchedWorkloads === 1
          );
        },
        { timeoutMs: WAIT_MS, intervalMs: 500, message: "status Ready=True and matchedWorkloads=1" },
      ),
    () => `MetricsPusher ${PUSHER_NAME} Ready, 1 matched Deployment`,
  );
  // Events are sent asynchronously by the webhook; give them a moment, but show what is there either way.
  await waitFor(
    async () =>
      (await core.listNamespacedEvent({ namespace: SAMPLES_NAMESPACE })).items.some((e) => e.reason === "Injected"),
    { timeoutMs: 15_000, intervalMs: 500, message: "the Injected Event" },
  ).catch(() => undefined);

  // 4. What happened.
  say();
  say(`== kubectl get mp -n ${SAMPLES_NAMESPACE}`);
  say((await kubectl(["get", "mp", "-n", SAMPLES_NAMESPACE])).trimEnd());
  say();
  const dep = await apps.readNamespacedDeployment({ namespace: SAMPLES_NAMESPACE, name: DEPLOYMENT_NAME });
  say(`== Before: the pod template of Deployment ${SAMPLES_NAMESPACE}/${DEPLOYMENT_NAME}`);
  for (const l of describeContainers("", dep.spec?.template.spec).slice(1)) say(l);
  say();
  say(`== After: Pod ${SAMPLES_NAMESPACE}/${pod.metadata?.name}, as the webhook admitted it`);
  say(`  annotation ${Annotations.injected}: ${pod.metadata?.annotations?.[Annotations.injected]}`);
  for (const l of describeContainers("", pod.spec).slice(1)) say(l);
  say();
  say(`== kubectl get events -n ${SAMPLES_NAMESPACE}`);
  say((await kubectl(["get", "events", "-n", SAMPLES_NAMESPACE, "--sort-by=.metadata.creationTimestamp"])).trimEnd());
  say();

  // 5. The injected container as a local process, and the series in Prometheus.
  const reader: ObjectReader = {
    secret: (namespace, name) =>
      core.readNamespacedSecret({ namespace, name }).catch((err: unknown) => {
        if (notFound(err)) return undefined;
        throw err;
      }),
    configMap: (namespace, name) =>
      core.readNamespacedConfigMap({ namespace, name }).catch((err: unknown) => {
        if (notFound(err)) return undefined;
        throw err;
      }),
  };
  say(
    `== No kubelet runs here: the demo starts the injected ${SIDECAR_CONTAINER_NAME} container of Pod ${pod.metadata?.name} itself`,
  );
  let running: RunningPusher = await startPusherFor(pod, reader, dir, true);
  started.push({
    name: "pusher",
    pids: () => `pid ${running.process.pid}, ${running.process.exitInfo ?? "running"}`,
    // On Ctrl-C the receivers helper has already killed Prometheus (its own signal hook): the pusher's last flush has
    // nowhere to go, so its full shutdown timeout would only make the user wait.
    stop: () => running.process.stop(interrupted ? 3000 : undefined),
  });
  say();

  const builderJob = "builder";
  const rows = await step(
    "Waiting for the pusher's own series and the builder's scraped series in Prometheus",
    async () => {
      try {
        return await waitFor(
          async () => {
            if (running.process.exitInfo !== undefined)
              throw new DemoError(
                `the pusher exited (${running.process.exitInfo}); its last lines:\n${tail(running.process)}`,
              );
            const own = await prometheus.query(
              `{job="metrics-pusher", __name__=~"knative_lambda_metric_pusher_(${SHOWN_PUSHER_SERIES.join("|")})"}`,
            );
            const scraped = await prometheus.query(`{job="${builderJob}"}`);
            const missing = [
              own.some((s) => s.metric.__name__ === "knative_lambda_metric_pusher_heartbeat")
                ? ""
                : "the pusher's heartbeat",
              scraped.some((s) => s.metric.__name__ === "up" && s.value === 1) ? "" : `up{job="${builderJob}"} == 1`,
              scraped.some((s) => s.metric.__name__ === "http_requests_total")
                ? ""
                : "the builder's http_requests_total",
            ].filter(Boolean);
            if (missing.length > 0)
              throw new Error(`${own.length + scraped.length} series so far; missing ${missing.join(", ")}`);
            return { own, scraped };
          },
          {
            timeoutMs: WAIT_MS,
            intervalMs: 500,
            message: 'knative_lambda_metric_pusher_heartbeat and up/http_requests_total of job="builder" in Prometheus',
          },
        );
      } catch (err) {
        if ((err instanceof DemoError || err instanceof WaitTimeout) && running.process.exitInfo === undefined)
          throw new DemoError(`${err.message}\n  the pusher's last lines:\n${tail(running.process)}`);
        throw err;
      }
    },
    (r) =>
      `series arrived in Prometheus (${r.own.length} of the pusher's shown below, ${r.scraped.length} of the builder's)`,
  );
  const allOwn = await prometheus.query(`{job="metrics-pusher"}`);
  const byName = (a: VectorSample, b: VectorSample): number =>
    a.metric.__name__! < b.metric.__name__! ? -1 : a.metric.__name__! > b.metric.__name__! ? 1 : 0;
  say();
  say(
    `== Series in Prometheus (${prometheus.url}): the pusher's own (${rows.own.length} of its ${allOwn.length} shown) and the builder's scraped /metrics (all ${rows.scraped.length})`,
  );
  for (const l of seriesTable([...rows.own.sort(byName), ...rows.scraped.sort(byName)])) say(l);
  say();
  say(
    `Series arrived: ${allOwn.length} from the pusher itself (job="metrics-pusher"), ${rows.scraped.length} scraped from the builder (job="${builderJob}").`,
  );

  if (EXIT_AFTER_SERIES) {
    say();
    progress("DEMO_EXIT=1: stopping everything the demo started");
    await stopAll();
    say(`Demo OK in ${elapsed().trim()}.`);
    process.exit(0);
  }

  // 6. Up until Ctrl-C; the local pusher follows the newest Pod, as the kubelet would run the new Pod.
  const kubectlPath = join(cp.binDir, "kubectl");
  const q = encodeURIComponent(`{job="${builderJob}"}`);
  say();
  say(`Everything is running (demo pid ${process.pid}). In another shell:`);
  say();
  say(`  export KUBECONFIG=${cp.kubeconfigPath}`);
  say(`  alias kubectl=${kubectlPath}`);
  const tryThese: Array<[string, string]> = [
    [`kubectl get mp -n ${SAMPLES_NAMESPACE}`, "the MetricsPusher and its status"],
    [`kubectl describe mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE}`, "conditions, Events"],
    [
      `kubectl get pods -n ${SAMPLES_NAMESPACE} -o custom-columns=POD:.metadata.name,INJECTED:.metadata.annotations.metricspusher\\.dev/injected`,
      "",
    ],
    [
      `kubectl edit mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE}`,
      "change e.g. spec.externalLabels or spec.pushInterval; or at once:",
    ],
    [
      `kubectl patch mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE} --type merge -p '{"spec":{"externalLabels":{"cluster":"demo","team":"you"}}}'`,
      "",
    ],
    [
      `kubectl get rs,pods -n ${SAMPLES_NAMESPACE} -w`,
      "the rollout: a new ReplicaSet whose Pod carries the new config",
    ],
    [`kubectl get events -n ${SAMPLES_NAMESPACE} -w`, "RolloutTriggered, Injected"],
    [`kubectl delete mp ${PUSHER_NAME} -n ${SAMPLES_NAMESPACE}`, "rolls the sidecar away"],
  ];
  for (const [command, comment] of tryThese)
    say(`  ${command}${comment ? `${" ".repeat(Math.max(1, 48 - command.length))}# ${comment}` : ""}`);
  say();
  say(`  Prometheus:        ${prometheus.url}/graph?g0.expr=${q}&g0.tab=1`);
  say(`  Operator metrics:  ${operator.metricsUrl}`);
  say(`  Logs:              ${join(dir, "operator.log")}, ${join(dir, "pusher.log")}, ${join(cp.dir, "*.log")}`);
  say();
  say(
    "The local pusher follows the newest Pod of the Deployment (as a kubelet would run it). Ctrl-C stops everything.",
  );

  for (;;) {
    await sleep(2000);
    if (interrupted) return;
    try {
      // As a kubelet would run the new Pod: the newest Pod decides (the old ones never become Ready here, so a real
      // rollout would not finish; the demo does not wait for that).
      const newest = await newestPod(core, false);
      const injected = newest?.metadata?.annotations?.[Annotations.injected] ?? "";
      if (newest && newest.metadata?.name === running.pod && running.process.exitInfo === undefined) continue;
      if (!newest || findContainer(newest, SIDECAR_CONTAINER_NAME) === undefined) {
        if (running.process.exitInfo === undefined) {
          progress(
            newest
              ? `the newest Pod ${newest.metadata?.name} has no ${SIDECAR_CONTAINER_NAME} container (MetricsPusher deleted or not matching): stopping the local pusher`
              : "no Pod of the builder Deployment left: stopping the local pusher",
          );
          await running.process.stop();
        }
        continue;
      }
      if (running.process.exitInfo !== undefined && newest.metadata?.name === running.pod) {
        progress(
          `the local pusher exited (${running.process.exitInfo}); its last lines:\n${tail(running.process)}\n  starting it again in 10s`,
        );
        await sleep(10_000);
      } else {
        progress(
          `rollout: the newest injected Pod is now ${newest.metadata?.name} (${injected}); restarting the local pusher with its environment`,
        );
        await running.process.stop();
      }
      if (interrupted) return;
      running = await startPusherFor(newest, reader, dir, false);
    } catch (err) {
      progress(`following the Pods failed (${(err as Error).message.split("\n")[0]}); retrying`);
    }
  }
}
