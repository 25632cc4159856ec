// A second reporter for node's test runner (beside spec): the wall time of each test file, and every failed test
// with the first lines of its error, written as JSON to its destination for scripts/run-tests.ts to print after the
// spec output, where the tail of a CI log shows them. The runner runs one file at a time (--test-concurrency=1), so
// a file's time is from the previous file's last event to its own last one: process start, imports and hooks
// included.
import { relative } from "node:path";

interface Event {
  type: string;
  data?: { file?: string; name?: string; details?: { error?: unknown } };
}

export interface Failure {
  file: string;
  name: string;
  error: string;
}

/** The message a failed test's error carries: the runner wraps a test's own error as `cause`. */
function message(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
  const text = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  return text.split("\n").slice(0, 4).join("\n").slice(0, 600);
}

export default async function* fileDurations(source: AsyncIterable<Event>): AsyncGenerator<string> {
  let previous = performance.now();
  const order: string[] = [];
  const last = new Map<string, number>();
  const failures: Failure[] = [];
  for await (const event of source) {
    const file = event.data?.file;
    if (file === undefined) continue;
    const name = relative(process.cwd(), file);
    if (!last.has(name)) order.push(name);
    last.set(name, performance.now());
    const error = event.data?.details?.error;
    // A suite whose tests failed fails too, with no error of its own: its tests are listed already.
    if (event.type === "test:fail" && (error as { failureType?: string })?.failureType !== "subtestsFailed") {
      failures.push({ file: name, name: event.data?.name ?? "?", error: message(error) });
    }
  }
  const files = order
    .map((name) => ({ name, end: last.get(name)! }))
    .sort((a, b) => a.end - b.end)
    .map(({ name, end }) => {
      const ms = Math.round(end - previous);
      previous = end;
      return { file: name, ms };
    });
  yield JSON.stringify({ files, failures }) + "\n";
}
