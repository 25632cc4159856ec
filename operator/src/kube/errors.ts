// One reading of the errors @kubernetes/client-node throws: ApiException carries the HTTP status in `code`; errors
// from watches and older paths carry it in `statusCode`. Everything else has neither.

/** The apiserver's HTTP status of a failed call, when it answered at all. */
export function apiStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null | undefined;
  const c = e?.code ?? e?.statusCode;
  return typeof c === "number" ? c : undefined;
}

/**
 * A one-line message for logs and status: ApiException's message holds the whole response body after the first
 * line, which may be kilobytes of JSON.
 */
export function apiMessage(err: unknown): string {
  return err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err);
}
