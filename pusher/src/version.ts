// The pusher's version, from its package.json (one directory above both src/ and dist/), for the User-Agent.
import { readFileSync } from "node:fs";

let cached: string | undefined;

export function version(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
        version?: unknown;
      };
      cached = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      cached = "unknown";
    }
  }
  return cached;
}

export function userAgent(): string {
  return `metrics-pusher/${version()}`;
}
