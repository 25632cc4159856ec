// What a child process (the pusher, the operator) printed: its JSON log lines parsed, anything else kept raw.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface ChildOutput<L> {
  readonly logs: L[];
  /** Lines that were not JSON (stderr, crashes); the newest `maxRaw` at most. */
  readonly raw: string[];
}

export function collectOutput<L>(child: ChildProcess, maxRaw = 2000): ChildOutput<L> {
  const out: ChildOutput<L> = { logs: [], raw: [] };
  for (const [stream, json] of [
    [child.stdout, true],
    [child.stderr, false],
  ] as const) {
    if (!stream) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
      if (json) {
        try {
          out.logs.push(JSON.parse(line) as L);
          return;
        } catch {
          /* not JSON */
        }
      }
      out.raw.push(line);
      if (out.raw.length > maxRaw) out.raw.splice(0, out.raw.length - maxRaw / 2);
    });
  }
  return out;
}
