// The peer harness itself: a peer that cannot start fails loudly with its log, stop() and process exit leave no
// process or directory behind, and the read-back helpers see what was written.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { peersBinDir, spawnPeer, startPrometheus, startVictoriaMetrics } from "./receivers.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it("a peer that exits at start is an error carrying its last log lines", async () => {
  await assert.rejects(startPrometheus({ extraArgs: ["--no-such-flag"] }), (e: Error) => {
    assert.match(e.message, /prometheus .* exited before it was ready/);
    assert.match(e.message, /no-such-flag/, "the log says why");
    return true;
  });
});

it("a peer that never becomes ready times out with a clear message", async () => {
  const bin = path.join(await peersBinDir(), "victoria-metrics");
  await assert.rejects(
    spawnPeer({
      name: "vm-wrong-path",
      command: bin,
      readyPath: "/no-such-path",
      readyTimeoutMs: 1500,
      args: ({ port, dir }) => [`-storageDataPath=${dir}/d`, `-httpListenAddr=127.0.0.1:${port}`],
    }),
    /vm-wrong-path was not ready at http:\/\/127\.0\.0\.1:\d+\/no-such-path within 1500 ms; last log lines:\n.*victoria/is,
  );
});

it("stop() kills the process and removes its directory; both receivers answer queries", async () => {
  const [p, v] = await Promise.all([startPrometheus(), startVictoriaMetrics()]);
  try {
    assert.notEqual(p.port, v.port);
    assert.match(p.remoteWriteUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/write$/);
    assert.deepEqual(await p.query("vector(1)").then((r) => r.map((x) => x.value)), [1]);
    assert.deepEqual(await v.query("vector(2)").then((r) => r.map((x) => x.value)), [2]);
  } finally {
    await Promise.all([p.stop(), v.stop()]);
  }
  for (const peer of [p, v]) {
    assert.equal(alive(peer.pid), false, `${peer.name} pid ${peer.pid} is gone`);
    assert.equal(existsSync(peer.dir), false, `${peer.dir} removed`);
  }
  await p.stop(); // idempotent
});

it("peers are killed and their directories removed when the process exits without stop()", async () => {
  const script = `
    import { startVictoriaMetrics } from ${JSON.stringify(path.join(HERE, "receivers.ts"))};
    const v = await startVictoriaMetrics();
    console.log(JSON.stringify({ pid: v.pid, dir: v.dir }));
    process.exit(3);
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 3, r.stderr);
  const { pid, dir } = JSON.parse(r.stdout.trim()) as { pid: number; dir: string };
  // SIGKILLed at exit; the orphan is reaped by init shortly after.
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(pid), false, `victoria-metrics pid ${pid} killed on exit`);
  assert.equal(existsSync(dir), false, `${dir} removed on exit`);
});
