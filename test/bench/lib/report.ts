// Figures, medians, ratios and the final table. A benchmark returns rows; run.ts prints them.

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export const MiB = 1024 * 1024;

/** Whether a bigger or a smaller figure is better: decides how the ratio is read. */
export const Better = { higher: "higher", lower: "lower" } as const;
export type Better = (typeof Better)[keyof typeof Better];

export interface Row {
  bench: string;
  metric: string;
  unit: string;
  better: Better;
  ours: number;
  /** Peer name and its figure; absent where the goal is absolute (webhook, operator scale). */
  peer?: { name: string; value: number };
  /** Human-readable goal and whether it is met; absent when the row is informative only. */
  goal?: { text: string; met: boolean };
  /** Every run's figure for ours, so the median can be checked. */
  runs?: number[];
}

/** ours / peer for "higher is better", peer / ours for "lower is better": > 1 means ours is better. */
export function advantage(row: Row): number | undefined {
  if (!row.peer) return undefined;
  const { value } = row.peer;
  return row.better === Better.higher ? row.ours / value : value / row.ours;
}

export function fmt(n: number, unit = ""): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const s =
    abs >= 1e6
      ? `${(n / 1e6).toFixed(2)}M`
      : abs >= 100
        ? n.toFixed(0)
        : abs >= 10
          ? n.toFixed(1)
          : abs >= 1
            ? n.toFixed(2)
            : n.toPrecision(3);
  return unit ? `${s} ${unit}` : s;
}

export function formatRow(row: Row): string {
  const parts = [`${row.bench}: ${row.metric} ours ${fmt(row.ours, row.unit)}`];
  if (row.peer) {
    const adv = advantage(row)!;
    parts.push(`${row.peer.name} ${fmt(row.peer.value, row.unit)}`);
    const verdict = Math.abs(adv - 1) < 0.01 ? "equal" : adv >= 1 ? `${fmt(adv)}× better` : `${fmt(1 / adv)}× worse`;
    parts.push(`ours/peer ${fmt(row.ours / row.peer.value)} (${verdict})`);
  }
  if (row.goal) parts.push(`goal ${row.goal.text}: ${row.goal.met ? "met" : "MISSED"}`);
  return parts.join(" | ");
}

export function table(rows: readonly Row[]): string {
  const header = ["benchmark", "metric", "ours", "peer", "peer value", "ours/peer", "goal", "met"];
  const body = rows.map((r) => [
    r.bench,
    r.metric,
    fmt(r.ours, r.unit),
    r.peer?.name ?? "",
    r.peer ? fmt(r.peer.value, r.unit) : "",
    r.peer ? fmt(r.ours / r.peer.value) : "",
    r.goal?.text ?? "",
    r.goal ? (r.goal.met ? "yes" : "NO") : "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
