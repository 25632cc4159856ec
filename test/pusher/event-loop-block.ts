// The longest event-loop block while the scraper takes in hostile expositions, measured with
// perf_hooks.monitorEventLoopDelay (1 ms resolution) around three scrapes of each body, with the default limits and
// with both limits off. The target is an HTTP server in this process. Not part of the test suite:
//   node --conditions=source test/pusher/event-loop-block.ts [defaults|off|both]
import http from "node:http";
import type { AddressInfo } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pino } from "pino";
import { Registry } from "prom-client";
import { Scraper } from "../../pusher/src/collect/scrape.ts";
import { SCRAPE_LIMITS } from "../../pusher/src/config.ts";

const MAX_BYTES = 16 * 1024 * 1024; // SCRAPE_MAX_BYTES' default

function labels(n: number): string {
  const parts: string[] = [];
  for (let k = 0; k < n; k++) parts.push(`l${k}="v"`);
  return `wide{${parts.join(",")}} 1\n`;
}
function tiny(bytes: number): string {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes - 32; i++) {
    const line = `s{l="${i}"} 1\n`;
    parts.push(line);
    size += line.length;
  }
  return parts.join("");
}
function typical(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    parts.push(
      `http_request_duration_seconds_bucket{method="GET",route="/api/${i % 200}",le="${i % 5}",shard="${i}"} 1\n`,
    );
  }
  return parts.join("");
}

const bodies: Record<string, Buffer> = {
  "80k labels on one line": Buffer.from(labels(80_000)),
  "16 MiB of tiny series": Buffer.from(tiny(MAX_BYTES)),
  "one 16 MiB label value": Buffer.from(`m{v="${"x".repeat(MAX_BYTES - 64)}"} 1\n`),
  "16 MiB label value with a raw line feed every 16 bytes": Buffer.from(
    `m{v="${"0123456789abcde\n".repeat((MAX_BYTES - 64) / 16)}"} 1\n`,
  ),
  "4,000 typical series (at the default sample limit)": Buffer.from(typical(SCRAPE_LIMITS.sampleLimit.default)),
};

const server = http.createServer((req, res) => {
  const body = bodies[decodeURIComponent(req.url!.slice(1))]!;
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body);
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const port = (server.address() as AddressInfo).port;

const which = process.argv[2] ?? "both"; // defaults | off | both
for (const limits of [
  ...(which === "off"
    ? []
    : [{ sampleLimit: SCRAPE_LIMITS.sampleLimit.default, labelLimit: SCRAPE_LIMITS.labelLimit.default }]),
  ...(which === "defaults" ? [] : [{ sampleLimit: 0, labelLimit: 0 }]),
]) {
  for (const name of Object.keys(bodies)) {
    const registry = new Registry();
    const s = new Scraper({
      targets: [`http://127.0.0.1:${port}/${encodeURIComponent(name)}`],
      job: "j",
      timeoutMs: 30_000,
      ...limits,
      maxBytes: MAX_BYTES,
      extraLabels: { namespace: "ns", pod: "p" },
      log: pino({ level: "silent" }),
      registry,
    });
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    let up = -1;
    for (let k = 0; k < 3; k++) {
      const out = await s.scrape(Date.now());
      up = out.find((x) => x.labels.some((l) => l.name === "__name__" && l.value === "up"))!.value;
    }
    h.disable();
    const failures = (await registry.getMetricsAsJSON())
      .find((m) => m.name.endsWith("_scrape_failures_total"))!
      .values.map((v) => `${v.labels.reason}=${v.value}`);
    console.log(
      JSON.stringify({
        body: name,
        bytes: bodies[name]!.length,
        ...limits,
        up,
        failures,
        scrapeMs: Math.round((performance.now() - t0) / 3),
        maxBlockMs: Number((h.max / 1e6).toFixed(1)),
        p99BlockMs: Number((h.percentile(99) / 1e6).toFixed(1)),
      }),
    );
  }
}
server.close();
