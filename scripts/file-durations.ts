// A second reporter for node's test runner (beside spec): the wall time of each test file, written as JSON to its
// destination for scripts/run-tests.ts to print. The runner runs one file at a time (--test-concurrency=1), so a
// file's time is from the previous file's last event to its own last one: process start, imports and hooks included.
import { relative } from "node:path";

interface Event {
  type: string;
  data?: { file?: string };
}

export default async function* fileDurations(source: AsyncIterable<Event>): AsyncGenerator<string> {
  let previous = performance.now();
  const order: string[] = [];
  const last = new Map<string, number>();
  for await (const event of source) {
    const file = event.data?.file;
    if (file === undefined) continue;
    const name = relative(process.cwd(), file);
    if (!last.has(name)) order.push(name);
    last.set(name, performance.now());
  }
  const files = order
    .map((name) => ({ name, end: last.get(name)! }))
    .sort((a, b) => a.end - b.end)
    .map(({ name, end }) => {
      const ms = Math.round(end - previous);
      previous = end;
      return { file: name, ms };
    });
  yield JSON.stringify(files) + "\n";
}
