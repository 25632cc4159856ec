import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { pino } from "pino";
import { Registry } from "prom-client";
import type { Sample } from "../series.ts";
import { Scraper, type ScraperOptions } from "./scrape.ts";

/** A target whose answer the test sets per path: a body, or a function writing the response. */
type Handler = string | ((req: http.IncomingMessage, res: http.ServerResponse) => void);
const routes = new Map<string, Handler>();
const requests: http.IncomingMessage[] = [];
let server: http.Server;
let base: string;
let port: number;

before(async () => {
  server = http.createServer((req, res) => {
    requests.push(req);
    const h = routes.get(req.url ?? "");
    if (h === undefined) {
      res.writeHead(404).end("not found");
    } else if (typeof h === "string") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(h);
    } else h(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const log = pino({ level: "silent" });
let nextPath = 0;
/** A fresh path per test so that tests do not share a target. */
function target(h: Handler): string {
  const path = `/t${nextPath++}`;
  routes.set(path, h);
  return path;
}
function scraper(paths: string[], over: Partial<ScraperOptions> = {}): { s: Scraper; registry: Registry } {
  const registry = new Registry();
  const s = new Scraper({
    targets: paths.map((p) => base + p),
    job: "builder",
    timeoutMs: 2000,
    sampleLimit: 0,
    maxBytes: 1 << 20,
    extraLabels: { namespace: "ns1", pod: "pod-1" },
    log,
    registry,
    ...over,
  });
  return { s, registry };
}
const str = (s: Sample): string =>
  `${s.labels.map((l) => `${l.name}=${l.value}`).join(",")} ${s.stale ? "STALE" : s.value}@${s.timestampMs}`;
const named = (samples: Sample[], name: string): Sample[] =>
  samples.filter((s) => s.labels.find((l) => l.name === "__name__")?.value === name);
const value = (samples: Sample[], name: string): number | "STALE" | undefined => {
  const s = named(samples, name);
  assert.ok(s.length <= 1, `one ${name}`);
  return s[0] === undefined ? undefined : s[0].stale ? "STALE" : s[0].value;
};
const data = (samples: Sample[]): Sample[] =>
  samples.filter((s) => !/^(up|scrape_.*)$/.test(s.labels.find((l) => l.name === "__name__")!.value));

describe("Scraper", () => {
  it("labels series as Prometheus does: job, instance, extra labels, exported_*, empty values dropped, sorted", async () => {
    const p = target('m{job="app",instance="x",pod="p",zone="a",empty=""} 5\nbare 1\n');
    const { s } = scraper([p]);
    const got = data(await s.scrape(1000)).map(str);
    const i = `instance=127.0.0.1:${port}`;
    assert.deepEqual(got, [
      `__name__=m,exported_instance=x,exported_job=app,exported_pod=p,${i},job=builder,namespace=ns1,pod=pod-1,zone=a 5@1000`,
      `__name__=bare,${i},job=builder,namespace=ns1,pod=pod-1 1@1000`,
    ]);
  });

  it("keeps resolving exported_ clashes as Prometheus does", async () => {
    const p = target('m{job="a",exported_job="b"} 1\n');
    const { s } = scraper([p], { extraLabels: {} });
    const [m] = data(await s.scrape(1));
    assert.deepEqual(
      m!.labels.filter((l) => l.name.includes("job")),
      [
        { name: "exported_exported_job", value: "a" },
        { name: "exported_job", value: "b" },
        { name: "job", value: "builder" },
      ],
    );
  });

  it("labels in every sample are sorted by name and unique", async () => {
    const p = target('z{b="1",a="2",_c="3",A="4"} 1\n');
    const { s } = scraper([p], { extraLabels: { ext: "e", namespace: "n" } });
    for (const sample of await s.scrape(1)) {
      const names = sample.labels.map((l) => l.name);
      assert.deepEqual(names, [...names].sort(), "sorted");
      assert.equal(new Set(names).size, names.length, "unique");
      assert.ok(
        sample.labels.every((l) => l.value !== ""),
        "no empty values",
      );
    }
  });

  it("reports up, duration, samples scraped/post-relabeling and series added", async () => {
    let body = "a 1\nb 2\nc 3\n";
    const p = target((_req, res) => res.end(body));
    const { s } = scraper([p], { drop: /^(?:c)$/ });
    const first = await s.scrape(1000);
    assert.equal(value(first, "up"), 1);
    assert.equal(value(first, "scrape_samples_scraped"), 3);
    assert.equal(value(first, "scrape_samples_post_metric_relabeling"), 2);
    assert.equal(value(first, "scrape_series_added"), 2);
    const d = value(first, "scrape_duration_seconds");
    assert.ok(typeof d === "number" && d > 0 && d < 2, `duration ${d}`);
    const up = named(first, "up")[0]!;
    assert.deepEqual(
      up.labels.map((l) => l.name),
      ["__name__", "instance", "job", "namespace", "pod"],
    );
    body = "a 1\nb 2\nd 4\n";
    const second = await s.scrape(2000);
    assert.equal(value(second, "scrape_series_added"), 1);
  });

  it("keeps classic histograms and summaries intact", async () => {
    const p = target(
      "# TYPE h histogram\n" +
        'h_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.2\nh_count 2\n' +
        "# TYPE s summary\n" +
        's{quantile="0.9"} 0.4\ns_sum 3\ns_count 7\n',
    );
    const { s } = scraper([p], { extraLabels: {} });
    const got = data(await s.scrape(5)).map(
      (x) =>
        `${x.labels
          .filter((l) => !["instance", "job"].includes(l.name))
          .map((l) => `${l.name}=${l.value}`)
          .join(",")} ${x.value}`,
    );
    assert.deepEqual(got, [
      "__name__=h_bucket,le=0.5 1",
      "__name__=h_bucket,le=+Inf 2",
      "__name__=h_sum 1.2",
      "__name__=h_count 2",
      "__name__=s,quantile=0.9 0.4",
      "__name__=s_sum 3",
      "__name__=s_count 7",
    ]);
  });

  it("honours exposed timestamps and keeps NaN and ±Inf", async () => {
    const p = target("a 1 1234\nb NaN\nc +Inf\nd -Inf 99\n");
    const { s } = scraper([p]);
    const got = data(await s.scrape(5000));
    assert.deepEqual(
      got.map((x) => [x.value, x.timestampMs, x.stale ?? false]),
      [
        [1, 1234, false],
        [NaN, 5000, false],
        [Infinity, 5000, false],
        [-Infinity, 99, false],
      ],
    );
  });

  it("writes stale markers for series that disappear (not for series with exposed timestamps)", async () => {
    let body = 'a{x="1"} 1\na{x="2"} 2\nt 1 100\n';
    const p = target((_req, res) => res.end(body));
    const { s } = scraper([p]);
    await s.scrape(1000);
    body = 'a{x="1"} 3\n';
    const second = data(await s.scrape(2000));
    assert.deepEqual(
      second.map((x) => [
        x.labels.find((l) => l.name === "x")?.value ?? x.labels[0]!.value,
        x.stale ?? false,
        x.timestampMs,
      ]),
      [
        ["1", false, 2000],
        ["2", true, 2000],
      ],
    );
    // Not repeated on the next scrape.
    const third = data(await s.scrape(3000));
    assert.equal(third.filter((x) => x.stale).length, 0);
  });

  it("a failing target gives up 0, no samples and stale markers for all its series; it recovers", async () => {
    let fail = false;
    const p = target((_req, res) => (fail ? res.writeHead(500).end("boom") : res.end("a 1\nb 2\n")));
    const { s, registry } = scraper([p]);
    assert.equal(data(await s.scrape(1000)).length, 2);
    fail = true;
    const down = await s.scrape(2000);
    assert.equal(value(down, "up"), 0);
    assert.deepEqual(
      data(down).map((x) => [x.labels[0]!.value, x.stale]),
      [
        ["a", true],
        ["b", true],
      ],
    );
    assert.equal(value(down, "scrape_samples_scraped"), 0);
    assert.equal(data(await s.scrape(3000)).length, 0, "no second round of markers");
    fail = false;
    const back = await s.scrape(4000);
    assert.equal(value(back, "up"), 1);
    assert.equal(data(back).length, 2);
    const m = await registry.getSingleMetricAsString("knative_lambda_metric_pusher_scrape_failures_total");
    assert.match(m, new RegExp(`target="127.0.0.1:${port}",reason="http_status"} 2`));
  });

  const failing: { name: string; handler: Handler; reason: string; over?: Partial<ScraperOptions> }[] = [
    { name: "unparsable exposition", handler: "a 1\nb{ 2\n", reason: "parse_error" },
    { name: "repeated label names", handler: 'a{x="1",x="2"} 1\n', reason: "parse_error" },
    {
      name: "invalid UTF-8",
      handler: (_q, r) => r.end(Buffer.from([0x61, 0x7b, 0x78, 0x3d, 0x22, 0xff, 0x22, 0x7d, 0x20, 0x31, 0x0a])),
      reason: "invalid_utf8",
    },
    { name: "sample limit exceeded", handler: "a 1\nb 2\nc 3\n", reason: "sample_limit", over: { sampleLimit: 2 } },
    {
      // Before the limit was checked while parsing, the whole body was read first (here: never ending, cut at
      // maxBytes or the timeout).
      name: "sample limit reached while the body still arrives (never-ending valid series)",
      handler: (_q, r) => {
        r.writeHead(200);
        let i = 0;
        const more = (): void => {
          while (!r.destroyed && r.write(Array.from({ length: 1000 }, () => `s{i="${i++}"} 1\n`).join("")));
          if (!r.destroyed) r.once("drain", more);
        };
        r.on("error", () => {});
        more();
      },
      reason: "sample_limit",
      over: { sampleLimit: 100, maxBytes: 1 << 30, timeoutMs: 5000 },
    },
    {
      name: "label limit, the name and the target's labels counted",
      handler: 'm{a="1",b="2"} 1\n',
      reason: "label_limit",
      over: { labelLimit: 6 },
    },
    {
      name: "label set longer than the label limit in the exposition (80,000 labels)",
      handler: `m{${Array.from({ length: 80_000 }, (_, k) => `l${k}="v"`).join(",")}} 1\n`,
      reason: "label_limit",
      over: { labelLimit: 20 },
    },
    { name: "HTTP 404", handler: (_q, r) => r.writeHead(404).end(), reason: "http_status" },
    {
      name: "body over maxBytes (declared length)",
      handler: "a 1\n".repeat(100),
      reason: "body_too_large",
      over: { maxBytes: 399 },
    },
    {
      name: "body over maxBytes (streamed, never ending)",
      handler: (_q, r) => {
        r.writeHead(200);
        const t = setInterval(() => (r.destroyed ? clearInterval(t) : r.write("a_metric_name 1\n".repeat(1000))), 1);
        r.on("close", () => clearInterval(t));
      },
      reason: "body_too_large",
      over: { maxBytes: 100_000 },
    },
    {
      name: "gzip body over maxBytes once decompressed",
      handler: (_q, r) => r.writeHead(200, { "content-encoding": "gzip" }).end(gzipSync("a 1\n".repeat(10_000))),
      reason: "body_too_large",
      over: { maxBytes: 1000 },
    },
    {
      name: "hanging target",
      handler: (_q, r) => {
        r.writeHead(200);
        r.write("a 1\n");
      },
      reason: "timeout",
      over: { timeoutMs: 300 },
    },
    {
      name: "connection reset mid-body",
      handler: (_q, r) => {
        r.writeHead(200);
        r.write("a 1\n");
        setTimeout(() => r.socket?.destroy(), 20);
      },
      reason: "network",
    },
  ];
  for (const c of failing) {
    it(`fails the scrape (up 0, no samples): ${c.name}`, async () => {
      const p = target(c.handler);
      const { s, registry } = scraper([p], c.over);
      const t0 = performance.now();
      const got = await s.scrape(1000);
      const ms = performance.now() - t0;
      assert.equal(value(got, "up"), 0);
      assert.deepEqual(data(got), []);
      assert.ok(ms < 1500, `cut off in ${ms} ms`);
      const m = await registry.getSingleMetricAsString("knative_lambda_metric_pusher_scrape_failures_total");
      assert.match(m, new RegExp(`reason="${c.reason}"} 1`));
    });
  }

  it("a series exactly at the label limit passes (7 labels: name, a, b, instance, job, namespace, pod)", async () => {
    const { s } = scraper([target('m{a="1",b="2"} 1\n')], { labelLimit: 7 });
    const got = await s.scrape(1000);
    assert.equal(value(got, "up"), 1);
    assert.equal(data(got).length, 1);
  });

  it("an unreachable target fails with reason network", async () => {
    const registry = new Registry();
    const s = new Scraper({
      targets: ["http://127.0.0.1:1/metrics"],
      job: "j",
      timeoutMs: 1000,
      sampleLimit: 0,
      maxBytes: 1000,
      extraLabels: {},
      log,
      registry,
    });
    const got = await s.scrape(1);
    assert.equal(value(got, "up"), 0);
    assert.equal(named(got, "up")[0]!.labels.find((l) => l.name === "instance")!.value, "127.0.0.1:1");
    assert.match(
      await registry.getSingleMetricAsString("knative_lambda_metric_pusher_scrape_failures_total"),
      /reason="network"} 1/,
    );
  });

  it("accepts a body of exactly maxBytes, and gzip bodies", async () => {
    const body = "a 1\n".repeat(25);
    const p1 = target(body);
    const p2 = target((_q, r) => r.writeHead(200, { "content-encoding": "gzip" }).end(gzipSync(body)));
    const { s } = scraper([p1, p2], { maxBytes: body.length });
    const got = await s.scrape(1);
    assert.deepEqual(
      named(got, "up").map((x) => x.value),
      [1, 1],
    );
  });

  it("drops samples whose exposed timestamp is over an hour old (Prometheus would refuse them)", async () => {
    const now = 10_000_000;
    const p = target(`fresh 1 ${now - 3_599_000}\nold 2 ${now - 3_601_000}\nfuture 3 ${now + 60_000}\n`);
    const { s, registry } = scraper([p]);
    assert.deepEqual(
      data(await s.scrape(now)).map((x) => x.labels[0]!.value),
      ["fresh", "future"],
    );
    assert.match(
      await registry.getSingleMetricAsString("knative_lambda_metric_pusher_scrape_samples_dropped_total"),
      /reason="too_old"} 1/,
    );
  });

  it("drop regex removes whole names only and does not count toward the sample limit", async () => {
    const p = target("go_gc 1\ngo_gc_total 2\nkeep 3\n");
    const { s, registry } = scraper([p], { drop: /go_gc/g, sampleLimit: 2 });
    const got = await s.scrape(1);
    assert.equal(value(got, "up"), 1);
    assert.deepEqual(
      data(got).map((x) => x.labels[0]!.value),
      ["go_gc_total", "keep"],
    );
    assert.match(
      await registry.getSingleMetricAsString("knative_lambda_metric_pusher_scrape_samples_dropped_total"),
      /reason="drop_regex"} 1/,
    );
  });

  it("keeps its series table right across scrapes: gone, back, alias texts, a failed scrape in between", async () => {
    let body = 'a{x="1"} 1\na{x="2"} 2\n';
    const p = target((_req, res) => res.end(body));
    const { s } = scraper([p], { sampleLimit: 3 });
    const view = (out: Sample[]): string[] =>
      data(out).map((x) => `${x.labels.find((l) => l.name === "x")!.value} ${x.stale ? "STALE" : x.value}`);
    assert.equal(value(await s.scrape(1000), "scrape_series_added"), 2);
    body = 'a{x="1"} 3\n';
    const gone = await s.scrape(2000);
    assert.deepEqual(view(gone), ["1 3", "2 STALE"]);
    assert.equal(value(gone, "scrape_series_added"), 0);
    // Back, under another text that makes the same series, and repeated: added once, the first sample kept.
    body = 'a{x="1"} 4\na{y="",x="2"} 5\na{x="2"} 6\n';
    const back = await s.scrape(3000);
    assert.deepEqual(
      data(back).map((x) => x.value),
      [4, 5],
    );
    assert.equal(value(back, "scrape_series_added"), 1);
    // Over the sample limit: the scrape fails, every live series gets its marker once.
    body = 'a{x="1"} 7\na{x="3"} 8\na{x="4"} 9\na{x="5"} 10\n';
    const failed = await s.scrape(4000);
    assert.equal(value(failed, "up"), 0);
    assert.deepEqual(view(failed), ["1 STALE", "2 STALE"]);
    // After a failure every series counts as added again, and nothing of before gets a second marker.
    body = 'a{x="3"} 11\n';
    const after = await s.scrape(5000);
    assert.equal(value(after, "up"), 1);
    assert.equal(value(after, "scrape_series_added"), 1);
    assert.deepEqual(
      data(after).map((x) => x.value),
      [11],
    );
    body = "";
    assert.deepEqual(view(await s.scrape(6000)), ["3 STALE"]);
  });

  it("keeps the first of a series repeated in one scrape", async () => {
    const p = target('a{x="1"} 1\na{x="1",y=""} 2\na{x="1"} 3 5\n');
    const { s } = scraper([p]);
    assert.deepEqual(
      data(await s.scrape(10)).map((x) => x.value),
      [1],
    );
  });

  it("scrapes targets concurrently and sends Prometheus' Accept header", async () => {
    const slow: Handler = (_q, r) => setTimeout(() => r.end("a 1\n"), 400);
    const paths = [target(slow), target(slow), target(slow)];
    const { s } = scraper(paths);
    const before = requests.length;
    const t0 = performance.now();
    const got = await s.scrape(1);
    const ms = performance.now() - t0;
    assert.deepEqual(
      named(got, "up").map((x) => x.value),
      [1, 1, 1],
    );
    assert.ok(ms < 1000, `three 400 ms targets took ${ms} ms`);
    const seen = requests.slice(before);
    assert.equal(seen.length, 3);
    for (const r of seen) assert.match(r.headers.accept ?? "", /^text\/plain;version=0\.0\.4/);
  });

  it("serialises overlapping scrape() calls", async () => {
    const bodies = ["a 1\n", "b 1\n"];
    let n = 0;
    const p = target((_q, r) => {
      const body = bodies[n++];
      setTimeout(() => r.end(body), 50);
    });
    const { s } = scraper([p]);
    const first = s.scrape(1000);
    const second = s.scrape(2000);
    await first;
    const got = data(await second);
    assert.deepEqual(
      got.map((x) => [x.labels[0]!.value, x.stale ?? false]),
      [
        ["b", false],
        ["a", true],
      ],
    );
  });

  it("staleAll marks every live series and the report series once", async () => {
    const p = target("a 1\nb 2 77\n");
    const { s } = scraper([p]);
    await s.scrape(1000);
    const stale = s.staleAll(2000);
    assert.ok(stale.every((x) => x.stale && x.timestampMs === 2000));
    assert.deepEqual(
      stale.map((x) => x.labels[0]!.value),
      [
        "a",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
      ],
    );
    assert.deepEqual(s.staleAll(3000), []);
  });

  it("logs a warning when a target goes down, debug while it stays down, info when it is back", async () => {
    let fail = true;
    const p = target((_q, r) => (fail ? r.writeHead(503).end() : r.end("a 1\n")));
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const capture = pino(
      { level: "debug" },
      { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) },
    );
    const { s } = scraper([p], { log: capture });
    await s.scrape(1);
    await s.scrape(2);
    fail = false;
    await s.scrape(3);
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.reason]),
      [
        [40, "Scrape failed", "http_status"],
        [20, "Scrape failed", "http_status"],
        [30, "Scrape target is back up", undefined],
      ],
    );
  });

  it("instance carries the scheme's default port", async () => {
    const registry = new Registry();
    const s = new Scraper({
      targets: ["http://localhost/metrics", "https://[::1]/m"],
      job: "j",
      timeoutMs: 50,
      sampleLimit: 0,
      maxBytes: 1,
      extraLabels: {},
      log,
      registry,
    });
    const got = await s.scrape(1);
    assert.deepEqual(
      named(got, "up").map((x) => x.labels.find((l) => l.name === "instance")!.value),
      ["localhost:80", "[::1]:443"],
    );
  });
});
