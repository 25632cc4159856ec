// Idle cost of the pusher: it pushes only its own metrics every second to a local receiver (in this process) for a
// window; RSS is sampled every second from /proc, CPU is utime+stime over the window. Not part of the test suite:
//   node --conditions=source test/pusher/idle-rss.ts [windowSeconds] [-- [NAME=value ...] node flags for the pusher...]
// NAME=value words after `--` go into the pusher's environment (NODE_OPTIONS, UV_THREADPOOL_SIZE); the rest are flags.
// NODE=path runs another node binary (for comparisons only; the project runs Node 24).
// Runs the built pusher (pusher/dist/main.js; `npm run build` first), as the image does.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
const dash = args.indexOf("--");
const windowS = Number(args[0] ?? 60);
const after = dash >= 0 ? args.slice(dash + 1) : [];
const isEnv = (a: string): boolean => /^[A-Z][A-Z0-9_]*=/.test(a);
const extraEnv = Object.fromEntries(
  after.filter(isEnv).map((a) => [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]),
);
const nodeFlags = after.filter((a) => !isEnv(a));
const nodeBin = extraEnv.NODE ?? process.execPath;
delete extraEnv.NODE;
const CLK_TCK = 100; // getconf CLK_TCK on Linux

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime
}
function statusKiB(pid: number, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

let requests = 0;
let bytes = 0;
const server = http.createServer((req, res) => {
  req.on("data", (c: Buffer) => (bytes += c.length));
  req.on("end", () => {
    requests++;
    res.writeHead(204).end();
  });
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const port = (server.address() as AddressInfo).port;

const child = spawn(nodeBin, [...nodeFlags, join(ROOT, "pusher/dist/main.js")], {
  env: {
    PATH: process.env.PATH ?? "",
    PROMETHEUS_REMOTE_WRITE_URL: `http://127.0.0.1:${port}/api/v1/write`,
    PUSH_INTERVAL: "1s",
    POD_NAME: "idle",
    ...extraEnv,
  },
  stdio: ["ignore", "ignore", "inherit"],
});
const pid = child.pid!;
try {
  await sleep(5000); // start-up and first pushes are not idle
  const cpu0 = cpuSeconds(pid);
  const req0 = requests;
  const rss: number[] = [];
  for (let i = 0; i < windowS; i++) {
    await sleep(1000);
    rss.push(statusKiB(pid, "VmRSS"));
  }
  const cpu = cpuSeconds(pid) - cpu0;
  const sorted = [...rss].sort((a, b) => a - b);
  const mib = (k: number): string => (k / 1024).toFixed(1);
  console.log(
    JSON.stringify({
      nodeFlags,
      env: extraEnv,
      node: nodeBin === process.execPath ? process.version : nodeBin,
      windowS,
      requests: requests - req0,
      avgRequestBytes: Math.round(bytes / requests),
      rssMiB: { min: mib(sorted[0]!), median: mib(sorted[Math.floor(sorted.length / 2)]!), max: mib(sorted.at(-1)!) },
      peakRssMiB: mib(statusKiB(pid, "VmHWM")),
      rssAnonMiB: mib(statusKiB(pid, "RssAnon")),
      rssFileMiB: mib(statusKiB(pid, "RssFile")),
      cpuSeconds: Number(cpu.toFixed(2)),
      cpuPercent: Number(((cpu / windowS) * 100).toFixed(2)),
    }),
  );
} finally {
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  server.close();
}
