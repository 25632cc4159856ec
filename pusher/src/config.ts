// The pusher's environment contract: names, defaults and meaning of every variable, and parse(env) → frozen Config.
// The operator imports this module to build the sidecar's env, so it must have no side effects on import.
import { validateHeaderValue } from "./node-http.ts";
import { isIP } from "node:net";
import { redactUrl } from "./redact.ts";

/**
 * Node settings the pusher runs with by default, chosen for its idle memory at no forwarding CPU (docs/benchmarks.md,
 * "Idle sidecar"): `--v8-pool-size=1`, one V8 background thread instead of four (a sidecar has a fraction of a core).
 * NODE_OPTIONS accepts only some flags; this part is in both the image's ENV and the environment the webhook renders,
 * so that a pusher image of the user's own gets it too. `--no-maglev`, which NODE_OPTIONS refuses, is on the image's
 * ENTRYPOINT (Dockerfile.pusher).
 */
export const PUSHER_NODE_OPTIONS = "--v8-pool-size=1";

export type EnvSpec = {
  readonly default?: string;
  readonly required: boolean;
  readonly description: string;
  /** The value may hold a credential: never log it; the operator should let users take it from a Secret. */
  readonly secret?: boolean;
  /**
   * The value's grammar, with the bounds parse enforces (milliseconds for a duration, bytes for a size). These fields
   * are the one place the bounds are written: parse reads them, and the operator's CRD generator turns them into
   * OpenAPI minimum/maximum and CEL rules, so a bound changed here reaches the CRD by regeneration.
   */
  readonly kind?: "duration" | "integer" | "bytes";
  readonly min?: number;
  readonly max?: number;
};

/**
 * Defaults and bounds of the scrape limits, which the operator renders from spec.scrape.sampleLimit / labelLimit.
 * The defaults are measured (test/pusher/scrape-rss.ts, docs/pusher.md#resource-use) to keep a scrape at the limit
 * within the sidecar's default memory limit of 192Mi.
 */
export const SCRAPE_LIMITS = {
  sampleLimit: { env: "SCRAPE_SAMPLE_LIMIT", default: 4_000, min: 0, max: 100_000_000 },
  labelLimit: { env: "SCRAPE_LABEL_LIMIT", default: 20, min: 0, max: 10_000 },
  // Mimir's and Cortex's default max_label_value_length: a longer value is refused there at ingestion anyway.
  labelValueLengthLimit: { env: "SCRAPE_LABEL_VALUE_LENGTH_LIMIT", default: 2_048, min: 0, max: 16 * 1024 ** 2 },
} as const;

/**
 * SCRAPE_MAX_BYTES' default (spec.scrape.bodySizeLimit). Within the sample and label limits, a body of long label
 * values is what costs most per scrape: at 16 MiB (the default until issue 12), 4,000 series of two 2,048-character
 * values peaked at 277 MiB; at 4 MiB the worst such body peaks at about 140 MiB (docs/pusher.md#resource-use). 4 MiB
 * at the default sample limit is 1 KiB a sample, eight times a typical histogram bucket line.
 */
export const SCRAPE_MAX_BYTES_DEFAULT = 4 * 1024 ** 2;

/**
 * The largest duration any variable accepts: Node's timers hold a signed 32-bit count of milliseconds, and a longer
 * delay fires after 1 ms instead (setInterval then runs flat out) or throws (AbortSignal.timeout). It is the `max` of
 * every duration in ENV, from which the operator's CRD derives its rules: what the apiserver admits the pusher accepts.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;
/** MAX_DURATION_MS as a Go duration: "596h31m23.647s" (for CEL: `duration(self) <= duration('596h31m23.647s')`). */
export const MAX_DURATION = "596h31m23.647s";

/** Every variable the pusher reads, in documentation order. */
export const ENV = {
  PROMETHEUS_REMOTE_WRITE_URL: {
    required: true,
    description:
      "Remote-Write 1.0 receiver URL, http or https (e.g. http://prometheus:9090/api/v1/write). Credentials in the URL are used for basic auth and never logged.",
  },
  PUSH_INTERVAL: {
    default: "30s",
    required: false,
    description:
      "Collection and push period, a Go-style duration (500ms, 30s, 1m30s); > 0 and at most 596h31m23.647s. Targets are scraped at the same period.",
    kind: "duration",
    min: 1,
    max: MAX_DURATION_MS,
  },
  TIMEOUT: {
    default: "30s",
    required: false,
    description:
      "Timeout of one Remote-Write HTTP request (connect, send and answer), a Go-style duration; > 0 and at most 596h31m23.647s.",
    kind: "duration",
    min: 1,
    max: MAX_DURATION_MS,
  },
  LOG_LEVEL: { default: "info", required: false, description: "Log level: debug, info, warn or error." },
  NAMESPACE: {
    default: "knative-lambda",
    required: false,
    description: "Kubernetes namespace; the `namespace` label on every series (set by the downward API when injected).",
  },
  POD_NAME: {
    required: false,
    description:
      "Pod name (downward API); the `pod` label on every series and the `instance` of the pusher's own series (else the hostname).",
  },
  NODE_NAME: { required: false, description: "Node name (downward API); logged at start-up." },
  EXTERNAL_LABELS: {
    required: false,
    description:
      "Labels added to every series, `k=v,k2=v2` (a value may be double-quoted to hold `,` or `=`). They never override job, instance, namespace or pod.",
  },
  BEARER_TOKEN_FILE: {
    required: false,
    description:
      "File holding a bearer token sent as `Authorization: Bearer …`; re-read when it changes (Secret rotation).",
  },
  BASIC_AUTH_USERNAME: { required: false, description: "Basic-auth user name (with BASIC_AUTH_PASSWORD_FILE)." },
  BASIC_AUTH_USERNAME_FILE: {
    required: false,
    description: "File holding the basic-auth user name, instead of BASIC_AUTH_USERNAME; re-read when it changes.",
  },
  BASIC_AUTH_PASSWORD_FILE: {
    required: false,
    description:
      "File holding the basic-auth password; re-read when it changes. A missing file is logged and retried, never fatal.",
  },
  REMOTE_WRITE_HEADERS: {
    required: false,
    secret: true,
    description:
      'Extra request headers, a JSON object (`{"X-Scope-OrgID":"team-a"}`) or `Name=value,Name2=value2`. The protocol\'s reserved headers (Content-Encoding, Content-Type, X-Prometheus-Remote-Write-Version, User-Agent, Authorization, Host, Content-Length) cannot be set.',
  },
  TLS_CA_FILE: {
    required: false,
    description: "PEM file of CA certificates trusted for an https receiver (added to the system roots).",
  },
  TLS_INSECURE_SKIP_VERIFY: {
    default: "false",
    required: false,
    description: "true to skip verification of the receiver's TLS certificate (testing only).",
  },
  BUFFER_MAX_SAMPLES: {
    default: "100000",
    required: false,
    description:
      "Samples kept in memory while the receiver is unreachable; when full the oldest are dropped and counted.",
    kind: "integer",
    min: 1,
    max: 100_000_000,
  },
  BUFFER_DIR: {
    required: false,
    description:
      "Directory (e.g. an emptyDir) where buffered samples are also written, so that they survive a restart of the pusher; unset = memory only.",
  },
  BUFFER_MAX_BYTES: {
    default: "256MiB",
    required: false,
    description:
      "Largest size of BUFFER_DIR's files (bytes; Ki/Mi/Gi suffixes allowed); beyond it the oldest samples no longer survive a restart.",
    kind: "bytes",
    min: 64 * 1024,
    max: Number.MAX_SAFE_INTEGER,
  },
  MAX_SAMPLES_PER_SEND: {
    default: "2000",
    required: false,
    description: "Most samples in one Remote-Write request.",
    kind: "integer",
    min: 1,
    max: 1_000_000,
  },
  SHUTDOWN_TIMEOUT: {
    default: "10s",
    required: false,
    description:
      "On SIGTERM/SIGINT, how long to try to deliver what is buffered before exiting (loss is logged with a count); at most 596h31m23.647s.",
    kind: "duration",
    min: 0,
    max: MAX_DURATION_MS,
  },
  STALE_MARKERS_ON_SHUTDOWN: {
    default: "false",
    required: false,
    description:
      "true to mark every series stale at SIGTERM/SIGINT, ending them at once on the receiver (the operator sets it in the sidecar, where the pod goes away). false, as Prometheus' sender does: the series carry on after a restart, no markers.",
  },
  HTTP_PORT: {
    default: "0",
    required: false,
    description: "Port of the HTTP server with /health, /ready and /metrics; 0 = no server (sidecar mode).",
    kind: "integer",
    min: 0,
    max: 65535,
  },
  HTTP_ADDRESS: {
    required: false,
    description:
      "Address the HTTP server listens on (e.g. 127.0.0.1); unset = every interface, which kubelet probes need.",
  },
  METRIC_PREFIX: {
    default: "knative_lambda_metric_pusher",
    required: false,
    description: "Prefix of the pusher's own metric names.",
  },
  SCRAPE_TARGETS: {
    required: false,
    description:
      'http(s) URLs of Prometheus exposition endpoints scraped every PUSH_INTERVAL and forwarded: comma-separated (http://127.0.0.1:8080/metrics,http://127.0.0.1:9100/metrics) or, when the value starts with `[`, a JSON array of strings (`["http://127.0.0.1:8080/metrics"]`, what the operator renders). A path holds no comma.',
  },
  SCRAPE_JOB: { default: "builder", required: false, description: "The `job` label of scraped series." },
  SCRAPE_TIMEOUT: {
    default: "10s",
    required: false,
    description:
      "Timeout of one scrape, a Go-style duration; at most PUSH_INTERVAL (when unset: the smaller of 10s and PUSH_INTERVAL) and at most 596h31m23.647s.",
    kind: "duration",
    min: 1,
    max: MAX_DURATION_MS,
  },
  SCRAPE_SAMPLE_LIMIT: {
    default: String(SCRAPE_LIMITS.sampleLimit.default),
    required: false,
    description:
      "Most samples accepted from one scrape after SCRAPE_DROP (Prometheus' sample_limit); a target exposing more fails that scrape (up 0) as soon as the parse reaches the sample past it. Bounds the scrape's memory. 0 = no limit.",
    kind: "integer",
    min: SCRAPE_LIMITS.sampleLimit.min,
    max: SCRAPE_LIMITS.sampleLimit.max,
  },
  SCRAPE_LABEL_LIMIT: {
    default: String(SCRAPE_LIMITS.labelLimit.default),
    required: false,
    description:
      "Most labels of one scraped series, its name and the target's labels included (Prometheus' label_limit); a series with more fails that scrape (up 0), and a longer label set is refused while it is read. 0 = no limit.",
    kind: "integer",
    min: SCRAPE_LIMITS.labelLimit.min,
    max: SCRAPE_LIMITS.labelLimit.max,
  },
  SCRAPE_LABEL_VALUE_LENGTH_LIMIT: {
    default: String(SCRAPE_LIMITS.labelValueLengthLimit.default),
    required: false,
    description:
      "Longest label value of a scraped series, in characters (Prometheus' label_value_length_limit); a longer one fails that scrape (up 0) as soon as it is read, and so does a line longer than SCRAPE_LABEL_LIMIT such values can fill. Bounds the scrape's memory per series. 0 = no limit.",
    kind: "integer",
    min: SCRAPE_LIMITS.labelValueLengthLimit.min,
    max: SCRAPE_LIMITS.labelValueLengthLimit.max,
  },
  SCRAPE_MAX_BYTES: {
    default: formatBytes(SCRAPE_MAX_BYTES_DEFAULT),
    required: false,
    description:
      "Largest exposition body read from a target, after gzip (Prometheus' body_size_limit; bytes, Ki/Mi/Gi or KiB/MiB/GiB suffixes allowed); a larger one fails the scrape (up 0) as soon as the reading passes it. With the sample and label limits it bounds the scrape's memory.",
    kind: "bytes",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
  },
  SCRAPE_DROP: {
    required: false,
    description:
      "Regular expression (anchored, RE2-like JavaScript syntax) of metric names not forwarded from targets.",
  },
} as const satisfies Record<string, EnvSpec>;

export type EnvName = keyof typeof ENV;

/** The variables that hold a duration, each bounded by MAX_DURATION_MS. */
export const DURATION_VARIABLES = Object.freeze([
  "PUSH_INTERVAL",
  "TIMEOUT",
  "SHUTDOWN_TIMEOUT",
  "SCRAPE_TIMEOUT",
] as const satisfies readonly EnvName[]);

export const DEFAULT_METRIC_PREFIX = "knative_lambda_metric_pusher";

/** Lower-case header names the user may not set: the protocol's own and those HTTP computes. */
export const RESERVED_HEADERS: readonly string[] = Object.freeze([
  "content-encoding",
  "content-type",
  "x-prometheus-remote-write-version",
  "user-agent",
  "authorization",
  "host",
  "content-length",
]);

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly remoteWriteUrl: string;
  readonly pushIntervalMs: number;
  readonly timeoutMs: number;
  readonly logLevel: LogLevel;
  readonly namespace: string;
  readonly podName: string | undefined;
  readonly nodeName: string | undefined;
  readonly externalLabels: Readonly<Record<string, string>>;
  readonly bearerTokenFile: string | undefined;
  readonly basicAuthUsername: string | undefined;
  readonly basicAuthUsernameFile: string | undefined;
  readonly basicAuthPasswordFile: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly tlsCaFile: string | undefined;
  readonly tlsInsecureSkipVerify: boolean;
  readonly bufferMaxSamples: number;
  readonly maxSamplesPerSend: number;
  readonly bufferDir: string | undefined;
  readonly bufferMaxBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly staleMarkersOnShutdown: boolean;
  readonly httpPort: number;
  readonly httpAddress: string | undefined;
  readonly metricPrefix: string;
  readonly scrapeTargets: readonly string[];
  readonly scrapeJob: string;
  readonly scrapeTimeoutMs: number;
  readonly scrapeSampleLimit: number;
  /** 0 = no limit. */
  readonly scrapeLabelLimit: number;
  readonly scrapeLabelValueLengthLimit: number;
  readonly scrapeMaxBytes: number;
  /** Anchored regular expression of metric names to drop from scrapes. */
  readonly scrapeDrop: RegExp | undefined;
}

export interface ConfigProblem {
  readonly variable: string;
  readonly value: string | undefined;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.message}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = Object.freeze([...problems]);
  }
}

// ---- durations (Go's time.ParseDuration / Duration.String, in milliseconds) ----

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `0`) into milliseconds; throws on bad syntax. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "") throw new Error("empty duration");
  let rest = s;
  let sign = 1;
  if (rest[0] === "-" || rest[0] === "+") {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw new Error(`invalid duration "${text}"`);
  const part = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  let total = 0;
  while (rest !== "") {
    const m = part.exec(rest);
    if (!m) {
      const hasUnit = /^(\d+(?:\.\d*)?|\.\d+)/.exec(rest);
      throw new Error(
        hasUnit && hasUnit[0] === rest ? `missing unit in duration "${text}"` : `invalid duration "${text}"`,
      );
    }
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

/** Formats milliseconds the way Go's Duration.String does: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`not a finite duration: ${ms}`);
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  // Work in integer nanoseconds so that fractions print exactly as Go does.
  let ns = BigInt(Math.round(Math.abs(ms) * 1e6));
  if (ns < 1_000_000_000n) {
    if (ns < 1000n) return `${sign}${ns}ns`;
    if (ns < 1_000_000n) return `${sign}${fraction(ns, 1000n)}µs`;
    return `${sign}${fraction(ns, 1_000_000n)}ms`;
  }
  const h = ns / 3_600_000_000_000n;
  ns -= h * 3_600_000_000_000n;
  const m = ns / 60_000_000_000n;
  ns -= m * 60_000_000_000n;
  const secs = `${fraction(ns, 1_000_000_000n)}s`;
  if (h > 0n) return `${sign}${h}h${m}m${secs}`;
  if (m > 0n) return `${sign}${m}m${secs}`;
  return `${sign}${secs}`;
}

function fraction(value: bigint, unit: bigint): string {
  const whole = value / unit;
  const frac = value % unit;
  if (frac === 0n) return whole.toString();
  const digits = unit.toString().length - 1;
  return `${whole}.${frac.toString().padStart(digits, "0").replace(/0+$/, "")}`;
}

// ---- labels and headers ----

/**
 * The grammars parse checks, as regular-expression sources the operator's CRD reuses verbatim (OpenAPI `pattern`, CEL
 * `matches`). Each is written so that JavaScript and RE2, the apiserver's engine, read it alike: character classes
 * and anchors only, no look-around, no back-references.
 */
export const PATTERNS = {
  labelName: "^[a-zA-Z_][a-zA-Z0-9_]*$",
  metricName: "^[a-zA-Z_:][a-zA-Z0-9_:]*$",
  /** RFC 9110 token. */
  headerName: "^[-!#$%&'*+.^_`|~0-9A-Za-z]+$",
  /** The header values Node's HTTP client sends (tab, visible ASCII, space, Latin-1), for the CRD: parse asks Node
   * itself (unsendableHeaderValue), and config.test.ts checks that the two agree on every character up to U+FFFF. */
  headerValue: "^[\\t\\x20-\\x7e\\x80-\\xff]*$",
  /** The path of a scrape target: RFC 3986 path characters, then an optional query of visible ASCII; never a comma
   * (it would read as a second target in SCRAPE_TARGETS' comma form), a backslash or a #fragment. */
  scrapePath: "^/[-A-Za-z0-9._~!$&'()*+;=:@%/]*([?][\\x21\\x22\\x24-\\x2b\\x2d-\\x5b\\x5d-\\x7e]*)?$",
} as const;

/** Label names starting with this are reserved for Prometheus' own use. */
export const RESERVED_LABEL_PREFIX = "__";

/** The units of a Go duration, longest first (the order a regular-expression alternation needs). */
export const DURATION_UNITS: readonly string[] = Object.freeze(["ns", "us", "µs", "μs", "ms", "s", "m", "h"]);

const LABEL_NAME = new RegExp(PATTERNS.labelName);
const METRIC_NAME = new RegExp(PATTERNS.metricName);
const HEADER_NAME = new RegExp(PATTERNS.headerName);
const SCRAPE_PATH = new RegExp(PATTERNS.scrapePath);

/**
 * Why Node's HTTP client would refuse to send this header value (it throws from http.request), or undefined when it
 * can be sent. Node's own check, not a copy of it: line breaks, other control characters but tab, and characters
 * beyond Latin-1 (`t€am`) are refused. The message never holds the value (it may be a secret).
 */
export function unsendableHeaderValue(name: string, value: string): string | undefined {
  try {
    validateHeaderValue(name, value);
    return undefined;
  } catch {
    return "value holds a character HTTP cannot send (a line break, a control character, or one beyond Latin-1 such as €)";
  }
}

/** The Authorization value for a bearer token, as the client sends it. */
export function bearerAuthorization(token: string): string {
  return `Bearer ${token}`;
}

/**
 * Credential files whose content the client could never send, for the check at start (exit 2, naming the variable).
 * `read` returns the trimmed content, or undefined when the file cannot be read: a missing file is not a problem at
 * start (the Secret may come later; requests wait and retry). Basic-auth files are sent base64-encoded, so any content
 * can be sent and none is refused here.
 */
export function credentialFileProblems(
  config: Pick<Config, "bearerTokenFile">,
  read: (path: string) => string | undefined,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.bearerTokenFile !== undefined) {
    const token = read(config.bearerTokenFile);
    const why = token === undefined ? undefined : unsendableHeaderValue("Authorization", bearerAuthorization(token));
    if (why !== undefined) {
      problems.push({
        variable: "BEARER_TOKEN_FILE",
        value: config.bearerTokenFile,
        message: `BEARER_TOKEN_FILE=${JSON.stringify(config.bearerTokenFile)}: the file's ${why.replace(/^value/, "content")}`,
      });
    }
  }
  return problems;
}

/** Formats labels for EXTERNAL_LABELS: `k=v,k2=v2`, quoting values that need it. Inverse of the parser. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${/^[^,="\\\s]*$/.test(v) && v !== "" ? v : JSON.stringify(v)}`)
    .join(",");
}

/** Formats REMOTE_WRITE_HEADERS as a JSON object string (the unambiguous form the parser accepts). */
export function formatHeaders(headers: Readonly<Record<string, string>>): string {
  return JSON.stringify(headers);
}

/** Formats SCRAPE_TARGETS as a JSON array: a URL holding a comma stays one target. */
export function formatTargets(urls: readonly string[]): string {
  return JSON.stringify(urls);
}

/** SCRAPE_TARGETS: a JSON array of strings when the value starts with `[`, else the comma-separated form. */
function splitTargets(text: string): unknown[] {
  if (text.startsWith("[")) {
    const v: unknown = JSON.parse(text);
    if (!Array.isArray(v)) throw new Error("not a JSON array");
    return v as unknown[];
  }
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** 65536 → "64KiB"; sizes that are not a whole number of KiB/MiB/GiB in bytes. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return n === 1 ? "1 byte" : `${n} bytes`;
}

/** Splits `k=v,k2="v,2"` into pairs; a double-quoted value is a JSON string. Throws with a reason. */
function splitPairs(text: string): [string, string][] {
  const pairs: [string, string][] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && /\s/.test(text[i]!)) i++;
    if (i >= n) break;
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`"${text.slice(i)}" is not name=value`);
    const name = text.slice(i, eq).trim();
    if (name.includes(",")) throw new Error(`"${name}" is not name=value`);
    i = eq + 1;
    while (i < n && text[i] === " ") i++;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (j >= n) throw new Error(`unterminated quoted value for "${name}"`);
      try {
        value = JSON.parse(text.slice(i, j + 1)) as string;
      } catch {
        throw new Error(`bad quoted value for "${name}"`);
      }
      i = j + 1;
      while (i < n && /\s/.test(text[i]!)) i++;
      if (i < n && text[i] !== ",") throw new Error(`unexpected text after the quoted value of "${name}"`);
    } else {
      const comma = text.indexOf(",", i);
      const end = comma < 0 ? n : comma;
      value = text.slice(i, end).trim();
      i = end;
    }
    pairs.push([name, value]);
    if (text[i] === ",") i++;
  }
  return pairs;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1000,
  kb: 1000,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Parses a byte size: `1048576`, `512KiB`, `16Mi`, `1GB`. Throws on bad syntax. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid size "${text}"`);
  return Math.floor(Number(m[1]) * unit);
}

// ---- parse ----

/**
 * Reads the environment once. Empty values count as unset (Kubernetes often renders unset fields as ""). Returns a
 * frozen Config or throws one ConfigError listing every problem.
 */
export function parse(env: Readonly<Record<string, string | undefined>>): Config {
  const problems: ConfigProblem[] = [];
  const raw = (name: EnvName): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const shown = (name: EnvName, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const spec: EnvSpec = ENV[name];
    if (spec.secret) return "<redacted>";
    return name === "PROMETHEUS_REMOTE_WRITE_URL" ? redactUrl(value) : value;
  };
  const problem = (name: EnvName, value: string | undefined, why: string): void => {
    const v = shown(name, value);
    problems.push({
      variable: name,
      value: v,
      message: `${name}=${v === undefined ? "(unset)" : JSON.stringify(v)}: ${why}`,
    });
  };
  const withDefault = (name: EnvName): string | undefined => {
    const spec: EnvSpec = ENV[name];
    return raw(name) ?? spec.default;
  };

  // Bounds come from ENV (min/max), the table the operator's CRD is generated from.
  const bounds = (name: EnvName): { min: number; max: number } => {
    const spec: EnvSpec = ENV[name];
    return { min: spec.min ?? 0, max: spec.max ?? Number.POSITIVE_INFINITY };
  };
  const duration = (name: EnvName, fallback: number): number => {
    const text = withDefault(name);
    if (text === undefined) return fallback;
    const { min, max } = bounds(name);
    try {
      const ms = parseDuration(text);
      if (ms < min) {
        problem(name, text, `must be at least ${formatDuration(min)}`);
        return fallback;
      }
      if (!(ms <= max)) {
        problem(
          name,
          text,
          `must be at most ${formatDuration(max)}${max === MAX_DURATION_MS ? " (2^31-1 ms, the longest delay Node's timers can wait)" : ""}`,
        );
        return fallback;
      }
      return ms;
    } catch (e) {
      problem(name, text, `${(e as Error).message} (use a Go duration such as 500ms, 30s or 1m30s)`);
      return fallback;
    }
  };
  const integer = (name: EnvName, fallback: number): number => {
    const { min, max } = bounds(name);
    const text = withDefault(name) ?? String(fallback);
    if (!/^\d+$/.test(text)) {
      problem(name, text, `must be a whole number between ${min} and ${max}`);
      return fallback;
    }
    const n = Number(text);
    if (n < min || n > max) {
      problem(name, text, `must be between ${min} and ${max}`);
      return fallback;
    }
    return n;
  };
  const bytes = (name: EnvName, fallback: number, example: string): number => {
    const { min, max } = bounds(name);
    const text = withDefault(name)!;
    try {
      const n = parseBytes(text);
      if (n < min) problem(name, text, `must be at least ${formatBytes(min)}`);
      else if (n > max) problem(name, text, `must be at most ${max} bytes`);
      return n;
    } catch (e) {
      problem(name, text, `${(e as Error).message} (e.g. ${example})`);
      return fallback;
    }
  };
  const file = (name: EnvName): string | undefined => raw(name);
  const bool = (name: EnvName): boolean => {
    const text = withDefault(name)!.toLowerCase();
    if (["true", "1", "yes"].includes(text)) return true;
    if (!["false", "0", "no"].includes(text)) problem(name, text, "must be true or false");
    return false;
  };

  // Remote-Write URL
  let remoteWriteUrl = "";
  const urlText = raw("PROMETHEUS_REMOTE_WRITE_URL");
  if (urlText === undefined) {
    problem(
      "PROMETHEUS_REMOTE_WRITE_URL",
      undefined,
      "is required (the Remote-Write receiver, e.g. http://prometheus:9090/api/v1/write)",
    );
  } else {
    const u = URL.parse(urlText);
    if (!u) problem("PROMETHEUS_REMOTE_WRITE_URL", urlText, "is not a URL");
    else if (u.protocol !== "http:" && u.protocol !== "https:") {
      problem(
        "PROMETHEUS_REMOTE_WRITE_URL",
        urlText,
        `scheme must be http or https, not ${u.protocol.replace(/:$/, "")}`,
      );
    } else remoteWriteUrl = u.toString();
  }

  const pushIntervalMs = duration("PUSH_INTERVAL", 30_000);
  const timeoutMs = duration("TIMEOUT", 30_000);

  let logLevel: LogLevel = "info";
  const levelText = withDefault("LOG_LEVEL")!;
  if ((LOG_LEVELS as readonly string[]).includes(levelText.toLowerCase()))
    logLevel = levelText.toLowerCase() as LogLevel;
  else problem("LOG_LEVEL", levelText, `must be one of ${LOG_LEVELS.join(", ")}`);

  const namespace = withDefault("NAMESPACE")!;
  const podName = raw("POD_NAME");
  const nodeName = raw("NODE_NAME");

  // External labels
  const externalLabels: Record<string, string> = {};
  const extText = raw("EXTERNAL_LABELS");
  if (extText !== undefined) {
    try {
      for (const [k, v] of splitPairs(extText)) {
        if (!LABEL_NAME.test(k))
          problem("EXTERNAL_LABELS", extText, `"${k}" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)`);
        else if (k.startsWith(RESERVED_LABEL_PREFIX))
          problem(
            "EXTERNAL_LABELS",
            extText,
            `label "${k}": names starting with ${RESERVED_LABEL_PREFIX} are reserved`,
          );
        else if (v === "") problem("EXTERNAL_LABELS", extText, `label "${k}" has an empty value`);
        else if (Object.hasOwn(externalLabels, k)) problem("EXTERNAL_LABELS", extText, `label "${k}" is repeated`);
        else externalLabels[k] = v;
      }
    } catch (e) {
      problem("EXTERNAL_LABELS", extText, `${(e as Error).message} (expected k=v,k2=v2)`);
    }
  }

  // Credentials: file paths only, so that rotation works and no secret sits in the environment.
  const bearerTokenFile = file("BEARER_TOKEN_FILE");
  const basicAuthUsername = raw("BASIC_AUTH_USERNAME");
  const basicAuthUsernameFile = file("BASIC_AUTH_USERNAME_FILE");
  const basicAuthPasswordFile = file("BASIC_AUTH_PASSWORD_FILE");
  const urlHasUser = urlText !== undefined && !!URL.parse(urlText)?.username;
  if (basicAuthUsername !== undefined && basicAuthUsernameFile !== undefined) {
    problem("BASIC_AUTH_USERNAME_FILE", basicAuthUsernameFile, "cannot be set together with BASIC_AUTH_USERNAME");
  }
  const hasBasic = basicAuthUsername !== undefined || basicAuthUsernameFile !== undefined;
  if (hasBasic && basicAuthPasswordFile === undefined) {
    problem("BASIC_AUTH_PASSWORD_FILE", undefined, "is required when a basic-auth user name is set");
  }
  if (!hasBasic && basicAuthPasswordFile !== undefined) {
    problem("BASIC_AUTH_PASSWORD_FILE", basicAuthPasswordFile, "needs BASIC_AUTH_USERNAME or BASIC_AUTH_USERNAME_FILE");
  }
  if (bearerTokenFile !== undefined && (hasBasic || basicAuthPasswordFile !== undefined)) {
    problem(
      "BEARER_TOKEN_FILE",
      bearerTokenFile,
      "cannot be combined with basic auth (both set the Authorization header)",
    );
  }
  if (urlHasUser && (hasBasic || bearerTokenFile !== undefined)) {
    problem(
      "PROMETHEUS_REMOTE_WRITE_URL",
      urlText,
      "holds credentials and BEARER_TOKEN_FILE or BASIC_AUTH_* is also set: choose one",
    );
  }

  // Extra headers
  const headers: Record<string, string> = {};
  const hdrText = raw("REMOTE_WRITE_HEADERS");
  if (hdrText !== undefined) {
    let pairs: [string, unknown][] = [];
    try {
      if (hdrText.startsWith("{")) {
        const obj: unknown = JSON.parse(hdrText);
        if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new Error("not a JSON object");
        pairs = Object.entries(obj);
      } else pairs = splitPairs(hdrText);
    } catch (e) {
      problem(
        "REMOTE_WRITE_HEADERS",
        hdrText,
        `${(e as Error).message} (expected a JSON object or Name=value,Name2=value2)`,
      );
    }
    const seen = new Set<string>();
    for (const [name, value] of pairs) {
      const lower = name.toLowerCase();
      if (!HEADER_NAME.test(name)) problem("REMOTE_WRITE_HEADERS", hdrText, `"${name}" is not a valid header name`);
      else if (RESERVED_HEADERS.includes(lower)) {
        problem("REMOTE_WRITE_HEADERS", hdrText, `header "${name}" is reserved by the protocol and cannot be set`);
      } else if (typeof value !== "string")
        problem("REMOTE_WRITE_HEADERS", hdrText, `header "${name}": value must be a string`);
      else if (unsendableHeaderValue(name, value) !== undefined)
        problem("REMOTE_WRITE_HEADERS", hdrText, `header "${name}": ${unsendableHeaderValue(name, value)}`);
      else if (seen.has(lower)) problem("REMOTE_WRITE_HEADERS", hdrText, `header "${name}" is repeated`);
      else {
        seen.add(lower);
        headers[name] = value;
      }
    }
  }

  const tlsCaFile = file("TLS_CA_FILE");
  const tlsInsecureSkipVerify = bool("TLS_INSECURE_SKIP_VERIFY");

  const maxSamplesPerSend = integer("MAX_SAMPLES_PER_SEND", 2000);
  const bufferMaxSamples = integer("BUFFER_MAX_SAMPLES", 100_000);
  if (bufferMaxSamples < maxSamplesPerSend) {
    problem(
      "BUFFER_MAX_SAMPLES",
      String(bufferMaxSamples),
      `must be at least MAX_SAMPLES_PER_SEND (${maxSamplesPerSend})`,
    );
  }
  const bufferDir = raw("BUFFER_DIR");
  const bufferMaxBytes = bytes("BUFFER_MAX_BYTES", 256 * 1024 ** 2, "256MiB");
  if (bufferDir !== undefined && !bufferDir.startsWith("/"))
    problem("BUFFER_DIR", bufferDir, "must be an absolute path");
  const shutdownTimeoutMs = duration("SHUTDOWN_TIMEOUT", 10_000);
  const staleMarkersOnShutdown = bool("STALE_MARKERS_ON_SHUTDOWN");
  const httpPort = integer("HTTP_PORT", 0);
  const httpAddress = raw("HTTP_ADDRESS");
  if (httpAddress !== undefined && !isIP(httpAddress) && httpAddress !== "localhost") {
    problem("HTTP_ADDRESS", httpAddress, "must be an IP address (or localhost)");
  }

  const metricPrefix = withDefault("METRIC_PREFIX")!;
  if (!METRIC_NAME.test(metricPrefix))
    problem("METRIC_PREFIX", metricPrefix, "is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");

  // Scraping
  const scrapeTargets: string[] = [];
  const targetsText = raw("SCRAPE_TARGETS");
  if (targetsText !== undefined) {
    let items: unknown[] = [];
    try {
      items = splitTargets(targetsText);
    } catch (e) {
      problem("SCRAPE_TARGETS", targetsText, `${(e as Error).message} (expected a JSON array of URLs or url1,url2)`);
    }
    for (const t of items) {
      const u = typeof t === "string" ? URL.parse(t) : null;
      if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) {
        problem("SCRAPE_TARGETS", targetsText, `${JSON.stringify(t)} is not an http(s) URL`);
      } else if (u.hash !== "" || !SCRAPE_PATH.test(u.pathname + u.search)) {
        problem(
          "SCRAPE_TARGETS",
          targetsText,
          `${JSON.stringify(t)}: the path must be /path or /path?query without commas or a #fragment`,
        );
      } else if (scrapeTargets.includes(u.toString()))
        problem("SCRAPE_TARGETS", targetsText, `${JSON.stringify(t)} is listed twice`);
      else scrapeTargets.push(u.toString());
    }
  }
  const scrapeJob = withDefault("SCRAPE_JOB")!;
  const scrapeTimeoutText = raw("SCRAPE_TIMEOUT");
  let scrapeTimeoutMs = Math.min(10_000, pushIntervalMs);
  if (scrapeTimeoutText !== undefined) {
    scrapeTimeoutMs = duration("SCRAPE_TIMEOUT", scrapeTimeoutMs);
    if (scrapeTimeoutMs > pushIntervalMs) {
      problem("SCRAPE_TIMEOUT", scrapeTimeoutText, `must not exceed PUSH_INTERVAL (${formatDuration(pushIntervalMs)})`);
    }
  }
  const scrapeSampleLimit = integer("SCRAPE_SAMPLE_LIMIT", SCRAPE_LIMITS.sampleLimit.default);
  const scrapeLabelLimit = integer("SCRAPE_LABEL_LIMIT", SCRAPE_LIMITS.labelLimit.default);
  const scrapeLabelValueLengthLimit = integer(
    "SCRAPE_LABEL_VALUE_LENGTH_LIMIT",
    SCRAPE_LIMITS.labelValueLengthLimit.default,
  );
  const scrapeMaxBytes = bytes("SCRAPE_MAX_BYTES", SCRAPE_MAX_BYTES_DEFAULT, formatBytes(SCRAPE_MAX_BYTES_DEFAULT));
  let scrapeDrop: RegExp | undefined;
  const dropText = raw("SCRAPE_DROP");
  if (dropText !== undefined) {
    try {
      scrapeDrop = new RegExp(`^(?:${dropText})$`);
    } catch (e) {
      problem("SCRAPE_DROP", dropText, `is not a valid regular expression: ${(e as Error).message}`);
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    remoteWriteUrl,
    pushIntervalMs,
    timeoutMs,
    logLevel,
    namespace,
    podName,
    nodeName,
    externalLabels: Object.freeze(externalLabels),
    bearerTokenFile,
    basicAuthUsername,
    basicAuthUsernameFile,
    basicAuthPasswordFile,
    headers: Object.freeze(headers),
    tlsCaFile,
    tlsInsecureSkipVerify,
    bufferMaxSamples,
    maxSamplesPerSend,
    bufferDir,
    bufferMaxBytes,
    shutdownTimeoutMs,
    staleMarkersOnShutdown,
    httpPort,
    httpAddress,
    metricPrefix,
    scrapeTargets: Object.freeze(scrapeTargets),
    scrapeJob,
    scrapeTimeoutMs,
    scrapeSampleLimit,
    scrapeLabelLimit,
    scrapeLabelValueLengthLimit,
    scrapeMaxBytes,
    scrapeDrop,
  });
}
