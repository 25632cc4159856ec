// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function as a share of busy time, the hot spots to
// act on.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
}

export interface HotSpot {
  fn: string;
  where: string;
  selfPct: number;
}

export function hotSpots(path: string, top = 12): HotSpot[] {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const hits = new Map<string, { fn: string; where: string; n: number }>();
  let total = 0;
  for (const node of profile.nodes) {
    const n = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    // Idle time is waiting, not work: percentages are of the time the process was busy.
    if (n === 0 || functionName === "(idle)") continue;
    const where = url
      ? `${url.replace(/^file:\/\/.*?\/(node_modules|pusher|operator|test)\//, "$1/")}:${lineNumber + 1}`
      : "";
    const key = `${functionName}@${where}`;
    const entry = hits.get(key) ?? { fn: functionName || "(anonymous)", where, n: 0 };
    entry.n += n;
    hits.set(key, entry);
    total += n;
  }
  return [...hits.values()]
    .sort((a, b) => b.n - a.n)
    .slice(0, top)
    .map((h) => ({ fn: h.fn, where: h.where, selfPct: (100 * h.n) / total }));
}

export function formatHotSpots(spots: readonly HotSpot[]): string {
  return spots.map((s) => `  ${s.selfPct.toFixed(1).padStart(5)}%  ${s.fn}  ${s.where}`).join("\n");
}
