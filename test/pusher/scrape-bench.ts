// Throughput of the exposition parser and of a whole scrape over loopback: node --conditions=source test/pusher/scrape-bench.ts [series]
import { parseExposition } from "../../pusher/src/collect/exposition.ts";
import { Scraper } from "../../pusher/src/collect/scrape.ts";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { Registry } from "prom-client";
const N = Number(process.argv[2] ?? 10000);
let text = "# HELP http_request_duration_seconds Request duration.\n# TYPE http_request_duration_seconds histogram\n";
for (let i = 0; i < N; i++)
  text += `http_request_duration_seconds_bucket{method="GET",route="/api/v1/builds/${i % 200}",status_code="200",le="${[0.1, 0.5, 1, 5, "+Inf"][i % 5]}",shard="${i}"} ${i * 1.5}\n`;
const bytes = Buffer.byteLength(text);
for (let w = 0; w < 5; w++) parseExposition(text);
let t0 = performance.now();
const R = 20;
for (let r = 0; r < R; r++) parseExposition(text);
let ms = (performance.now() - t0) / R;
console.log(
  `parse: ${N} series, ${(bytes / 1024).toFixed(0)} KiB: ${ms.toFixed(2)} ms/parse = ${(((N / ms) * 1000) / 1e6).toFixed(2)} M series/s, ${(bytes / ms / 1000).toFixed(0)} MB/s`,
);
const server = http.createServer((_q, r) => r.end(text));
await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
const port = (server.address() as AddressInfo).port;
const s = new Scraper({
  targets: [`http://127.0.0.1:${port}/metrics`],
  job: "builder",
  timeoutMs: 10000,
  sampleLimit: 0,
  maxBytes: 64 << 20,
  extraLabels: { namespace: "ns", pod: "p" },
  log: pino({ level: "silent" }),
  registry: new Registry(),
});
let now = Date.now();
const first = performance.now();
await s.scrape(now++);
const firstMs = performance.now() - first;
for (let w = 0; w < 3; w++) await s.scrape(now++);
t0 = performance.now();
let count = 0;
for (let r = 0; r < R; r++) count = (await s.scrape(now++)).length;
ms = (performance.now() - t0) / R;
console.log(
  `scrape over loopback (fetch+decode+parse+labels+staleness): first ${firstMs.toFixed(1)} ms, steady ${ms.toFixed(2)} ms/scrape = ${(((N / ms) * 1000) / 1e6).toFixed(2)} M series/s (${count} samples out)`,
);
server.closeAllConnections();
server.close();
