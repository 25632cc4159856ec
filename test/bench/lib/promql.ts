// Reading figures back from the receiving Prometheus over its HTTP API: the samples it stored are the ones delivered.

interface VectorResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

/** An instant query returning one number (the first element of the vector), or 0 for an empty vector. */
export async function scalarQuery(baseUrl: string, promql: string, atMs?: number): Promise<number> {
  const params = new URLSearchParams({ query: promql });
  if (atMs !== undefined) params.set("time", (atMs / 1000).toFixed(3));
  const res = await fetch(`${baseUrl.replace(/\/$/, "")}/api/v1/query?${params.toString()}`, {
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as VectorResult;
  if (body.status !== "success" || !body.data)
    throw new Error(`query ${promql} failed: ${res.status} ${body.error ?? ""}`);
  const first = body.data.result[0];
  return first ? Number(first.value[1]) : 0;
}

export function selector(matchers: Record<string, string>): string {
  const parts = Object.entries(matchers)
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `${k}="${v}"`);
  return `{${parts.join(",")}}`;
}

/** Metric names present for `sel`. */
export async function metricNames(baseUrl: string, sel: string): Promise<string[]> {
  const params = new URLSearchParams({ "match[]": sel });
  const res = await fetch(`${baseUrl.replace(/\/$/, "")}/api/v1/label/__name__/values?${params.toString()}`, {
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as { status: string; data?: string[]; error?: string };
  if (body.status !== "success" || !body.data)
    throw new Error(`label values for ${sel} failed: ${res.status} ${body.error ?? ""}`);
  return body.data;
}

/** Samples stored for the series matching `sel` with timestamps in (fromMs, toMs]. */
export async function samplesBetween(baseUrl: string, sel: string, fromMs: number, toMs: number): Promise<number> {
  const range = Math.max(1, Math.round(toMs - fromMs));
  // count_over_time drops the metric name, so over several names Prometheus 2.42 fails with "vector cannot contain
  // metrics with the same labelset": count name by name.
  let total = 0;
  for (const name of await metricNames(baseUrl, sel)) {
    const named = sel.replace(/^\{/, `{__name__="${name}",`).replace(",}", "}");
    total += await scalarQuery(baseUrl, `sum(count_over_time(${named}[${range}ms]))`, toMs);
  }
  return total;
}

/** Series currently present (seen in the last 5 minutes) for `sel`. */
export async function seriesCount(baseUrl: string, sel: string): Promise<number> {
  return scalarQuery(baseUrl, `count(${sel})`);
}
