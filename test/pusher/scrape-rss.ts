// Peak memory of the real pusher scraping one generated exposition, for the sizing of SCRAPE_SAMPLE_LIMIT and
// SCRAPE_LABEL_LIMIT. A target in this process serves N series of a chosen shape, a receiver here answers 204 to
// every push, and the built pusher (pusher/dist/main.js, as in the image) scrapes it every PUSH_INTERVAL; after a few
// cycles the peak RSS (VmHWM) and the scrape outcome are printed as one JSON line. Not part of the test suite:
//   npm run build
//   node --conditions=source test/pusher/scrape-rss.ts <shape> <series> [cycles] [VAR=value ...]
// Shapes: tiny (`s{l="000001"} 1`, ~17 bytes a series: the red-team case), typical (a histogram bucket with five
// labels, ~130 bytes), wide:<labels> (one metric with that many labels a series),
// long:<chars>[x<values>] (that many label values of that many characters a series).
// The pusher runs as the image runs it: `node --no-maglev`, NODE_OPTIONS=PUSHER_NODE_OPTIONS (NODE_OPTIONS=... on the
// command line replaces it).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { samplesOf } from "../lib/exposition.ts";
import { PUSHER_NODE_OPTIONS } from "../../pusher/src/config.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const [shape = "typical", seriesArg = "10000", cyclesArg = "4", ...rest] = process.argv.slice(2);
const N = Number(seriesArg);
const cycles = Number(cyclesArg);
const extraEnv = Object.fromEntries(rest.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

function exposition(kind: string, n: number): string {
  const parts: string[] = [];
  if (kind === "tiny") {
    for (let i = 0; i < n; i++) parts.push(`s{l="${String(i).padStart(6, "0")}"} 1\n`);
  } else if (kind === "typical") {
    parts.push("# TYPE http_request_duration_seconds histogram\n");
    const le = [0.1, 0.5, 1, 5, "+Inf"];
    for (let i = 0; i < n; i++) {
      parts.push(
        `http_request_duration_seconds_bucket{method="GET",route="/api/v1/builds/${i % 200}",status_code="200",le="${le[i % 5]}",shard="${i}"} ${i * 1.5}\n`,
      );
    }
  } else if (kind.startsWith("wide:")) {
    const labels = Number(kind.slice(5));
    for (let i = 0; i < n; i++) {
      let l = `id="${i}"`;
      for (let k = 1; k < labels; k++) l += `,label_${k}="value_${k}"`;
      parts.push(`wide{${l}} 1\n`);
    }
  } else if (kind.startsWith("long:")) {
    // N series, each with `values` label values (default 1) of that many characters (one 16 MiB value:
    // long:16777216 with N = 1; the default limits' worst case: long:2048x2 with N = 4000).
    const [chars = 0, values = 1] = kind.slice(5).split("x").map(Number);
    let labels = "";
    for (let v = 0; v < values; v++) labels += `,v${v}="${"x".repeat(chars)}"`;
    for (let i = 0; i < n; i++) parts.push(`long{id="${i}"${labels}} 1\n`);
  } else throw new Error(`unknown shape ${kind}`);
  return parts.join("");
}

const body = Buffer.from(exposition(shape, N));
const target = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body);
});
let pushes = 0;
let pushedBytes = 0;
const receiver = http.createServer((req, res) => {
  req.on("data", (c: Buffer) => (pushedBytes += c.length));
  req.on("end", () => {
    pushes++;
    res.writeHead(204).end();
  });
});
await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
const port = (s: http.Server): number => (s.address() as AddressInfo).port;
const httpPort = await new Promise<number>((resolve) => {
  const s = http.createServer().listen(0, "127.0.0.1", () => {
    const p = port(s);
    s.close(() => resolve(p));
  });
});

const intervalMs = Number(extraEnv.INTERVAL_MS ?? 3000);
delete extraEnv.INTERVAL_MS;
const child = spawn(process.execPath, ["--no-maglev", join(ROOT, "pusher/dist/main.js")], {
  env: {
    PATH: process.env.PATH ?? "",
    NODE_OPTIONS: PUSHER_NODE_OPTIONS,
    PROMETHEUS_REMOTE_WRITE_URL: `http://127.0.0.1:${port(receiver)}/api/v1/write`,
    PUSH_INTERVAL: `${intervalMs}ms`,
    SCRAPE_TIMEOUT: `${intervalMs}ms`,
    SCRAPE_TARGETS: `http://127.0.0.1:${port(target)}/metrics`,
    HTTP_PORT: String(httpPort),
    HTTP_ADDRESS: "127.0.0.1",
    POD_NAME: "rss",
    LOG_LEVEL: "warn",
    ...extraEnv,
  },
  stdio: ["ignore", "ignore", "inherit"],
});
const pid = child.pid!;
const statusKiB = (key: string): number => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
};
try {
  await sleep(intervalMs * cycles + 1000);
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const own = samplesOf(text);
  const failures = own
    .filter((s) => s.name.endsWith("_scrape_failures_total") && s.value > 0)
    .map((s) => `${s.labels.reason}=${s.value}`);
  const sent = own.find((s) => s.name.endsWith("_samples_sent_total"))?.value ?? 0;
  const mib = (k: number): number => Number((k / 1024).toFixed(1));
  console.log(
    JSON.stringify({
      shape,
      series: N,
      bodyBytes: body.length,
      env: extraEnv,
      cycles,
      peakRssMiB: mib(statusKiB("VmHWM")),
      rssMiB: mib(statusKiB("VmRSS")),
      scrapeFailures: failures,
      samplesSent: sent,
      pushes,
      pushedBytes,
    }),
  );
} finally {
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  target.close();
  receiver.close();
}
