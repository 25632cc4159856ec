// Undoes a node bed from its host record: `node --conditions=source test/node/cleanup.ts <state dir>/host-record.json`.
// The bed's watchdog runs it when the test process dies without cleaning up (SIGKILL); a person may run it too.
import { readFileSync } from "node:fs";
import { cleanupHost, type HostRecord } from "./hoststate.ts";

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write("usage: cleanup.ts <host-record.json>\n");
  process.exit(2);
}
const record = JSON.parse(readFileSync(file, "utf8")) as HostRecord;
// Wait for the owner to be gone: it may still be running its own stop.
const problems = cleanupHost(record, (line) => process.stderr.write(line + "\n"));
for (const p of problems) process.stderr.write(`node bed cleanup: ${p}\n`);
process.exit(problems.length === 0 ? 0 : 1);
