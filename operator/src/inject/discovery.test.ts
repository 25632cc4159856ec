import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Container } from "@kubernetes/client-node";
import fc from "fast-check";
import { DiscoveryMode, MAX_SCRAPE_TARGETS, SIDECAR_CONTAINER_NAME } from "../api/index.ts";
import { discover, type Discovery } from "./discovery.ts";
import { checkSidecar, renderSidecar } from "./sidecar.ts";
import { defaults, pusher } from "./testdata.test-fixtures.ts";

const APP: V1Container = { name: "app", image: "app", ports: [{ name: "http", containerPort: 8080 }] };

function podWith(annotations: Record<string, string>, containers: V1Container[] = [APP], init: V1Container[] = []) {
  return { metadata: { annotations }, spec: { containers, initContainers: init } };
}

/** The targets as URLs-to-be (scheme://:port/path), or the message. */
function show(d: Discovery): string[] | string {
  return d.kind === "invalid" ? d.message : d.targets.map((t) => `${t.scheme}://:${t.port}${t.path}`);
}

const scrape = (extra: Record<string, string> = {}) => ({ "prometheus.io/scrape": "true", ...extra });

describe("discover: prometheus.io annotations", () => {
  const cases: Array<{ name: string; annotations: Record<string, string>; want: string[] | RegExp }> = [
    { name: "scrape and port", annotations: scrape({ "prometheus.io/port": "9100" }), want: ["http://:9100/metrics"] },
    {
      name: "path and scheme",
      annotations: scrape({
        "prometheus.io/port": "9100",
        "prometheus.io/path": "/stats",
        "prometheus.io/scheme": "https",
      }),
      want: ["https://:9100/stats"],
    },
    {
      name: "a path without its leading slash, as Prometheus reads it",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "internal/metrics" }),
      want: ["http://:9100/internal/metrics"],
    },
    {
      name: "a path with a query",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "/metrics?format=prometheus" }),
      want: ["http://:9100/metrics?format=prometheus"],
    },
    {
      name: "a comma list of ports, spaces and a repeat ignored",
      annotations: scrape({ "prometheus.io/port": "9100, 9200,9100" }),
      want: ["http://:9100/metrics", "http://:9200/metrics"],
    },
    { name: "no port: every declared TCP port", annotations: scrape(), want: ["http://:8080/metrics"] },
    { name: "scrape absent: nothing", annotations: { "prometheus.io/port": "9100" }, want: [] },
    { name: "scrape is not true: nothing", annotations: scrape({ "prometheus.io/scrape": "yes" }), want: [] },
    { name: "scrape false: nothing", annotations: { "prometheus.io/scrape": "false" }, want: [] },
    { name: "port 0", annotations: scrape({ "prometheus.io/port": "0" }), want: /prometheus.io\/port "0" holds 0/ },
    {
      name: "port 65536",
      annotations: scrape({ "prometheus.io/port": "65536" }),
      want: /holds 65536, outside 1-65535/,
    },
    { name: "negative port", annotations: scrape({ "prometheus.io/port": "-1" }), want: /is not a port/ },
    { name: "a name, not a port", annotations: scrape({ "prometheus.io/port": "http" }), want: /is not a port/ },
    { name: "a port with a host", annotations: scrape({ "prometheus.io/port": "10.0.0.1:80" }), want: /not a port/ },
    { name: "an empty list entry", annotations: scrape({ "prometheus.io/port": "8080,," }), want: /not a port/ },
    { name: "a huge number", annotations: scrape({ "prometheus.io/port": "9".repeat(400) }), want: /not a port/ },
    {
      name: "more ports than a sidecar scrapes",
      annotations: scrape({
        "prometheus.io/port": Array.from({ length: MAX_SCRAPE_TARGETS + 1 }, (_, i) => 9000 + i).join(","),
      }),
      want: /more than 16 ports/,
    },
    {
      name: "a path that leaves for another host",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "//evil.example/x" }),
      want: ["http://:9100//evil.example/x"],
    },
    {
      name: "a full URL as the path",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "http://10.0.0.1:1/m" }),
      want: /prometheus.io\/path .* is a URL, not a path/,
    },
    {
      name: "a path with a comma (a second target in the comma form)",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "/a,http://10.0.0.1/m" }),
      want: /is not a path/,
    },
    {
      name: "a path with a fragment",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "/m#x" }),
      want: /is not a path/,
    },
    {
      name: "a path with spaces and a line break",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "/m x\nHost: a" }),
      want: /is not a path/,
    },
    {
      name: "a dot-dot segment",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "/a/../admin" }),
      want: /holds a \. or \.\. segment/,
    },
    {
      name: "an encoded dot-dot segment",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": "/a/%2e%2E/admin" }),
      want: /segment/,
    },
    {
      name: "a path longer than 1024 characters, quoted short",
      annotations: scrape({ "prometheus.io/port": "9100", "prometheus.io/path": `/${"a".repeat(5000)}` }),
      want: /^annotation prometheus.io\/path "\/a{63}"… is longer than 1024 characters$/,
    },
    { name: "scheme ftp", annotations: scrape({ "prometheus.io/scheme": "ftp" }), want: /is not http or https/ },
    {
      name: "empty port, path and scheme: unset",
      annotations: scrape({ "prometheus.io/port": " ", "prometheus.io/path": "", "prometheus.io/scheme": "" }),
      want: ["http://:8080/metrics"],
    },
    { name: "scheme in capitals", annotations: scrape({ "prometheus.io/scheme": "HTTPS" }), want: /not http or https/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = show(discover(DiscoveryMode.Annotations, podWith(c.annotations)));
      if (c.want instanceof RegExp) assert.match(typeof got === "string" ? got : JSON.stringify(got), c.want);
      else assert.deepEqual(got, c.want);
    });
  }

  it("no port and nothing declared: the scheme's own port, as Prometheus' pod role", () => {
    const bare = [{ name: "app", image: "app" }];
    assert.deepEqual(show(discover(DiscoveryMode.Annotations, podWith(scrape(), bare))), ["http://:80/metrics"]);
    assert.deepEqual(
      show(discover(DiscoveryMode.Annotations, podWith(scrape({ "prometheus.io/scheme": "https" }), bare))),
      ["https://:443/metrics"],
    );
  });

  it("scrape false opts the pod out of listed targets too; Ports alone does not read it", () => {
    const off = podWith({ "prometheus.io/scrape": "false" }, [
      { ...APP, ports: [{ name: "metrics", containerPort: 9090 }] },
    ]);
    assert.deepEqual(discover(DiscoveryMode.Auto, off), { kind: "targets", targets: [], optedOut: true });
    assert.deepEqual(show(discover(DiscoveryMode.Ports, off)), ["http://:9090/metrics"]);
    const r = renderSidecar(pusher("mp", { scrape: { targets: [{ port: 8080 }], discovery: "Auto" } }), defaults, {
      targets: [],
      optedOut: true,
    });
    assert.deepEqual(r.scrapeTargets, []);
    assert.equal(
      r.container.env?.find((e) => e.name === "SCRAPE_TARGETS"),
      undefined,
      "the pusher still starts, with its own metrics only",
    );
    assert.equal(checkSidecar(r.container, "builds"), undefined);
  });
});

describe("discover: named ports", () => {
  const containers: V1Container[] = [
    {
      name: "app",
      image: "app",
      ports: [
        { name: "http", containerPort: 8080 },
        { name: "metrics", containerPort: 9090 },
        { name: "metrics-udp", containerPort: 9091, protocol: "UDP" },
      ],
    },
    { name: "exporter", image: "exporter", ports: [{ name: "http-metrics", containerPort: 9100 }] },
    { name: "statsd", image: "statsd", ports: [{ name: "metrics", containerPort: 9125, protocol: "UDP" }] },
    { name: SIDECAR_CONTAINER_NAME, image: "pusher", ports: [{ name: "metrics", containerPort: 9999 }] },
  ];
  const init: V1Container[] = [
    { name: "migrate", image: "m", ports: [{ name: "metrics", containerPort: 7000 }] },
    { name: "proxy", image: "p", restartPolicy: "Always", ports: [{ name: "metrics", containerPort: 15090 }] },
  ];

  it("takes metrics and http-metrics over TCP from the app's containers and native sidecars", () => {
    assert.deepEqual(show(discover(DiscoveryMode.Ports, podWith({}, containers, init))), [
      "http://:9090/metrics",
      "http://:9100/metrics",
      "http://:15090/metrics",
    ]);
  });

  it("Auto: annotations first, then named ports, each port once (the annotation's path wins on a shared port)", () => {
    const d = discover(
      DiscoveryMode.Auto,
      podWith(scrape({ "prometheus.io/port": "9090,8080", "prometheus.io/path": "/custom" }), containers, init),
    );
    assert.deepEqual(show(d), [
      "http://:9090/custom",
      "http://:8080/custom",
      "http://:9100/metrics",
      "http://:15090/metrics",
    ]);
  });

  it("None and an unset mode read nothing", () => {
    for (const mode of [undefined, DiscoveryMode.None]) {
      assert.deepEqual(discover(mode, podWith(scrape({ "prometheus.io/port": "1" }), containers)), {
        kind: "targets",
        targets: [],
        optedOut: false,
      });
    }
  });

  it("a pod declaring thousands of metrics ports is refused after the cap, not scanned", () => {
    const many = Array.from({ length: 5000 }, (_, i) => ({
      name: `c${i}`,
      image: "x",
      ports: [{ name: "metrics", containerPort: 1000 + i }],
    }));
    assert.match(show(discover(DiscoveryMode.Ports, podWith({}, many))) as string, /more than 16 metrics endpoints/);
  });
});

describe("discover on hostile input", () => {
  it("never throws, and every target it returns renders a sidecar the pusher accepts on 127.0.0.1", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom("true", "false", "http", "https", "8080", "8080,9090", "/metrics", "/a/../b", "65535", "0"),
    );
    const annotations = fc.dictionary(
      fc.constantFrom("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path", "prometheus.io/scheme"),
      text,
    );
    const port = fc.record({
      name: fc.option(fc.constantFrom("metrics", "http-metrics", "http"), { nil: undefined }),
      containerPort: fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.constant(Number.NaN)),
      protocol: fc.option(fc.constantFrom("TCP", "UDP", "SCTP"), { nil: undefined }),
    });
    const containers = fc.array(
      fc.record({
        name: fc.constantFrom("a", "b", SIDECAR_CONTAINER_NAME),
        image: fc.constant("x"),
        ports: fc.array(port),
      }),
      { maxLength: 4 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(DiscoveryMode)), annotations, containers, (mode, a, cs) => {
        const d = discover(mode, podWith(a, cs));
        if (d.kind === "invalid") {
          assert.ok(d.message.length < 400, d.message);
          return;
        }
        const r = renderSidecar(pusher("mp", { scrape: { discovery: mode } }), defaults, d);
        assert.ok(r.scrapeTargets.length <= MAX_SCRAPE_TARGETS);
        assert.equal(checkSidecar(r.container, "builds"), undefined, JSON.stringify(r.scrapeTargets));
      }),
      { numRuns: 3000 },
    );
  });
});
