// Holds the run's shared node bed (see shared.ts): `node --conditions=source supervisor.ts <dir>`.
// Writes <dir>/supervisor.pid, starts the bed, writes <dir>/bed.json, and stops the bed on SIGTERM/SIGINT or when
// the process that owns the run (METRICS_PUSHER_NODE_BED_OWNER, scripts/run-tests.ts) is gone.
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startNodeBed, type NodeBed } from "./bed.ts";
import { infoOf } from "./shared.ts";

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write("usage: supervisor.ts <dir>\n");
  process.exit(2);
}
const pidFile = join(dir, "supervisor.pid");
const infoFile = join(dir, "bed.json");
writeFileSync(pidFile, `${process.pid}\n`);
const owner = Number(process.env.METRICS_PUSHER_NODE_BED_OWNER ?? 0);
const stamp = (): string => new Date().toISOString().slice(11, 19);
// The daemons' own output goes to <state dir>/<name>.log; this log keeps the bed's steps and failures.
const log = (line: string): void => {
  if (/^\[(node|build|harness|cleanup|supervisor)\]/.test(line) || line.includes("exited unexpectedly")) {
    process.stdout.write(`${stamp()} ${line}\n`);
  }
};

let bed: NodeBed | undefined;
let stopping = false;
async function shutdown(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log(`[supervisor] ${reason}: stopping the bed`);
  rmSync(infoFile, { force: true });
  let code = 0;
  try {
    await bed?.stop();
  } catch (err) {
    log(`[supervisor] ${(err as Error).message}`);
    code = 1;
  }
  rmSync(pidFile, { force: true });
  process.exit(code);
}
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => void shutdown(signal));
if (owner > 0) {
  setInterval(() => {
    try {
      process.kill(owner, 0);
    } catch {
      void shutdown(`the run's owner (pid ${owner}) is gone`);
    }
  }, 2000);
}

try {
  bed = await startNodeBed({ log });
} catch (err) {
  log(`[supervisor] ${(err as Error).message}`);
  rmSync(pidFile, { force: true });
  process.exit(1);
}
if (stopping) await new Promise(() => {});
writeFileSync(infoFile + ".tmp", JSON.stringify(infoOf(bed), null, 2));
// Renamed into place so a reader never sees half a file.
renameSync(infoFile + ".tmp", infoFile);
process.stderr.write(`node bed: shared bed up in ${bed.startupSeconds}s (warm start figure)\n`);
log(`[supervisor] bed up in ${bed.startupSeconds}s`);
setInterval(() => {}, 1 << 30);
