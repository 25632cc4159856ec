import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import fastJsonPatch from "fast-json-patch";
import pino from "pino";
import { Registry } from "prom-client";
import type { V1Pod } from "@kubernetes/client-node";
import { Annotations } from "../api/index.ts";
import { createAdmissionObserver } from "../admission.ts";
import type { EventRecorder } from "../events.ts";
import { createOperatorMetrics } from "../metrics.ts";
import { connect } from "node:net";
import { createAdmissionHandler, InFlightGate, MAX_BODY_BYTES, pemCertificates, RefuseReason } from "./server.ts";
import type { AdmissionDeps } from "./server.ts";
import { defaults, pod, pusher, settings } from "../inject/testdata.test-fixtures.ts";

const log = pino({ level: "silent" });

function recorder() {
  const calls: string[] = [];
  const messages: string[] = [];
  const r: EventRecorder = {
    emit: (t, _type, reason, message) => {
      calls.push(`${t.kind}/${t.name}:${reason}`);
      messages.push(message);
    },
    flush: async () => {},
    stop: async () => {},
  };
  return { r, calls, messages };
}

async function start(over: Partial<AdmissionDeps> = {}) {
  const registry = new Registry();
  const metrics = createOperatorMetrics(registry);
  const ev = recorder();
  const pushers = over.pushers ?? (() => [pusher("mp")]);
  const deps: AdmissionDeps = {
    observer: createAdmissionObserver({
      log,
      metrics,
      events: ev.r,
      pushers,
      // The controller's cache knows Deployment builder; nothing else.
      workloadOf: (namespace, p) =>
        p.metadata?.generateName === "builder-7d9f-"
          ? { apiVersion: "apps/v1", kind: "Deployment", namespace, name: "builder", uid: "d1" }
          : undefined,
    }),
    pushers,
    namespaceLabels: () => ({}),
    defaults: () => defaults,
    settings,
    ...over,
  };
  const server: Server = createServer(createAdmissionHandler(deps));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url, registry, metrics, events: ev.calls, messages: ev.messages };
}

function review(request: Record<string, unknown>) {
  return JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request });
}
function podCreate(p: V1Pod, extra: Record<string, unknown> = {}) {
  return review({
    uid: "u-1",
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    operation: "CREATE",
    namespace: "builds",
    object: p,
    ...extra,
  });
}

async function post(url: string, body: string, path = "/mutate-v1-pod") {
  const res = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  return {
    status: res.status,
    json: text
      ? (JSON.parse(text) as {
          response?: { uid: string; allowed: boolean; patch?: string; patchType?: string; warnings?: string[] };
        })
      : undefined,
  };
}

async function counter(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await registry.getMetricsAsJSON()).flatMap((m) =>
    m.values.map((v) => ({ ...v, metricName: (v as { metricName?: string }).metricName ?? m.name })),
  );
  const v = values.find(
    (x) => x.metricName === name && Object.entries(labels).every(([k, val]) => x.labels[k] === val),
  );
  return v?.value ?? 0;
}

describe("admission server", () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => (s = await start()));
  after(() => s.server.close());

  const malformed = [
    { name: "empty body", body: "" },
    { name: "not JSON", body: "{nope" },
    { name: "a JSON array", body: "[]" },
    { name: "a JSON string", body: '"AdmissionReview"' },
    {
      name: "wrong apiVersion",
      body: JSON.stringify({ apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", request: { uid: "x" } }),
    },
    { name: "no request", body: JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }) },
    { name: "request is null", body: review(null as unknown as Record<string, unknown>) },
    { name: "no uid", body: review({ kind: { kind: "Pod" } }) },
    { name: "numeric uid", body: review({ uid: 7 }) },
  ];
  for (const c of malformed) {
    it(`answers 400 to a malformed body: ${c.name}`, async () => {
      const r = await post(s.url, c.body);
      assert.equal(r.status, 400);
    });
  }

  it("answers 404/405 outside POST /mutate-v1-pod", async () => {
    assert.equal((await post(s.url, "{}", "/other")).status, 404);
    assert.equal((await fetch(`${s.url}/mutate-v1-pod`)).status, 405);
  });

  it("answers 413 to a body over the limit, and keeps serving", async () => {
    const r = await post(s.url, " ".repeat(9 * 1024 * 1024));
    assert.equal(r.status, 413);
    assert.equal((await post(s.url, podCreate(pod()))).status, 200);
  });

  it("admits a review of the largest size the apiserver sends (3 MiB Pod + metadata)", async () => {
    const p = pod();
    p.metadata!.annotations = { big: "x".repeat(3 * 1024 * 1024) };
    const body = podCreate(p);
    assert.ok(body.length > 3 * 1024 * 1024 && body.length < MAX_BODY_BYTES);
    assert.equal((await post(s.url, body)).status, 200);
  });

  it("refuses a declared Content-Length over the limit with 413 before the body is sent", async () => {
    const { port } = new URL(s.url);
    const socket = connect(Number(port), "127.0.0.1");
    const answer = await new Promise<string>((resolve, reject) => {
      let got = "";
      socket.on("data", (d: Buffer) => (got += d.toString()));
      socket.on("end", () => resolve(got));
      socket.on("error", reject);
      // Headers only: an answer that needed the body would never come.
      socket.write(
        `POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`,
      );
    });
    socket.destroy();
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /connection: close/i);
  });

  it("cuts off a chunked body at the limit while it streams", async () => {
    const { port } = new URL(s.url);
    const socket = connect(Number(port), "127.0.0.1");
    let sent = 0;
    const answer = await new Promise<string>((resolve) => {
      let got = "";
      socket.on("data", (d: Buffer) => (got += d.toString()));
      socket.on("close", () => resolve(got));
      socket.on("error", () => {});
      socket.write("POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
      const chunk = `10000\r\n${" ".repeat(0x10000)}\r\n`;
      const pump = () => {
        // Up to twice the limit; the server must answer and close long before.
        while (sent < 2 * MAX_BODY_BYTES && !got) {
          sent += 0x10000;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
      };
      pump();
    });
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.ok(sent < 2 * MAX_BODY_BYTES, `cut off after ${sent} bytes`);
    assert.equal(
      (await counter(s.registry, "metrics_pusher_operator_webhook_refused_total", { reason: "TooLarge" })) >= 2,
      true,
    );
  });

  it("cuts off a body that does not complete in time with 408 (slowloris)", async () => {
    const slow = await start({
      limits: {
        maxBodyBytes: 1024,
        smallBodyBytes: 512,
        maxInFlight: 2,
        maxLargeBytesInFlight: 1024,
        bodyTimeoutMs: 300,
      },
    });
    const { port } = new URL(slow.url);
    const socket = connect(Number(port), "127.0.0.1");
    const started = performance.now();
    const answer = await new Promise<string>((resolve) => {
      let got = "";
      socket.on("data", (d: Buffer) => (got += d.toString()));
      socket.on("close", () => resolve(got));
      socket.on("error", () => {});
      socket.write("POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.ok(performance.now() - started < 2500);
    assert.equal(
      await counter(slow.registry, "metrics_pusher_operator_webhook_refused_total", { reason: "TooSlow" }),
      1,
    );
    slow.server.close();
  });

  it("answers 503 at once beyond the in-flight bound, and serves again after", async () => {
    const small = await start({
      limits: {
        maxBodyBytes: 1024,
        smallBodyBytes: 512,
        maxInFlight: 2,
        maxLargeBytesInFlight: 1024,
        bodyTimeoutMs: 60_000,
      },
    });
    const { port } = new URL(small.url);
    const held = [connect(Number(port), "127.0.0.1"), connect(Number(port), "127.0.0.1")];
    try {
      // Two requests whose bodies never finish hold both places.
      for (const c of held) c.write("POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
      await new Promise((r) => setTimeout(r, 200));
      const started = performance.now();
      const r = await post(small.url, podCreate(pod()));
      assert.equal(r.status, 503);
      assert.ok(performance.now() - started < 1000);
      assert.equal(
        await counter(small.registry, "metrics_pusher_operator_webhook_refused_total", { reason: "Overloaded" }),
        1,
      );
    } finally {
      for (const c of held) c.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await post(small.url, podCreate(pod()))).status, 200);
    small.server.close();
  });

  it("injects into a matching Pod: the patch applies to the pod", async () => {
    const p = pod({ generateName: true });
    const r = await post(s.url, podCreate(p));
    assert.equal(r.status, 200);
    assert.equal(r.json?.response?.uid, "u-1");
    assert.equal(r.json?.response?.allowed, true);
    assert.equal(r.json?.response?.patchType, "JSONPatch");
    const patch = JSON.parse(Buffer.from(r.json.response.patch!, "base64").toString()) as fastJsonPatch.Operation[];
    const out = fastJsonPatch.applyPatch(structuredClone(p), patch, true, false).newDocument;
    assert.match(out.metadata?.annotations?.[Annotations.injected] ?? "", /^mp@[0-9a-f]{16}$/);
    assert.ok(s.events.includes("Deployment/builder:Injected"), JSON.stringify(s.events));
    assert.ok(s.events.includes("MetricsPusher/mp:Injected"));
  });

  it("a forged review names no object the caches do not know, and its text is quoted", async () => {
    const forged = pod({ labels: { app: "builder" } });
    forged.metadata!.name = 'x"\nInjected by the cluster admin';
    forged.metadata!.ownerReferences = [
      { apiVersion: "apps/v1", kind: "ReplicaSet", name: "ghost-1", uid: "u", controller: true },
    ];
    const before = s.events.length;
    assert.equal((await post(s.url, podCreate(forged))).status, 200);
    assert.deepEqual(s.events.slice(before), ["MetricsPusher/mp:Injected"]);
    assert.match(s.messages.at(-1)!, /into Pod "x\\"\\nInjected by the cluster admin"$/);
  });

  const allowedUnchanged = [
    {
      name: "a non-Pod kind",
      body: review({
        uid: "u-1",
        kind: { group: "apps", version: "v1", kind: "Deployment" },
        operation: "CREATE",
        object: {},
      }),
    },
    {
      name: "a Pod UPDATE",
      body: review({ uid: "u-1", kind: { group: "", version: "v1", kind: "Pod" }, operation: "UPDATE", object: pod() }),
    },
    { name: "a non-matching Pod", body: podCreate(pod({ labels: { app: "web" } })) },
    { name: "an opted-out Pod", body: podCreate(pod({ annotations: { [Annotations.inject]: "false" } })) },
    { name: "a Pod whose object is null (internal error)", body: podCreate(null as unknown as V1Pod) },
    { name: "a Pod whose object is a string (internal error)", body: podCreate("pod" as unknown as V1Pod) },
    {
      name: "a Pod with containers: 42 (internal error)",
      body: podCreate({ metadata: { labels: { app: "builder" } }, spec: { containers: 42 } } as unknown as V1Pod),
    },
  ];
  for (const c of allowedUnchanged) {
    it(`allows ${c.name} unchanged`, async () => {
      const r = await post(s.url, c.body);
      assert.equal(r.status, 200);
      assert.equal(r.json?.response?.allowed, true);
      assert.equal(r.json?.response?.uid, "u-1");
      assert.equal(r.json?.response?.patch, undefined);
    });
  }

  it("sends no Events for a dry-run request, but still answers with the patch", async () => {
    const before = s.events.length;
    const r = await post(s.url, podCreate(pod(), { dryRun: true }));
    assert.ok(r.json?.response?.patch);
    assert.equal(s.events.length, before);
  });

  it("counts requests by result and skips by reason, and observes latency", async () => {
    assert.ok(
      (await counter(s.registry, "metrics_pusher_operator_webhook_requests_total", { result: "malformed" })) >=
        malformed.length,
    );
    assert.ok(
      (await counter(s.registry, "metrics_pusher_operator_webhook_requests_total", { result: "injected" })) >= 1,
    );
    assert.ok((await counter(s.registry, "metrics_pusher_operator_webhook_skips_total", { reason: "OptedOut" })) >= 1);
    assert.ok((await counter(s.registry, "metrics_pusher_operator_webhook_request_duration_seconds_count")) >= 1);
  });
});

describe("admission server internal errors", () => {
  const failures = [
    {
      name: "mutate throws",
      over: {
        mutate: () => {
          throw new Error("boom");
        },
      },
    },
    {
      name: "the informer store throws",
      over: {
        pushers: () => {
          throw new Error("store gone");
        },
      },
    },
    {
      name: "namespace lookup throws",
      over: {
        namespaceLabels: () => {
          throw new Error("ns");
        },
      },
    },
  ] satisfies Array<{ name: string; over: Partial<AdmissionDeps> }>;
  for (const c of failures) {
    it(`${c.name}: admits unchanged, logs, counts`, async () => {
      const s = await start(c.over);
      try {
        const r = await post(s.url, podCreate(pod()));
        assert.equal(r.status, 200);
        assert.deepEqual(r.json?.response, { uid: "u-1", allowed: true });
        assert.equal(await counter(s.registry, "metrics_pusher_operator_webhook_errors_total"), 1);
        assert.equal(
          await counter(s.registry, "metrics_pusher_operator_webhook_requests_total", { result: "error" }),
          1,
        );
      } finally {
        s.server.close();
      }
    });
  }

  it("adds the several-matches warning to the admission response", async () => {
    const s = await start({ pushers: () => [pusher("a"), pusher("b")] });
    try {
      const r = await post(s.url, podCreate(pod()));
      assert.equal(r.json?.response?.warnings?.length, 1);
      assert.match(r.json.response.warnings[0]!, /2 MetricsPushers select this pod \(a, b\); using a/);
      assert.ok(
        s.events.includes("MetricsPusher/a:MultipleMatches") && s.events.includes("MetricsPusher/b:MultipleMatches"),
      );
    } finally {
      s.server.close();
    }
  });
});

describe("InFlightGate", () => {
  const limits = {
    maxBodyBytes: 100,
    smallBodyBytes: 10,
    maxInFlight: 3,
    maxLargeBytesInFlight: 150,
    bodyTimeoutMs: 1000,
  };
  it("bounds requests in flight, and gives the place back on release (once)", () => {
    const g = new InFlightGate(limits);
    const a = g.enter()!;
    g.enter();
    g.enter();
    assert.equal(g.enter(), undefined);
    a.release();
    a.release();
    assert.equal(g.inFlight, 2);
    assert.ok(g.enter());
  });
  it("counts only bodies over smallBodyBytes against the byte bound; refuses over maxBodyBytes", () => {
    const g = new InFlightGate(limits);
    const a = g.enter()!;
    const b = g.enter()!;
    const c = g.enter()!;
    assert.equal(a.reserve(10), undefined);
    assert.equal(g.largeBytes, 0);
    assert.equal(a.reserve(80), undefined);
    assert.equal(a.reserve(60), undefined, "a smaller total than reserved already costs nothing");
    assert.equal(g.largeBytes, 80);
    assert.equal(b.reserve(70), undefined);
    assert.equal(c.reserve(20), RefuseReason.Overloaded);
    assert.equal(c.reserve(5), undefined, "small bodies still pass");
    assert.equal(c.reserve(101), RefuseReason.TooLarge);
    a.release();
    assert.equal(g.largeBytes, 70);
    assert.equal(c.reserve(80), undefined);
  });
});

describe("pemCertificates", () => {
  const a = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
  const b = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----";
  it("splits a bundle, also one without a line break between its blocks", () => {
    assert.deepEqual(pemCertificates(`${a}\n${b}\n`), [a, b]);
    assert.deepEqual(pemCertificates(`${a}${b}`), [a, b]);
    assert.deepEqual(pemCertificates("no certificate"), []);
  });
});
