// Child processes the tests start die with the test process, also when a test crashes or times out.
import type { ChildProcess } from "node:child_process";

const live = new Set<ChildProcess>();
let installed = false;

/** SIGKILLs `child` when the test process exits, unless it exited first. */
export function killOnExit(child: ChildProcess): void {
  if (!installed) {
    installed = true;
    process.on("exit", () => {
      for (const c of live)
        if (c.pid !== undefined && c.exitCode === null && c.signalCode === null)
          try {
            process.kill(c.pid, "SIGKILL");
          } catch {
            /* gone */
          }
    });
  }
  live.add(child);
  child.once("exit", () => live.delete(child));
}
