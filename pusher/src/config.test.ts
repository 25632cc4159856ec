import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULT_METRIC_PREFIX,
  DURATION_VARIABLES,
  ENV,
  MAX_DURATION,
  credentialFileProblems,
  MAX_DURATION_MS,
  SCRAPE_LIMITS,
  RESERVED_HEADERS,
  formatDuration,
  formatHeaders,
  formatLabels,
  formatTargets,
  parse,
  PATTERNS,
  unsendableHeaderValue,
  parseBytes,
  parseDuration,
} from "./config.ts";
import { redactUrl } from "./redact.ts";
import type { EnvSpec } from "./config.ts";

const URL_OK = "http://127.0.0.1:9090/api/v1/write";

function problemsOf(env: Record<string, string | undefined>): ConfigError["problems"] {
  try {
    parse(env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail("parse accepted a bad configuration");
}

describe("parseDuration", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["500ms", 500],
    ["30s", 30_000],
    ["1m30s", 90_000],
    ["1.5h", 5_400_000],
    ["2h45m", 9_900_000],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["1000000ns", 1],
    [".5s", 500],
    ["-1s", -1000],
    ["1h0m0s", 3_600_000],
  ];
  for (const [text, ms] of cases) it(`${text} → ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  for (const bad of ["", "30", "1x", "s", "1m30", "1 s", "ten seconds", "1.5.s"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseDuration(bad)));
  }
});

describe("formatDuration (Go's Duration.String)", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [500, "500ms"],
    [1500, "1.5s"],
    [30_000, "30s"],
    [90_000, "1m30s"],
    [3_600_000, "1h0m0s"],
    [5_400_000, "1h30m0s"],
    [1.5, "1.5ms"],
    [0.001, "1µs"],
    [-2000, "-2s"],
  ];
  for (const [ms, text] of cases) it(`${ms} ms → ${text}`, () => assert.equal(formatDuration(ms), text));
  it("round-trips through parseDuration", () => {
    for (const ms of [1, 999, 1000, 61_001, 86_400_000, 12.5]) assert.equal(parseDuration(formatDuration(ms)), ms);
  });
});

describe("parse", () => {
  it("applies the documented defaults", () => {
    const c = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK });
    assert.equal(c.remoteWriteUrl, URL_OK);
    assert.equal(c.pushIntervalMs, 30_000);
    assert.equal(c.timeoutMs, 30_000);
    assert.equal(c.logLevel, "info");
    assert.equal(c.namespace, "knative-lambda");
    assert.equal(c.podName, undefined);
    assert.deepEqual(c.externalLabels, {});
    assert.deepEqual(c.headers, {});
    assert.equal(c.tlsInsecureSkipVerify, false);
    assert.equal(c.bufferMaxSamples, 100_000);
    assert.equal(c.maxSamplesPerSend, 2000);
    assert.equal(c.bufferDir, undefined);
    assert.equal(c.bufferMaxBytes, 256 * 1024 * 1024);
    assert.equal(c.shutdownTimeoutMs, 10_000);
    assert.equal(c.staleMarkersOnShutdown, false, "standalone default: no markers, as Prometheus' sender");
    assert.equal(c.httpPort, 0);
    assert.equal(c.metricPrefix, DEFAULT_METRIC_PREFIX);
    assert.deepEqual(c.scrapeTargets, []);
    assert.equal(c.scrapeJob, "builder");
    assert.equal(c.scrapeTimeoutMs, 10_000);
    // Measured to fit the sidecar's 192Mi at the limit (docs/pusher.md#resource-use); 0 before issue 12.
    assert.equal(c.scrapeSampleLimit, 4000);
    assert.equal(c.scrapeLabelLimit, 20);
    assert.equal(c.scrapeSampleLimit, SCRAPE_LIMITS.sampleLimit.default);
    assert.equal(c.scrapeLabelLimit, SCRAPE_LIMITS.labelLimit.default);
    assert.equal(c.scrapeLabelValueLengthLimit, 2048);
    assert.equal(c.scrapeMaxBytes, 4 * 1024 * 1024);
    assert.equal(c.scrapeDrop, undefined);
  });

  it("every ENV default parses, and defaults in ENV match the parsed Config", () => {
    const env: Record<string, string> = { PROMETHEUS_REMOTE_WRITE_URL: URL_OK };
    for (const [name, spec] of Object.entries(ENV)) if ("default" in spec) env[name] = spec.default;
    assert.deepEqual(parse(env), parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK }));
  });

  it("returns a frozen object", () => {
    const c = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, EXTERNAL_LABELS: "a=b" });
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.externalLabels));
    assert.ok(Object.isFrozen(c.headers));
    assert.ok(Object.isFrozen(c.scrapeTargets));
  });

  it("treats empty values as unset", () => {
    const c = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, NAMESPACE: "", PUSH_INTERVAL: " ", POD_NAME: "" });
    assert.equal(c.namespace, "knative-lambda");
    assert.equal(c.pushIntervalMs, 30_000);
    assert.equal(c.podName, undefined);
  });

  it("reads every setting", () => {
    const c = parse({
      PROMETHEUS_REMOTE_WRITE_URL: "https://vm.example:8428/api/v1/write",
      PUSH_INTERVAL: "200ms",
      TIMEOUT: "1m30s",
      LOG_LEVEL: "DEBUG",
      NAMESPACE: "ns1",
      POD_NAME: "pod-1",
      NODE_NAME: "node-1",
      EXTERNAL_LABELS: 'cluster=prod, region="eu,west=1"',
      BASIC_AUTH_USERNAME: "alice",
      BASIC_AUTH_PASSWORD_FILE: "/secrets/pw",
      REMOTE_WRITE_HEADERS: "X-Scope-OrgID=team-a,X-Extra=1",
      TLS_CA_FILE: "/etc/ca.pem",
      TLS_INSECURE_SKIP_VERIFY: "true",
      BUFFER_MAX_SAMPLES: "5000",
      MAX_SAMPLES_PER_SEND: "500",
      BUFFER_DIR: "/var/lib/metrics-pusher/buffer",
      BUFFER_MAX_BYTES: "10Mi",
      SHUTDOWN_TIMEOUT: "0s",
      STALE_MARKERS_ON_SHUTDOWN: "true",
      HTTP_PORT: "8080",
      METRIC_PREFIX: "my_pusher",
      SCRAPE_TARGETS: "http://127.0.0.1:8080/metrics, http://127.0.0.1:9100/metrics",
      SCRAPE_JOB: "kaniko",
      SCRAPE_TIMEOUT: "150ms",
      SCRAPE_SAMPLE_LIMIT: "1000",
      SCRAPE_LABEL_LIMIT: "0",
      SCRAPE_MAX_BYTES: "1MiB",
      SCRAPE_DROP: "go_.*|process_.*",
    });
    assert.equal(c.pushIntervalMs, 200);
    assert.equal(c.timeoutMs, 90_000);
    assert.equal(c.logLevel, "debug");
    assert.equal(c.namespace, "ns1");
    assert.equal(c.podName, "pod-1");
    assert.equal(c.nodeName, "node-1");
    assert.deepEqual(c.externalLabels, { cluster: "prod", region: "eu,west=1" });
    assert.equal(c.basicAuthUsername, "alice");
    assert.equal(c.basicAuthPasswordFile, "/secrets/pw");
    assert.deepEqual(c.headers, { "X-Scope-OrgID": "team-a", "X-Extra": "1" });
    assert.equal(c.tlsCaFile, "/etc/ca.pem");
    assert.equal(c.tlsInsecureSkipVerify, true);
    assert.equal(c.bufferMaxSamples, 5000);
    assert.equal(c.maxSamplesPerSend, 500);
    assert.equal(c.bufferDir, "/var/lib/metrics-pusher/buffer");
    assert.equal(c.bufferMaxBytes, 10 * 1024 * 1024);
    assert.equal(c.shutdownTimeoutMs, 0);
    assert.equal(c.staleMarkersOnShutdown, true);
    assert.equal(c.httpPort, 8080);
    assert.equal(c.metricPrefix, "my_pusher");
    assert.deepEqual(c.scrapeTargets, ["http://127.0.0.1:8080/metrics", "http://127.0.0.1:9100/metrics"]);
    assert.equal(c.scrapeJob, "kaniko");
    assert.equal(c.scrapeTimeoutMs, 150);
    assert.equal(c.scrapeSampleLimit, 1000);
    assert.equal(c.scrapeLabelLimit, 0);
    assert.equal(c.scrapeMaxBytes, 1024 * 1024);
    assert.ok(c.scrapeDrop?.test("go_goroutines"));
    assert.ok(!c.scrapeDrop?.test("my_go_thing"), "the drop regex is anchored");
  });

  it("accepts REMOTE_WRITE_HEADERS as JSON", () => {
    const c = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, REMOTE_WRITE_HEADERS: '{"X-Scope-OrgID":"a,b=c"}' });
    assert.deepEqual(c.headers, { "X-Scope-OrgID": "a,b=c" });
  });

  it("caps the default scrape timeout at the push interval", () => {
    assert.equal(parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, PUSH_INTERVAL: "2s" }).scrapeTimeoutMs, 2000);
  });

  const bad: { name: string; env: Record<string, string>; variable: string; contains: string }[] = [
    {
      name: "missing URL",
      env: { PROMETHEUS_REMOTE_WRITE_URL: "" },
      variable: "PROMETHEUS_REMOTE_WRITE_URL",
      contains: "required",
    },
    {
      name: "not a URL",
      env: { PROMETHEUS_REMOTE_WRITE_URL: "prometheus:9090" },
      variable: "PROMETHEUS_REMOTE_WRITE_URL",
      contains: "scheme",
    },
    {
      name: "ftp URL",
      env: { PROMETHEUS_REMOTE_WRITE_URL: "ftp://x/y" },
      variable: "PROMETHEUS_REMOTE_WRITE_URL",
      contains: "ftp",
    },
    { name: "duration without unit", env: { PUSH_INTERVAL: "30" }, variable: "PUSH_INTERVAL", contains: '"30"' },
    { name: "zero interval", env: { PUSH_INTERVAL: "0s" }, variable: "PUSH_INTERVAL", contains: "at least" },
    { name: "negative timeout", env: { TIMEOUT: "-1s" }, variable: "TIMEOUT", contains: '"-1s"' },
    { name: "bad log level", env: { LOG_LEVEL: "verbose" }, variable: "LOG_LEVEL", contains: '"verbose"' },
    { name: "bad external label name", env: { EXTERNAL_LABELS: "1a=b" }, variable: "EXTERNAL_LABELS", contains: "1a" },
    {
      name: "external label without =",
      env: { EXTERNAL_LABELS: "a=b,c" },
      variable: "EXTERNAL_LABELS",
      contains: "name=value",
    },
    {
      name: "empty external label value",
      env: { EXTERNAL_LABELS: "a=" },
      variable: "EXTERNAL_LABELS",
      contains: "empty",
    },
    {
      name: "repeated external label",
      env: { EXTERNAL_LABELS: "a=1,a=2" },
      variable: "EXTERNAL_LABELS",
      contains: "repeated",
    },
    {
      name: "reserved __ label",
      env: { EXTERNAL_LABELS: "__name__=x" },
      variable: "EXTERNAL_LABELS",
      contains: "reserved",
    },
    {
      name: "reserved header",
      env: { REMOTE_WRITE_HEADERS: "User-Agent=evil" },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "User-Agent",
    },
    {
      name: "reserved header, any case",
      env: { REMOTE_WRITE_HEADERS: '{"content-ENCODING":"gzip"}' },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "reserved",
    },
    {
      name: "authorization header",
      env: { REMOTE_WRITE_HEADERS: "Authorization=Bearer x" },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "reserved",
    },
    {
      name: "header JSON not an object",
      env: { REMOTE_WRITE_HEADERS: "{1" },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "JSON",
    },
    {
      name: "bad header name",
      env: { REMOTE_WRITE_HEADERS: "Bad Name=1" },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "header name",
    },
    {
      name: "bad bool",
      env: { TLS_INSECURE_SKIP_VERIFY: "maybe" },
      variable: "TLS_INSECURE_SKIP_VERIFY",
      contains: "maybe",
    },
    {
      name: "bad stale-marker switch",
      env: { STALE_MARKERS_ON_SHUTDOWN: "sometimes" },
      variable: "STALE_MARKERS_ON_SHUTDOWN",
      contains: "true or false",
    },
    { name: "bad buffer", env: { BUFFER_MAX_SAMPLES: "lots" }, variable: "BUFFER_MAX_SAMPLES", contains: '"lots"' },
    {
      name: "buffer < batch",
      env: { BUFFER_MAX_SAMPLES: "10", MAX_SAMPLES_PER_SEND: "100" },
      variable: "BUFFER_MAX_SAMPLES",
      contains: "MAX_SAMPLES_PER_SEND",
    },
    { name: "zero batch", env: { MAX_SAMPLES_PER_SEND: "0" }, variable: "MAX_SAMPLES_PER_SEND", contains: "between" },
    { name: "port out of range", env: { HTTP_PORT: "70000" }, variable: "HTTP_PORT", contains: "70000" },
    { name: "bad prefix", env: { METRIC_PREFIX: "my-pusher" }, variable: "METRIC_PREFIX", contains: "my-pusher" },
    {
      name: "bad target",
      env: { SCRAPE_TARGETS: "http://ok/metrics,localhost:8080" },
      variable: "SCRAPE_TARGETS",
      contains: "localhost:8080",
    },
    {
      name: "a comma in a JSON target's path (would be a second target in the comma form)",
      env: { SCRAPE_TARGETS: '["http://127.0.0.1:8080/metrics,http://10.96.0.1:9100/metrics"]' },
      variable: "SCRAPE_TARGETS",
      contains: "without commas",
    },
    {
      name: "a target with a #fragment",
      env: { SCRAPE_TARGETS: "http://127.0.0.1:8080/metrics#x" },
      variable: "SCRAPE_TARGETS",
      contains: "fragment",
    },
    {
      name: "JSON targets that are not an array",
      env: { SCRAPE_TARGETS: "[" },
      variable: "SCRAPE_TARGETS",
      contains: "JSON",
    },
    {
      name: "a JSON target that is not a string",
      env: { SCRAPE_TARGETS: "[8080]" },
      variable: "SCRAPE_TARGETS",
      contains: "8080",
    },
    {
      name: "a JSON target listed twice",
      env: { SCRAPE_TARGETS: '["http://127.0.0.1:1/m","http://127.0.0.1:1/m"]' },
      variable: "SCRAPE_TARGETS",
      contains: "twice",
    },
    {
      name: "a header value with a line feed",
      env: { REMOTE_WRITE_HEADERS: JSON.stringify({ "X-A": "a\nb" }) },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "line break",
    },
    {
      name: "a header value with a control character",
      env: { REMOTE_WRITE_HEADERS: JSON.stringify({ "X-A": "a\u0001b" }) },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "control character",
    },
    {
      name: "a header value above Latin-1 (€)",
      env: { REMOTE_WRITE_HEADERS: JSON.stringify({ "X-A": "5€" }) },
      variable: "REMOTE_WRITE_HEADERS",
      contains: "beyond Latin-1",
    },
    {
      name: "sub-millisecond interval",
      env: { PUSH_INTERVAL: "500us" },
      variable: "PUSH_INTERVAL",
      contains: "at least 1ms",
    },
    {
      name: "scrape timeout > interval",
      env: { PUSH_INTERVAL: "1s", SCRAPE_TIMEOUT: "2s" },
      variable: "SCRAPE_TIMEOUT",
      contains: "PUSH_INTERVAL",
    },
    { name: "relative buffer dir", env: { BUFFER_DIR: "buffer" }, variable: "BUFFER_DIR", contains: "absolute" },
    { name: "tiny buffer bytes", env: { BUFFER_MAX_BYTES: "100" }, variable: "BUFFER_MAX_BYTES", contains: "64KiB" },
    { name: "bad size", env: { SCRAPE_MAX_BYTES: "big" }, variable: "SCRAPE_MAX_BYTES", contains: "big" },
    { name: "bad regex", env: { SCRAPE_DROP: "(" }, variable: "SCRAPE_DROP", contains: "regular expression" },
    {
      name: "password without user",
      env: { BASIC_AUTH_PASSWORD_FILE: "/pw" },
      variable: "BASIC_AUTH_PASSWORD_FILE",
      contains: "BASIC_AUTH_USERNAME",
    },
    {
      name: "user without password",
      env: { BASIC_AUTH_USERNAME: "u" },
      variable: "BASIC_AUTH_PASSWORD_FILE",
      contains: "required",
    },
    {
      name: "user twice",
      env: { BASIC_AUTH_USERNAME: "u", BASIC_AUTH_USERNAME_FILE: "/u", BASIC_AUTH_PASSWORD_FILE: "/p" },
      variable: "BASIC_AUTH_USERNAME_FILE",
      contains: "together",
    },
    {
      name: "bearer and basic",
      env: { BEARER_TOKEN_FILE: "/t", BASIC_AUTH_USERNAME: "u", BASIC_AUTH_PASSWORD_FILE: "/p" },
      variable: "BEARER_TOKEN_FILE",
      contains: "basic",
    },
  ];
  for (const c of bad) {
    it(`rejects: ${c.name}`, () => {
      const env = { PROMETHEUS_REMOTE_WRITE_URL: URL_OK, ...c.env };
      const problems = problemsOf(env);
      const p = problems.find((x) => x.variable === c.variable);
      assert.ok(p, `no problem for ${c.variable} in ${JSON.stringify(problems)}`);
      assert.ok(p.message.startsWith(`${c.variable}=`), `message names the variable: ${p.message}`);
      assert.ok(p.message.includes(c.contains), `"${p.message}" should contain ${c.contains}`);
    });
  }

  describe("header values HTTP cannot send are refused at start (Node's own check)", () => {
    for (const [what, value] of [
      ["a character beyond Latin-1", "t€am"],
      ["an inner line feed", "team\na"],
      ["an inner carriage return", "team\ra"],
      ["a control character", "te\u0001am"],
      ["DEL", "team\u007f"],
      ["NUL", "te\u0000am"],
    ] as const) {
      it(`refuses ${what}, naming the variable and the header but not the value`, () => {
        const problems = problemsOf({
          PROMETHEUS_REMOTE_WRITE_URL: URL_OK,
          REMOTE_WRITE_HEADERS: JSON.stringify({ "X-Scope-OrgID": value }),
        });
        const p = problems.find((x) => x.variable === "REMOTE_WRITE_HEADERS");
        assert.ok(p, JSON.stringify(problems));
        assert.match(
          p.message,
          /^REMOTE_WRITE_HEADERS=.*header "X-Scope-OrgID": value holds a character HTTP cannot send/,
        );
        assert.ok(!p.message.includes("team"), `the value leaked into ${p.message}`);
      });
    }
    it("accepts Latin-1 and tab, which HTTP sends", () => {
      const c = parse({
        PROMETHEUS_REMOTE_WRITE_URL: URL_OK,
        REMOTE_WRITE_HEADERS: JSON.stringify({ "X-A": "équipe\tb" }),
      });
      assert.deepEqual(c.headers, { "X-A": "équipe\tb" });
    });
  });

  describe("credentialFileProblems (the check at start)", () => {
    const files: Record<string, string | undefined> = {
      "/ok": "abc.def-ghi",
      "/lf": "abc\ndef",
      "/euro": "t€ken",
      "/ctl": "ab\u0007c",
    };
    const read = (path: string): string | undefined => files[path];
    it("refuses a bearer token HTTP cannot send, naming BEARER_TOKEN_FILE and the path, never the content", () => {
      for (const path of ["/lf", "/euro", "/ctl"]) {
        const problems = credentialFileProblems({ bearerTokenFile: path }, read);
        assert.equal(problems.length, 1, path);
        assert.equal(problems[0]!.variable, "BEARER_TOKEN_FILE");
        assert.ok(
          problems[0]!.message.startsWith(`BEARER_TOKEN_FILE="${path}": the file's content holds`),
          problems[0]!.message,
        );
        assert.ok(!/abc|def|ken/.test(problems[0]!.message), problems[0]!.message);
      }
    });
    it("accepts a sendable token, no token file, and a file not readable yet (it is retried, never fatal)", () => {
      assert.deepEqual(credentialFileProblems({ bearerTokenFile: "/ok" }, read), []);
      assert.deepEqual(credentialFileProblems({ bearerTokenFile: undefined }, read), []);
      assert.deepEqual(credentialFileProblems({ bearerTokenFile: "/missing" }, read), []);
    });
  });

  describe("every duration is bounded by Node's timer limit (2^31-1 ms)", () => {
    it("the bound is Node's, and its Go spelling parses back to it", () => {
      assert.equal(MAX_DURATION_MS, 2 ** 31 - 1);
      assert.equal(MAX_DURATION, "596h31m23.647s");
      assert.equal(parseDuration(MAX_DURATION), MAX_DURATION_MS);
    });
    it("lists every duration variable, and each one's description states the bound", () => {
      assert.deepEqual([...DURATION_VARIABLES].sort(), [
        "PUSH_INTERVAL",
        "SCRAPE_TIMEOUT",
        "SHUTDOWN_TIMEOUT",
        "TIMEOUT",
      ]);
      for (const name of DURATION_VARIABLES) assert.match(ENV[name].description, /at most 596h31m23\.647s/, name);
    });
    const over: [string, string][] = [
      ["PUSH_INTERVAL", "600h"],
      ["TIMEOUT", "2000h"],
      ["SHUTDOWN_TIMEOUT", "597h"],
      ["PUSH_INTERVAL", "596h31m23.648s"],
      ["TIMEOUT", "99999999999999999999999h"],
    ];
    for (const [variable, value] of over) {
      it(`refuses ${variable}=${value}, naming the variable and the bound`, () => {
        const problems = problemsOf({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, [variable]: value });
        const p = problems.find((x) => x.variable === variable);
        assert.ok(p, `no problem for ${variable} in ${JSON.stringify(problems)}`);
        assert.ok(p.message.startsWith(`${variable}="${value}"`), p.message);
        assert.ok(p.message.includes("at most 596h31m23.647s"), p.message);
      });
    }
    it("refuses SCRAPE_TIMEOUT over the bound even beside a PUSH_INTERVAL over it", () => {
      const problems = problemsOf({
        PROMETHEUS_REMOTE_WRITE_URL: URL_OK,
        PUSH_INTERVAL: "700h",
        SCRAPE_TIMEOUT: "650h",
      });
      assert.ok(problems.some((p) => p.variable === "PUSH_INTERVAL" && p.message.includes("at most")));
      assert.ok(problems.some((p) => p.variable === "SCRAPE_TIMEOUT" && p.message.includes("at most")));
    });
    it("accepts the bound itself for every duration", () => {
      const c = parse({
        PROMETHEUS_REMOTE_WRITE_URL: URL_OK,
        PUSH_INTERVAL: MAX_DURATION,
        TIMEOUT: MAX_DURATION,
        SHUTDOWN_TIMEOUT: MAX_DURATION,
        SCRAPE_TIMEOUT: MAX_DURATION,
      });
      assert.deepEqual(
        [c.pushIntervalMs, c.timeoutMs, c.shutdownTimeoutMs, c.scrapeTimeoutMs],
        [MAX_DURATION_MS, MAX_DURATION_MS, MAX_DURATION_MS, MAX_DURATION_MS],
      );
    });
  });

  it("reports every problem at once, in one error", () => {
    const problems = problemsOf({ PUSH_INTERVAL: "soon", TIMEOUT: "0", LOG_LEVEL: "loud", HTTP_PORT: "-1" });
    assert.deepEqual(problems.map((p) => p.variable).sort(), [
      "HTTP_PORT",
      "LOG_LEVEL",
      "PROMETHEUS_REMOTE_WRITE_URL",
      "PUSH_INTERVAL",
      "TIMEOUT",
    ]);
    const err = (() => {
      try {
        parse({ PUSH_INTERVAL: "soon" });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    assert.match(String(err?.message), /PROMETHEUS_REMOTE_WRITE_URL/);
    assert.match(String(err?.message), /PUSH_INTERVAL="soon"/);
  });

  it("never shows secrets in problems", () => {
    const problems = problemsOf({
      PROMETHEUS_REMOTE_WRITE_URL: "ftp://user:hunter2@host/x",
      REMOTE_WRITE_HEADERS: '{"X-Api-Key":"s3cret","Host":"x"}',
    });
    const text = JSON.stringify(problems);
    assert.ok(!text.includes("hunter2"), text);
    assert.ok(!text.includes("s3cret"), text);
  });
});

describe("formatLabels / formatHeaders", () => {
  it("formatLabels output parses back to the same labels", () => {
    const labels = { cluster: "prod", region: "eu,west", odd: 'say "hi"=x', sp: " lead" };
    const text = formatLabels(labels);
    assert.deepEqual(parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, EXTERNAL_LABELS: text }).externalLabels, labels);
    assert.equal(formatLabels({ a: "1", b: "2" }), "a=1,b=2");
  });
  it("formatHeaders output parses back to the same headers", () => {
    const headers = { "X-Scope-OrgID": "team,a", "X-B": "c=d" };
    assert.deepEqual(
      parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, REMOTE_WRITE_HEADERS: formatHeaders(headers) }).headers,
      headers,
    );
  });
});

describe("misc", () => {
  it("RESERVED_HEADERS lists the protocol headers in lower case", () => {
    for (const h of [
      "content-encoding",
      "content-type",
      "x-prometheus-remote-write-version",
      "user-agent",
      "authorization",
    ]) {
      assert.ok(RESERVED_HEADERS.includes(h), h);
    }
    assert.ok(RESERVED_HEADERS.every((h) => h === h.toLowerCase()));
  });
  it("SCRAPE_SAMPLE_LIMIT and SCRAPE_LABEL_LIMIT are whole numbers within SCRAPE_LIMITS' bounds", () => {
    for (const [name, bad] of [
      ["SCRAPE_SAMPLE_LIMIT", "-1"],
      ["SCRAPE_SAMPLE_LIMIT", "100000001"],
      ["SCRAPE_LABEL_LIMIT", "1.5"],
      ["SCRAPE_LABEL_LIMIT", "10001"],
    ] as const) {
      assert.throws(
        () => parse({ PROMETHEUS_REMOTE_WRITE_URL: "http://r/api/v1/write", [name]: bad }),
        (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.variable === name),
        `${name}=${bad}`,
      );
    }
    const c = parse({ PROMETHEUS_REMOTE_WRITE_URL: "http://r/api/v1/write", SCRAPE_LABEL_LIMIT: "10000" });
    assert.equal(c.scrapeLabelLimit, SCRAPE_LIMITS.labelLimit.max);
  });

  it("ENV entries are documented", () => {
    for (const [name, spec] of Object.entries(ENV)) {
      assert.match(name, /^[A-Z][A-Z0-9_]*$/);
      assert.ok(spec.description.length > 10, name);
    }
    assert.equal(ENV.PROMETHEUS_REMOTE_WRITE_URL.required, true);
  });
  it("parseBytes", () => {
    assert.equal(parseBytes("1024"), 1024);
    assert.equal(parseBytes("16MiB"), 16 * 1024 * 1024);
    assert.equal(parseBytes("2Ki"), 2048);
    assert.equal(parseBytes("1GB"), 1e9);
    assert.throws(() => parseBytes("1 parsec"));
  });
  it("redactUrl hides user info only", () => {
    assert.equal(redactUrl("https://u:p@h:1/x?y=1"), "https://REDACTED:REDACTED@h:1/x?y=1");
    assert.equal(redactUrl(URL_OK), URL_OK);
  });
});

describe("SCRAPE_TARGETS forms", () => {
  it("accepts a JSON array (what the operator renders) beside the comma form", () => {
    const urls = ["http://127.0.0.1:8080/metrics", "http://127.0.0.1:9100/stats?x=1"];
    const json = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, SCRAPE_TARGETS: formatTargets(urls) });
    const comma = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, SCRAPE_TARGETS: urls.join(",") });
    assert.deepEqual(json.scrapeTargets, urls);
    assert.deepEqual(comma.scrapeTargets, urls);
  });
  it("keeps a standalone user's query with brackets (federation)", () => {
    const c = parse({
      PROMETHEUS_REMOTE_WRITE_URL: URL_OK,
      SCRAPE_TARGETS: "http://127.0.0.1:9090/federate?match[]=up",
    });
    assert.deepEqual(c.scrapeTargets, ["http://127.0.0.1:9090/federate?match[]=up"]);
  });
  it("keeps the comma form's semantics: a comma separates targets, on any host", () => {
    const c = parse({ PROMETHEUS_REMOTE_WRITE_URL: URL_OK, SCRAPE_TARGETS: "http://a:1/m,http://b:2/m" });
    assert.deepEqual(c.scrapeTargets, ["http://a:1/m", "http://b:2/m"]);
  });
});

describe("bounds come from the ENV table (the CRD is generated from the same fields)", () => {
  const base = { PROMETHEUS_REMOTE_WRITE_URL: URL_OK, PUSH_INTERVAL: "1h" };
  const entries = Object.entries(ENV as Record<string, EnvSpec>).filter(([, spec]) => spec.kind !== undefined);
  it("declares a kind and bounds for every numeric variable", () => {
    assert.deepEqual(
      entries.map(([name]) => name).sort(),
      [
        "BUFFER_MAX_BYTES",
        "BUFFER_MAX_SAMPLES",
        "HTTP_PORT",
        "MAX_SAMPLES_PER_SEND",
        "PUSH_INTERVAL",
        "SCRAPE_LABEL_LIMIT",
        "SCRAPE_LABEL_VALUE_LENGTH_LIMIT",
        "SCRAPE_MAX_BYTES",
        "SCRAPE_SAMPLE_LIMIT",
        "SCRAPE_TIMEOUT",
        "SHUTDOWN_TIMEOUT",
        "TIMEOUT",
      ].sort(),
    );
  });
  const text = (kind: EnvSpec["kind"], n: number): string => (kind === "duration" ? formatDuration(n) : String(n));
  for (const [name, spec] of entries) {
    const { min, max } = spec;
    if (min !== undefined && min > 0) {
      it(`${name}: refuses min - 1, accepts min (${min})`, () => {
        const below = spec.kind === "duration" ? min / 2 : min - 1;
        assert.ok(problemsOf({ ...base, [name]: text(spec.kind, below) }).some((p) => p.variable === name));
        parse({ ...base, MAX_SAMPLES_PER_SEND: "1", [name]: text(spec.kind, min) });
      });
    }
    if (max !== undefined && max < Number.MAX_SAFE_INTEGER) {
      it(`${name}: refuses max + 1, accepts max (${max})`, () => {
        // The largest push interval, so that SCRAPE_TIMEOUT's own maximum is not above it.
        const wide = { ...base, PUSH_INTERVAL: formatDuration(MAX_DURATION_MS), BUFFER_MAX_SAMPLES: "100000000" };
        assert.ok(problemsOf({ ...wide, [name]: text(spec.kind, max + 1) }).some((p) => p.variable === name));
        parse({ ...wide, [name]: text(spec.kind, max) });
      });
    }
  }
});

it("PATTERNS.headerValue (the CRD's rule) agrees with Node's own check (parse's) on every character up to U+FFFF", () => {
  const re = new RegExp(PATTERNS.headerValue);
  const disagree: string[] = [];
  for (let c = 0; c <= 0xffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue; // lone surrogates are not strings a YAML or JSON object can hold
    const v = `a${String.fromCharCode(c)}b`;
    if (re.test(v) !== (unsendableHeaderValue("X-A", v) === undefined)) disagree.push(c.toString(16));
  }
  assert.deepEqual(disagree, []);
});
