// Reading a process's /metrics in tests with the product's own exposition parser (pusher/src/collect/exposition.ts),
// so the tests read metrics the way the pusher reads a scrape target.
import { parseExposition } from "../../pusher/src/collect/exposition.ts";

export interface ExpoSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample of an exposition text, labels as an object. Throws on malformed text. */
export function samplesOf(text: string): ExpoSample[] {
  return parseExposition(text).samples.map((s) => {
    const labels: Record<string, string> = {};
    for (let i = 0; i < s.labels.length; i += 2) labels[s.labels[i]!] = s.labels[i + 1]!;
    return { name: s.name, labels, value: s.value };
  });
}

/** Sum of the samples of `name` whose labels include `labels`; 0 when none. */
export function sumOf(samples: readonly ExpoSample[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples)
    if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}
