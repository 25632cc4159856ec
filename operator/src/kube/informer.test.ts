import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { CoreV1Api, KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import pino from "pino";
import { backoffMs } from "@metrics-pusher/pusher/backoff";
import { createInformer } from "./informer.ts";

const log = pino({ level: process.env.TEST_LOG ?? "silent" });

/** A tiny apiserver for ConfigMaps in namespace "ns": list, and watches that stream queued events. */
class FakeApiserver {
  server = http.createServer((req, res) => this.handle(req, res));
  objects = new Map<string, V1ConfigMap>();
  rv = 1;
  requests: string[] = [];
  /** Status codes to answer, in order, before behaving (consumed one per request of that kind). */
  failLists: number[] = [];
  failWatches: number[] = [];
  watchers = new Set<http.ServerResponse>();
  url = "";

  async start(port = 0) {
    await new Promise<void>((resolve) => this.server.listen(port, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop() {
    for (const w of this.watchers) w.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
  put(name: string, data: Record<string, string>) {
    const type = this.objects.has(name) ? "MODIFIED" : "ADDED";
    const obj: V1ConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name,
        namespace: "ns",
        resourceVersion: String(++this.rv),
        managedFields: [{ manager: "kubectl", operation: "Update" }],
      },
      data,
    };
    this.objects.set(name, obj);
    this.broadcast(type, obj);
  }
  remove(name: string) {
    const obj = this.objects.get(name);
    if (!obj) return;
    this.objects.delete(name);
    obj.metadata!.resourceVersion = String(++this.rv);
    this.broadcast("DELETED", obj);
  }
  /** Close every open watch, as the apiserver does when its request timeout elapses. */
  closeWatches() {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }
  private broadcast(type: string, object: unknown) {
    for (const w of this.watchers) w.write(JSON.stringify({ type, object }) + "\n");
  }
  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const u = new URL(req.url ?? "/", "http://x");
    const watch = u.searchParams.get("watch") === "true";
    this.requests.push(
      `${watch ? "WATCH" : "LIST"} ${u.pathname}${watch ? ` rv=${u.searchParams.get("resourceVersion")}` : ""}`,
    );
    if (u.pathname !== "/api/v1/namespaces/ns/configmaps") {
      res.writeHead(404).end();
      return;
    }
    const fail = watch ? this.failWatches.shift() : this.failLists.shift();
    if (fail !== undefined) {
      res.writeHead(fail, { "content-type": "application/json" });
      res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: fail }));
      return;
    }
    if (!watch) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMapList",
          metadata: { resourceVersion: String(this.rv) },
          items: [...this.objects.values()],
        }),
      );
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.flushHeaders();
    const since = Number(u.searchParams.get("resourceVersion") ?? "0");
    if (since < this.rv - 100) {
      res.end(JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } }) + "\n");
      return;
    }
    this.watchers.add(res);
    res.on("close", () => this.watchers.delete(res));
  }
}

function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "fake", user: "u" }],
    currentContext: "c",
  });
  return kc;
}

async function eventually(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops the informer and checks that its watch connection is closed too (none leaks). */
async function stopAndDrain(inf: { stop(): Promise<void> }) {
  await inf.stop();
  await eventually("no watch left open after stop()", () => currentApi.watchers.size === 0);
}
let currentApi: FakeApiserver;

function informerFor(api: FakeApiserver, extra: { onError?: (e: unknown) => void } = {}) {
  currentApi = api;
  const kc = kubeConfigFor(api.url);
  const core = kc.makeApiClient(CoreV1Api);
  return createInformer<V1ConfigMap>({
    kc,
    log,
    name: "configmaps",
    path: "/api/v1/namespaces/ns/configmaps",
    list: () => core.listNamespacedConfigMap({ namespace: "ns" }),
    backoffInitialMs: 20,
    backoffMaxMs: 100,
    ...extra,
  });
}

describe("the informers' restart backoff (500 ms to 30 s, jittered)", () => {
  const cases = [
    { name: "first attempt, no jitter", attempt: 0, random: 1, want: 500 },
    { name: "first attempt, most jitter", attempt: 0, random: 0, want: 250 },
    { name: "doubles", attempt: 3, random: 1, want: 4000 },
    { name: "capped", attempt: 10, random: 1, want: 30_000 },
    { name: "huge attempt stays capped", attempt: 5000, random: 1, want: 30_000 },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.equal(
        backoffMs(c.attempt, 500, 30_000, () => c.random),
        c.want,
      ),
    );
  }
});

describe("createInformer against a fake apiserver", () => {
  let api: FakeApiserver;
  before(async () => {
    api = new FakeApiserver();
    await api.start();
  });
  after(async () => api.stop());

  it("lists, syncs, then follows watch events", async () => {
    api.put("a", { k: "1" });
    api.put("b", { k: "2" });
    const inf = informerFor(api);
    const seen: string[] = [];
    inf.on("add", (o) => seen.push(`add ${o.metadata?.name}`));
    inf.on("update", (o) => seen.push(`update ${o.metadata?.name}`));
    inf.on("delete", (o) => seen.push(`delete ${o.metadata?.name}`));
    assert.equal(inf.hasSynced(), false);
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    assert.deepEqual(seen, ["add a", "add b"], "add callbacks run before hasSynced turns true");
    assert.deepEqual(
      inf
        .list("ns")
        .map((o) => o.metadata?.name)
        .sort(),
      ["a", "b"],
    );
    await eventually("watch open", () => api.watchers.size === 1);
    api.put("c", { k: "3" });
    api.put("a", { k: "9" });
    api.remove("b");
    await eventually("three watch events", () => seen.length === 5);
    assert.deepEqual(seen.slice(2), ["add c", "update a", "delete b"]);
    assert.equal(inf.get("ns", "a")?.data?.k, "9");
    assert.equal(inf.get("ns", "b"), undefined);
    await stopAndDrain(inf);
    api.objects.clear();
  });

  it("restarts after failed lists and watches (errors that stop client-node's informer)", async () => {
    api.put("x", { k: "1" });
    api.requests = [];
    api.failLists = [500, 403];
    api.failWatches = [500, 503];
    const errors: unknown[] = [];
    const inf = informerFor(api, { onError: (e) => errors.push(e) });
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    assert.equal(inf.get("ns", "x")?.data?.k, "1");
    await eventually("watch open after two failed watches", () => api.watchers.size === 1);
    assert.equal(errors.length, 4, `errors: ${errors.length}, requests: ${api.requests.join(", ")}`);
    assert.equal(inf.restarts(), 4);
    // The restarts after a failed watch resume from the listed resourceVersion instead of listing again.
    assert.equal(api.requests.filter((r) => r.startsWith("LIST")).length, 3, api.requests.join(", "));
    api.put("y", { k: "2" });
    await eventually("event after recovery", () => inf.get("ns", "y") !== undefined);
    await stopAndDrain(inf);
    api.objects.clear();
  });

  it("survives the apiserver going away and coming back on the same port", async () => {
    const port = Number(new URL(api.url).port);
    api.put("p", { k: "1" });
    const inf = informerFor(api);
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    await eventually("watch open", () => api.watchers.size === 1);
    await api.stop();
    const restartsBefore = inf.restarts();
    await new Promise((r) => setTimeout(r, 300)); // several refused connections meanwhile
    assert.ok(inf.restarts() > restartsBefore, "kept retrying while the server was down");
    const objects = api.objects;
    const rv = api.rv;
    api = new FakeApiserver();
    api.objects = objects;
    api.rv = rv;
    await api.start(port);
    currentApi = api;
    await eventually("watch reopened", () => api.watchers.size === 1);
    api.put("q", { k: "2" });
    await eventually("event after the server came back", () => inf.get("ns", "q") !== undefined);
    await stopAndDrain(inf);
    api.objects.clear();
  });

  it("relists after 410 Gone and reports objects deleted meanwhile", async () => {
    api.put("keep", { k: "1" });
    api.put("gone", { k: "1" });
    const deleted: string[] = [];
    const inf = informerFor(api);
    inf.on("delete", (o) => deleted.push(o.metadata!.name!));
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    await eventually("watch open", () => api.watchers.size === 1);
    // Lose the watch, then move far ahead so the stored resourceVersion is expired.
    api.failWatches = [500];
    api.closeWatches();
    api.objects.delete("gone");
    api.rv += 1000;
    api.requests = [];
    await eventually("delete seen through relist", () => deleted.includes("gone"));
    assert.ok(
      api.requests.some((r) => r.startsWith("LIST")),
      api.requests.join(", "),
    );
    assert.ok(inf.get("ns", "keep"));
    await stopAndDrain(inf);
    api.objects.clear();
  });

  it("does not restart after stop()", async () => {
    const inf = informerFor(api);
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    await eventually("watch open", () => api.watchers.size === 1);
    await stopAndDrain(inf);
    api.requests = [];
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(api.requests, []);
    assert.equal(inf.restarts(), 0);
  });

  it("stop() while the watch is still connecting closes that watch", async () => {
    const inf = informerFor(api);
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    await inf.stop(); // the watch request is in flight now
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(api.watchers.size, 0);
  });

  it("waitForSync honours an abort signal", async () => {
    api.failLists = [500, 500, 500, 500, 500, 500, 500, 500, 500, 500];
    const inf = informerFor(api);
    inf.start();
    await assert.rejects(inf.waitForSync(AbortSignal.timeout(100)));
    await stopAndDrain(inf);
    api.failLists = [];
  });

  it("keeps no managedFields in its cache, from the list or from the watch", async () => {
    api.put("mf-listed", { k: "1" });
    const inf = informerFor(api);
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(5000));
    await eventually("watch open", () => api.watchers.size === 1);
    api.put("mf-watched", { k: "2" });
    await eventually("the watched object is cached", () => inf.get("ns", "mf-watched") !== undefined);
    for (const name of ["mf-listed", "mf-watched"]) {
      const cached = inf.get("ns", name)!;
      assert.equal(cached.data?.k !== undefined, true);
      assert.equal(cached.metadata?.managedFields, undefined, `${name} still carries managedFields`);
    }
    await stopAndDrain(inf);
    api.remove("mf-listed");
    api.remove("mf-watched");
  });
});
