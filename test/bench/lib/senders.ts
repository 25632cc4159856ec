// The three senders compared: our pusher, vmagent and Prometheus in agent mode, configured alike (same target, same
// receiver, same interval). Each is a separate process whose pid the benchmark measures.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, startProcess, tempDir, type Proc } from "./procs.ts";
import { SCRAPE_LIMITS, SCRAPE_MAX_BYTES_DEFAULT } from "../../../pusher/src/config.ts";
import { SETTINGS } from "../../../operator/src/config.ts";
import { parseQuantity } from "../../../operator/src/api/quantity.ts";

export const REPO = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");

export const SenderKind = { ours: "ours", vmagent: "vmagent", promAgent: "prometheus-agent" } as const;
export type SenderKind = (typeof SenderKind)[keyof typeof SenderKind];

export interface SenderSpec {
  kind: SenderKind;
  /** Label for the table; ours may run in several variants (node flags). */
  name: string;
  /** Extra node flags for ours (heap limits), after the shipped ones. */
  nodeFlags?: readonly string[];
  /**
   * Ours only: run on Node's own defaults, without the image's node flags and NODE_OPTIONS (to show what they buy).
   * By default ours runs as the image and the webhook start it (`shippedPusherNode`).
   */
  nodeDefaults?: boolean;
  /** Ours only: write a V8 CPU profile here (node --cpu-prof); the run then ends with SIGTERM so it is written. */
  cpuProfileDir?: string;
  /**
   * Ours only: its memory limit in bytes, null for none. By default the sidecar's shipped limit
   * (`shippedSidecarMemoryLimit`), in a memory cgroup as the kubelet runs it: Node sizes V8's heap from that limit.
   */
  memoryLimit?: number | null;
}

export interface SendJob {
  remoteWriteUrl: string;
  intervalS: number;
  /** Scrape this target (host:port serving /metrics) as job "builder"; without it, the sender pushes only itself. */
  target?: string;
  /** Value of the `sender` label on everything it sends: tells runs apart in the receiver. */
  senderLabel: string;
  /**
   * Samples one scrape may hold: SCRAPE_SAMPLE_LIMIT for ours, whose default (4,000) refuses a larger target, so a
   * user scraping 10,000 series sets it, and so does the benchmark. vmagent and Prometheus have no limit by default
   * and run as users get them.
   */
  sampleLimit?: number;
  /**
   * BUFFER_MAX_SAMPLES for ours, when its default (100,000) cannot hold one scrape: at 100,000 series every push would
   * drop the oldest samples (buffer_full), as it would for a user who did not raise it.
   */
  bufferSamples?: number;
}

export interface Sender {
  readonly spec: SenderSpec;
  readonly proc: Proc;
  /** The job label of the series it forwards (target or self). */
  readonly job: string;
}

let peersRoot: string | undefined;
/** The directory whose usr/bin holds prometheus and vmagent (test/peers/fetch.sh). */
export function peersBin(): string {
  if (!peersRoot) {
    try {
      peersRoot = execFileSync(join(REPO, "test/peers/fetch.sh"), {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      }).trim();
    } catch (err) {
      throw new Error(`test/peers/fetch.sh failed, vmagent and prometheus are unavailable: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  return join(peersRoot, "usr/bin");
}

/** Versions of the peers, from the Debian packages they were unpacked from (Debian's vmagent prints no version). */
export function peerVersions(): Record<string, string> {
  const debs = join(peersBin(), "../../../debs");
  const versions: Record<string, string> = {};
  for (const f of existsSync(debs) ? readdirSync(debs) : []) {
    const m = /^([^_]+)_([^_]+)_[^_]+\.deb$/.exec(f);
    if (m) versions[m[1]!] = m[2]!;
  }
  const first = (cmd: string, arg: string): string =>
    execFileSync(join(peersBin(), cmd), [arg], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
      .split("\n")[0]!
      .trim();
  versions["prometheus --version"] = first("prometheus", "--version");
  return versions;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts"))
      newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * How the image starts the pusher: the node flags of Dockerfile.pusher's ENTRYPOINT and its ENV NODE_OPTIONS (which
 * the webhook renders too; operator/src/inject/sidecar.test.ts checks that they agree). Read from the Dockerfile so
 * the benchmark measures what users get, not a copy.
 */
export function shippedPusherNode(): { flags: string[]; nodeOptions: string | undefined } {
  const dockerfile = readFileSync(join(REPO, "Dockerfile.pusher"), "utf8");
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
  if (!entrypoint) throw new Error("Dockerfile.pusher has no ENTRYPOINT in exec form");
  const argv = JSON.parse(entrypoint[1]!) as string[];
  if (argv[0] !== "node" || argv.at(-1) !== "pusher/dist/main.js")
    throw new Error(`unexpected ENTRYPOINT ${entrypoint[1]}: want ["node", flags..., "pusher/dist/main.js"]`);
  const env = /^ENV NODE_OPTIONS=(?:"([^"]*)"|(\S+))$/m.exec(dockerfile);
  return { flags: argv.slice(1, -1), nodeOptions: env ? (env[1] ?? env[2]) : undefined };
}

/** The memory limit the webhook gives the sidecar by default: the operator's SIDECAR_RESOURCES default (the shipped
 * manifest does not set it). */
export function shippedSidecarMemoryLimit(): number {
  const resources = JSON.parse(SETTINGS.SIDECAR_RESOURCES.default) as { limits?: { memory?: string } };
  const bytes = parseQuantity(resources.limits?.memory);
  if (bytes === undefined)
    throw new Error(`SIDECAR_RESOURCES' default has no memory limit: ${SETTINGS.SIDECAR_RESOURCES.default}`);
  return bytes;
}

export type Workspace = "pusher" | "operator";

/**
 * How to start a workspace's main: the compiled dist/main.js (what the image runs) when it is newer than every
 * source file (the operator's also newer than the pusher's, whose config it imports), else the TypeScript source
 * through Node's type stripping, which starts slower and holds more memory.
 */
export function entry(
  workspace: Workspace,
  prefer: "dist" | "source" = "dist",
): { args: string[]; form: "dist" | "source" } {
  const dist = join(REPO, workspace, "dist/main.js");
  const sources = workspace === "operator" ? ["operator/src", "pusher/src"] : ["pusher/src"];
  // tsc leaves unchanged outputs untouched, so freshness is read from the build info it rewrites on every build.
  const info = join(REPO, workspace, "dist/.tsbuildinfo");
  const fresh =
    existsSync(dist) &&
    existsSync(info) &&
    sources.every((dir) => statSync(info).mtimeMs >= newestMtime(join(REPO, dir)));
  if (prefer === "dist" && fresh) return { args: [dist], form: "dist" };
  return { args: ["--conditions=source", join(REPO, workspace, "src/main.ts")], form: "source" };
}

export function pusherEntry(prefer: "dist" | "source" = "dist"): { args: string[]; form: "dist" | "source" } {
  return entry("pusher", prefer);
}

/** Compiles a workspace (and what it references) to dist/ so the benchmark runs what the image runs. */
export function build(workspace: Workspace): { ok: boolean; output: string } {
  const r = spawnSync(process.execPath, [join(REPO, "node_modules/typescript/bin/tsc"), "-b", join(REPO, workspace)], {
    cwd: REPO,
    encoding: "utf8",
  });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

function yamlScrapeConfig(job: string, target: string, intervalS: number, extraGlobal = ""): string {
  return [
    "global:",
    `  scrape_interval: ${intervalS}s`,
    `  scrape_timeout: ${intervalS}s`,
    extraGlobal,
    "scrape_configs:",
    `  - job_name: ${job}`,
    "    static_configs:",
    `      - targets: ["${target}"]`,
    "",
  ]
    .filter((l) => l !== "")
    .join("\n");
}

export async function startSender(spec: SenderSpec, job: SendJob, prefer: "dist" | "source" = "dist"): Promise<Sender> {
  const dir = tempDir(spec.name);
  const port = await freePort();
  const self = `127.0.0.1:${port}`;
  switch (spec.kind) {
    case SenderKind.ours: {
      const entry = pusherEntry(prefer);
      const env: Record<string, string> = {
        PROMETHEUS_REMOTE_WRITE_URL: job.remoteWriteUrl,
        PUSH_INTERVAL: `${job.intervalS}s`,
        LOG_LEVEL: "warn",
        EXTERNAL_LABELS: `sender=${job.senderLabel}`,
        POD_NAME: `bench-${job.senderLabel}`,
        HTTP_PORT: "0",
      };
      if (job.target) {
        env.SCRAPE_TARGETS = `http://${job.target}/metrics`;
        env.SCRAPE_JOB = "builder";
        if (job.sampleLimit !== undefined) {
          env.SCRAPE_SAMPLE_LIMIT = String(job.sampleLimit);
          // A user who raises the sample limit raises the body size limit with it, at the defaults' ratio (1 KiB a
          // sample); the 4 MiB default would refuse a 10,000-series target's body.
          const perSample = SCRAPE_MAX_BYTES_DEFAULT / SCRAPE_LIMITS.sampleLimit.default;
          env.SCRAPE_MAX_BYTES = String(Math.max(SCRAPE_MAX_BYTES_DEFAULT, Math.ceil(job.sampleLimit * perSample)));
        }
        if (job.bufferSamples !== undefined) env.BUFFER_MAX_SAMPLES = String(job.bufferSamples);
      }
      const prof = spec.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${spec.cpuProfileDir}`] : [];
      const shipped = spec.nodeDefaults ? { flags: [], nodeOptions: undefined } : shippedPusherNode();
      // An unset NODE_OPTIONS must not inherit the benchmark's own.
      env.NODE_OPTIONS = shipped.nodeOptions ?? "";
      const argv = [...shipped.flags, ...(spec.nodeFlags ?? []), ...prof, ...entry.args];
      const limit = spec.memoryLimit === undefined ? shippedSidecarMemoryLimit() : spec.memoryLimit;
      const proc = startProcess(spec.name, process.execPath, argv, {
        env,
        cwd: REPO,
        ...(limit !== null ? { memoryLimit: limit } : {}),
      });
      // Without a target, what ours sends is its own series; their job label is the pusher's choice, so count by
      // the sender label alone.
      return { spec, proc, job: job.target ? "builder" : "" };
    }
    case SenderKind.vmagent: {
      const scrapeJob = job.target ? "builder" : "self";
      const config = join(dir, "scrape.yml");
      writeFileSync(config, yamlScrapeConfig(scrapeJob, job.target ?? self, job.intervalS));
      const proc = startProcess(spec.name, join(peersBin(), "vmagent"), [
        `-httpListenAddr=${self}`,
        `-promscrape.config=${config}`,
        `-remoteWrite.url=${job.remoteWriteUrl}`,
        `-remoteWrite.tmpDataPath=${join(dir, "data")}`,
        `-remoteWrite.label=sender=${job.senderLabel}`,
        // vmagent's default flush period is 1 s already; said explicitly so the configuration reads like the others.
        `-remoteWrite.flushInterval=${job.intervalS}s`,
        "-loggerLevel=WARN",
      ]);
      return { spec, proc, job: scrapeJob };
    }
    case SenderKind.promAgent: {
      const scrapeJob = job.target ? "builder" : "self";
      const config = join(dir, "prometheus.yml");
      writeFileSync(
        config,
        yamlScrapeConfig(
          scrapeJob,
          job.target ?? self,
          job.intervalS,
          `  external_labels:\n    sender: "${job.senderLabel}"`,
        ) + `\nremote_write:\n  - url: "${job.remoteWriteUrl}"\n`,
      );
      const proc = startProcess(spec.name, join(peersBin(), "prometheus"), [
        "--enable-feature=agent",
        `--config.file=${config}`,
        `--storage.agent.path=${join(dir, "data")}`,
        `--web.listen-address=${self}`,
        "--log.level=warn",
      ]);
      return { spec, proc, job: scrapeJob };
    }
  }
}
