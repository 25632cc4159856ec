// The real pusher process against the real receivers: Prometheus 2.42 (the strict one) and VictoriaMetrics 1.79
// (the lenient one). A local target exposes a counter, a gauge with a `job` label of its own, a histogram and a
// series that later disappears; one pusher per receiver scrapes it every second and pushes its own series too. Every
// check reads back over the receiver's HTTP API.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  spawnPeer,
  startPrometheus,
  startVictoriaMetrics,
  type Peer,
  type Receiver,
  type VectorSample,
} from "../peers/receivers.ts";
import { waitFor } from "../lib/wait.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const NODE = path.join(ROOT, "node_modules/.bin/node");
const PREFIX = "knative_lambda_metric_pusher";
const NAMESPACE = "it-ns";
const POD = "builder-pod-1";
const EXTERNAL = { cluster: "it", region: "local" };

// ---- the scraped target ----
const target = { builds: 7, ephemeral: true, failing: false };
function exposition(): string {
  return [
    "# HELP builds_total Builds finished.",
    "# TYPE builds_total counter",
    `builds_total{result="ok"} ${target.builds}`,
    "# HELP queue_depth Jobs waiting.",
    "# TYPE queue_depth gauge",
    'queue_depth{queue="default",job="conflict"} 3',
    'queue_depth{queue="empty_label",stage=""} 0',
    "# HELP build_seconds Build duration.",
    "# TYPE build_seconds histogram",
    'build_seconds_bucket{le="0.5"} 1',
    'build_seconds_bucket{le="1"} 2',
    'build_seconds_bucket{le="+Inf"} 3',
    "build_seconds_sum 2.25",
    "build_seconds_count 3",
    ...(target.ephemeral ? ["# TYPE ephemeral gauge", "ephemeral 1"] : []),
    "",
  ].join("\n");
}
let targetServer: http.Server;
let targetInstance: string;

let prometheus: Receiver;
let victoria: Receiver;
const pushers = new Map<Receiver, Peer>();

function startPusher(receiver: Receiver, scrapeUrl: string): Promise<Peer> {
  return spawnPeer({
    name: "pusher",
    command: NODE,
    cwd: ROOT,
    args: () => ["--conditions=source", path.join(ROOT, "pusher/src/main.ts")],
    readyPath: "/ready",
    readyTimeoutMs: 20_000,
    env: ({ port }) => ({
      PROMETHEUS_REMOTE_WRITE_URL: receiver.remoteWriteUrl,
      PUSH_INTERVAL: "1s",
      SCRAPE_TARGETS: scrapeUrl,
      NAMESPACE,
      POD_NAME: POD,
      EXTERNAL_LABELS: Object.entries(EXTERNAL)
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
      HTTP_PORT: String(port),
      HTTP_ADDRESS: "127.0.0.1",
      LOG_LEVEL: "debug",
      // As the operator renders it in the sidecar: the SIGTERM case below proves the markers reach Prometheus.
      STALE_MARKERS_ON_SHUTDOWN: "true",
    }),
  });
}

before(async () => {
  targetServer = http.createServer((_req, res) => {
    if (target.failing) res.writeHead(500).end("broken");
    else res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(exposition());
  });
  await new Promise<void>((resolve) => targetServer.listen(0, "127.0.0.1", resolve));
  targetInstance = `127.0.0.1:${(targetServer.address() as AddressInfo).port}`;
  [prometheus, victoria] = await Promise.all([startPrometheus(), startVictoriaMetrics()]);
  for (const r of [prometheus, victoria]) pushers.set(r, await startPusher(r, `http://${targetInstance}/metrics`));
});

after(async () => {
  await Promise.all([...pushers.values()].map((p) => p.stop()));
  await Promise.all([prometheus?.stop(), victoria?.stop()]);
  targetServer?.closeAllConnections();
  targetServer?.close();
});

/** Waits for a query to return exactly `count` series satisfying `ok`; errors name the receiver and the pusher's log. */
async function await_(
  r: Receiver,
  promql: string,
  ok: (v: VectorSample[]) => boolean,
  timeoutMs = 15_000,
): Promise<VectorSample[]> {
  try {
    return await waitFor(
      async () => {
        const v = await r.query(promql);
        return ok(v) ? v : undefined;
      },
      { timeoutMs: timeoutMs, intervalMs: 250, message: `${promql} on ${r.name}` },
    );
  } catch (e) {
    const last = await r.query(promql).catch((q: Error) => q.message);
    const logs = pushers.get(r)?.logs().split("\n").slice(-15).join("\n");
    throw new Error(`${(e as Error).message}\nlast answer: ${JSON.stringify(last)}\npusher log tail:\n${logs}`, {
      cause: e,
    });
  }
}
const targetLabels = (): Record<string, string> => ({
  job: "builder",
  instance: targetInstance,
  namespace: NAMESPACE,
  pod: POD,
  ...EXTERNAL,
});
const sorted = (m: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1)));

for (const which of ["Prometheus 2.42", "VictoriaMetrics 1.79"] as const) {
  const recv = (): Receiver => (which === "Prometheus 2.42" ? prometheus : victoria);
  describe(`pusher → ${which}`, () => {
    it("the pusher's own series: job=metrics-pusher, instance=POD_NAME, namespace, pod, external labels", async () => {
      const [hb] = await await_(recv(), `${PREFIX}_heartbeat`, (v) => v.length === 1);
      assert.deepEqual(
        sorted(hb!.metric),
        sorted({
          __name__: `${PREFIX}_heartbeat`,
          job: "metrics-pusher",
          instance: POD,
          namespace: NAMESPACE,
          pod: POD,
          ...EXTERNAL,
        }),
      );
      // A timestamp of the current cycle (seconds or milliseconds since the epoch).
      const nowS = Date.now() / 1000;
      const hbS = hb!.value > 1e11 ? hb!.value / 1000 : hb!.value;
      assert.ok(Math.abs(hbS - nowS) < 120, `heartbeat ${hb!.value} is near now (${nowS})`);
      const uptime = await await_(recv(), `${PREFIX}_uptime_seconds{job="metrics-pusher"}`, (v) => v.length === 1);
      assert.ok(uptime[0]!.value >= 0);
    });

    it("the target's up series and a counter, with job/instance/namespace/pod/external labels", async () => {
      const [up] = await await_(recv(), `up{job="builder"}`, (v) => v.length === 1 && v[0]!.value === 1);
      assert.deepEqual(sorted(up!.metric), sorted({ __name__: "up", ...targetLabels() }));
      const [c] = await await_(recv(), "builds_total", (v) => v.length === 1);
      assert.deepEqual(sorted(c!.metric), sorted({ __name__: "builds_total", result: "ok", ...targetLabels() }));
      assert.equal(c!.value, target.builds);
      const duration = await await_(recv(), `scrape_duration_seconds{job="builder"}`, (v) => v.length === 1);
      assert.ok(duration[0]!.value > 0 && duration[0]!.value < 1);
    });

    it("a target label that clashes is kept as exported_job; empty label values are dropped", async () => {
      const [g] = await await_(recv(), 'queue_depth{queue="default"}', (v) => v.length === 1);
      assert.deepEqual(
        sorted(g!.metric),
        sorted({ __name__: "queue_depth", queue: "default", exported_job: "conflict", ...targetLabels() }),
      );
      assert.equal(g!.value, 3);
      const [e] = await await_(recv(), 'queue_depth{queue="empty_label"}', (v) => v.length === 1);
      assert.equal(e!.metric.stage, undefined);
      assert.equal(e!.value, 0);
    });

    it("a classic histogram arrives intact (buckets with le, _sum, _count) and histogram_quantile works", async () => {
      const buckets = await await_(recv(), `build_seconds_bucket{job="builder"}`, (v) => v.length === 3);
      assert.deepEqual(
        buckets.map((b) => [b.metric.le, b.value]).sort((a, b) => (a[1] as number) - (b[1] as number)),
        [
          ["0.5", 1],
          ["1", 2],
          ["+Inf", 3],
        ],
      );
      for (const b of buckets)
        assert.deepEqual(
          sorted(b.metric),
          sorted({ __name__: "build_seconds_bucket", le: b.metric.le!, ...targetLabels() }),
        );
      const [sum] = await await_(recv(), "build_seconds_sum", (v) => v.length === 1);
      const [count] = await await_(recv(), "build_seconds_count", (v) => v.length === 1);
      assert.equal(sum!.value, 2.25);
      assert.equal(count!.value, 3);
      const [q] = await await_(recv(), "histogram_quantile(0.5, build_seconds_bucket)", (v) => v.length === 1);
      assert.ok(q!.value > 0 && q!.value <= 1, `median ${q!.value}`);
    });
  });
}

describe("changes over time", () => {
  it("a new counter value reaches both receivers", async () => {
    target.builds = 11;
    for (const r of [prometheus, victoria])
      await await_(r, "builds_total", (v) => v.length === 1 && v[0]!.value === 11);
  });

  it("a series that disappears is marked stale: neither receiver returns it at the latest time", async () => {
    for (const r of [prometheus, victoria]) await await_(r, "ephemeral", (v) => v.length === 1);
    target.ephemeral = false;
    // Without a stale marker both would keep answering with the last value for 5 minutes (the lookback window).
    for (const r of [prometheus, victoria]) await await_(r, "ephemeral", (v) => v.length === 0, 10_000);
    // VictoriaMetrics' raw export shows the marker itself as the last sample (a NaN, written as null).
    const [raw] = await victoria.samples("ephemeral");
    assert.ok(raw && raw.values.length >= 2, "raw samples exported");
    assert.ok(Number.isNaN(raw.values.at(-1)), `last raw sample is the stale NaN: ${JSON.stringify(raw.values)}`);
    assert.ok(raw.values.slice(0, -1).every((v) => v === 1));
    const [still] = await await_(prometheus, "builds_total", (v) => v.length === 1);
    assert.equal(still!.value, 11, "the other series go on");
  });

  it("a failing target gives up 0 and its series go stale on Prometheus; recovery brings them back", async () => {
    target.failing = true;
    for (const r of [prometheus, victoria])
      await await_(r, `up{job="builder"}`, (v) => v.length === 1 && v[0]!.value === 0);
    await await_(prometheus, "builds_total", (v) => v.length === 0, 10_000);
    await await_(
      prometheus,
      `${PREFIX}_scrape_failures_total{reason="http_status"}`,
      (v) => v.length === 1 && v[0]!.value >= 1,
    );
    target.failing = false;
    for (const r of [prometheus, victoria])
      await await_(r, `up{job="builder"}`, (v) => v.length === 1 && v[0]!.value === 1);
    await await_(prometheus, "builds_total", (v) => v.length === 1);
  });

  it("SIGTERM: the pusher exits 0 and its own series go stale on Prometheus", async () => {
    const p = pushers.get(prometheus)!;
    await await_(prometheus, `${PREFIX}_heartbeat`, (v) => v.length === 1);
    process.kill(p.pid, "SIGTERM");
    const exit = await p.exited;
    assert.deepEqual(
      exit,
      { code: 0, signal: null },
      `pusher exit; log tail:\n${p.logs().split("\n").slice(-10).join("\n")}`,
    );
    await await_(prometheus, `${PREFIX}_heartbeat`, (v) => v.length === 0, 5_000);
    await await_(prometheus, `up{job="builder"}`, (v) => v.length === 0, 5_000);
  });
});
