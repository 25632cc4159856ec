// Benchmark 4, webhook: AdmissionReviews of realistic pods over HTTPS against the operator's webhook handler (its own
// server and handler, with 100 MetricsPushers in memory), the server pinned to one core. Two loads: as fast as a
// fixed number of connections can go (throughput), and a fixed rate of 2,000 reviews/s (latency at the goal rate).
import { request } from "node:https";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { createCA, issueCert } from "../controlplane/pki.ts";
import { admissionReviews } from "./lib/admission.ts";
import { cpuSeconds, memory, startProcess, tempDir, isAlive, type Proc } from "./lib/procs.ts";
import { waitFor, WaitAborted } from "../lib/wait.ts";
import { Better, log, median, quantile, MiB, type Row } from "./lib/report.ts";
import { REPO } from "./lib/senders.ts";

const require = createRequire(import.meta.url);
interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
}
interface AutocannonInstance extends Promise<AutocannonResult> {
  on(
    event: "response",
    fn: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void,
  ): void;
}
const autocannon = require("autocannon") as (opts: Record<string, unknown>) => AutocannonInstance;

export const WEBHOOK_P99_GOAL_MS = 5;
export const WEBHOOK_RATE_GOAL = 2000;
const PATH = "/mutate-v1-pod";

export interface WebhookOptions {
  pushers: number;
  /** Distinct AdmissionReviews cycled through by each connection. */
  reviews: number;
  connections: number;
  durationS: number;
  runs: number;
  /** Fixed rate for the latency load; 0 skips it. */
  rate: number;
  /** Write a V8 CPU profile of the server (node --cpu-prof) here. */
  cpuProfileDir?: string;
}

export interface WebhookRun {
  load: "max" | "rate";
  reviewsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** autocannon's own p99, corrected for coordinated omission under a fixed rate (1 ms resolution). */
  p99CorrectedMs: number;
  serverCpuS: number;
  serverPeakRss: number;
  errors: number;
}

export interface WebhookResult {
  rows: Row[];
  runs: WebhookRun[];
  /** Answers to one pass over the distinct reviews: how many carried a patch. */
  checked: { injected: number; skipped: number; expectedInjected: number };
}

interface Server {
  proc: Proc;
  port: number;
  caPem: string;
}

async function startServer(
  pushers: number,
  cpu: string | undefined,
  cpuProfileDir: string | undefined,
): Promise<Server> {
  const dir = tempDir("webhook");
  const ca = await createCA({ commonName: "bench webhook CA" });
  const leaf = await issueCert({ ca, commonName: "127.0.0.1", ips: ["127.0.0.1"] });
  const portFile = join(dir, "port");
  const prof = cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`] : [];
  const proc = startProcess(
    "webhook",
    process.execPath,
    [...prof, "--conditions=source", join(REPO, "test/bench/webhook-server.ts")],
    {
      cwd: REPO,
      cpus: cpu,
      env: {
        BENCH_TLS_KEY: leaf.keyPem,
        BENCH_TLS_CERT: leaf.certPem,
        BENCH_PORT_FILE: portFile,
        BENCH_PUSHERS: String(pushers),
      },
    },
  );
  const port = await waitFor(
    () => {
      if (!isAlive(proc)) throw new WaitAborted(`webhook server exited:\n${proc.tail()}`);
      try {
        return Number(readFileSync(portFile, "utf8")) || undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, intervalMs: 100, message: "the webhook server to listen" },
  );
  return { proc, port, caPem: ca.certPem };
}

/** The part of an AdmissionReview answer the benchmark reads. */
type Review = { response?: { allowed?: boolean; patch?: string } };

function post(server: Server, body: string): Promise<{ status: number; json: Review }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: server.port,
        path: PATH,
        method: "POST",
        ca: server.caPem,
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Review,
            });
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function load(
  server: Server,
  bodies: readonly string[],
  opts: WebhookOptions,
  rate: number,
): Promise<WebhookRun> {
  const latencies: number[] = [];
  const cpu0 = cpuSeconds(server.proc.pid);
  const instance = autocannon({
    url: `https://127.0.0.1:${server.port}${PATH}`,
    connections: opts.connections,
    duration: opts.durationS,
    ...(rate > 0 ? { overallRate: rate } : {}),
    requests: bodies.map((body) => ({
      method: "POST",
      path: PATH,
      headers: { "content-type": "application/json" },
      body,
    })),
  });
  instance.on("response", (_client, status, _bytes, responseTime) => {
    if (status === 200) latencies.push(responseTime);
  });
  const result = await instance;
  const cpu1 = cpuSeconds(server.proc.pid);
  latencies.sort((a, b) => a - b);
  return {
    load: rate > 0 ? "rate" : "max",
    reviewsPerS: latencies.length / result.duration,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    p99CorrectedMs: result.latency.p99,
    serverCpuS: cpu1 - cpu0,
    serverPeakRss: memory(server.proc.pid).peakRss,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

export async function benchWebhook(opts: WebhookOptions): Promise<WebhookResult> {
  const { bodies, mix } = admissionReviews(opts.reviews, opts.pushers);
  // The server gets one core to itself (the goal is "on one core"); with two or more cores, the load generator
  // takes the other.
  const serverCpu = cpus().length >= 2 ? "1" : undefined;
  const server = await startServer(opts.pushers, serverCpu, opts.cpuProfileDir);
  const restoreAffinity = serverCpu ? pinSelf("0") : () => {};
  const runs: WebhookRun[] = [];
  let checked = { injected: 0, skipped: 0, expectedInjected: mix.injected };
  try {
    // One pass over every distinct review: the answers must be what the operator would give, or the load is a lie.
    for (const body of bodies) {
      const r = await post(server, body);
      if (r.status !== 200 || r.json.response?.allowed !== true)
        throw new Error(`webhook answered ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}`);
      if (r.json.response.patch) checked.injected++;
      else checked.skipped++;
    }
    checked = { ...checked, expectedInjected: mix.injected };
    if (checked.injected !== mix.injected)
      throw new Error(`webhook injected ${checked.injected} of ${bodies.length} pods, want ${mix.injected}`);
    // Warm-up: let V8 optimise the handler before anything is measured.
    await load(server, bodies, { ...opts, durationS: Math.min(3, opts.durationS) }, 0);
    for (let run = 0; run < opts.runs; run++) {
      for (const rate of opts.rate > 0 ? [0, opts.rate] : [0]) {
        const r = await load(server, bodies, opts, rate);
        runs.push(r);
        log(
          `webhook run ${run + 1}/${opts.runs} ${rate > 0 ? `at ${rate}/s` : `max, ${opts.connections} connections`}: ` +
            `${r.reviewsPerS.toFixed(0)} reviews/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms ` +
            `(corrected ${r.p99CorrectedMs} ms), server CPU ${((1000 * r.serverCpuS) / (r.reviewsPerS * opts.durationS)).toFixed(3)} ms/review, ` +
            `errors ${r.errors}`,
        );
        if (r.errors > 0) throw new Error(`webhook load had ${r.errors} errors/timeouts/non-2xx answers`);
      }
    }
  } finally {
    restoreAffinity();
    await server.proc.stop(15_000);
  }
  return { rows: webhookRows(runs, opts), runs, checked };
}

/** Pins every thread of this process (the load generator) to `cpu`; returns a function restoring the old mask. */
function pinSelf(cpu: string): () => void {
  try {
    const before = execFileSync("taskset", ["-p", String(process.pid)], { encoding: "utf8" })
      .trim()
      .split(/\s+/)
      .at(-1)!;
    execFileSync("taskset", ["-a", "-p", "-c", cpu, String(process.pid)], { stdio: "ignore" });
    return () => execFileSync("taskset", ["-a", "-p", before, String(process.pid)], { stdio: "ignore" });
  } catch {
    return () => {};
  }
}

export function webhookRows(runs: readonly WebhookRun[], opts: Pick<WebhookOptions, "connections" | "rate">): Row[] {
  const max = runs.filter((r) => r.load === "max");
  const fixed = runs.filter((r) => r.load === "rate");
  const rows: Row[] = [];
  const throughput = median(max.map((r) => r.reviewsPerS));
  rows.push({
    bench: "webhook",
    metric: `reviews/s, ${opts.connections} connections, 1 core`,
    unit: "",
    better: Better.higher,
    ours: throughput,
    goal: { text: `≥ ${WEBHOOK_RATE_GOAL}/s`, met: throughput >= WEBHOOK_RATE_GOAL },
    runs: max.map((r) => r.reviewsPerS),
  });
  rows.push({
    bench: "webhook",
    metric: `p50 at max load`,
    unit: "ms",
    better: Better.lower,
    ours: median(max.map((r) => r.p50Ms)),
    runs: max.map((r) => r.p50Ms),
  });
  rows.push({
    bench: "webhook",
    metric: `p99 at max load`,
    unit: "ms",
    better: Better.lower,
    ours: median(max.map((r) => r.p99Ms)),
    runs: max.map((r) => r.p99Ms),
  });
  if (fixed.length > 0) {
    const p99 = median(fixed.map((r) => r.p99Ms));
    rows.push({
      bench: "webhook",
      metric: `p50 at ${opts.rate}/s`,
      unit: "ms",
      better: Better.lower,
      ours: median(fixed.map((r) => r.p50Ms)),
      runs: fixed.map((r) => r.p50Ms),
    });
    rows.push({
      bench: "webhook",
      metric: `p99 at ${opts.rate}/s`,
      unit: "ms",
      better: Better.lower,
      ours: p99,
      goal: { text: `≤ ${WEBHOOK_P99_GOAL_MS} ms`, met: p99 <= WEBHOOK_P99_GOAL_MS },
      runs: fixed.map((r) => r.p99Ms),
    });
    rows.push({
      bench: "webhook",
      metric: `reviews/s achieved at ${opts.rate}/s`,
      unit: "",
      better: Better.higher,
      ours: median(fixed.map((r) => r.reviewsPerS)),
    });
  }
  rows.push({
    bench: "webhook",
    metric: "server peak RSS",
    unit: "MiB",
    better: Better.lower,
    ours: Math.max(...runs.map((r) => r.serverPeakRss)) / MiB,
  });
  return rows;
}
