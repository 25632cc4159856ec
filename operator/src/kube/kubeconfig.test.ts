import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { CoreV1Api, HttpMethod, KubeConfig, RequestContext } from "@kubernetes/client-node";
import { createCA, issueLeaf } from "../webhook/certs.ts";
import { PooledKubeConfig } from "./kubeconfig.ts";

function load<T extends KubeConfig>(kc: T, server: string, extra: Record<string, unknown> = {}): T {
  kc.loadFromOptions({
    clusters: [{ name: "c", server, skipTLSVerify: false, caData: Buffer.from("CA one").toString("base64"), ...extra }],
    users: [{ name: "u", token: "t0k3n" }],
    contexts: [{ name: "ctx", cluster: "c", user: "u" }],
    currentContext: "ctx",
  });
  return kc;
}

async function dispatcherOf(kc: KubeConfig): Promise<unknown> {
  const ctx = new RequestContext("https://127.0.0.1:6443/api/v1/namespaces", HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  assert.equal(ctx.getHeaders()["Authorization"], "Bearer t0k3n", "authentication is still applied");
  return ctx.getDispatcher();
}

describe("PooledKubeConfig", () => {
  it("reuses one dispatcher across requests (client-node alone makes one per request)", async () => {
    const plain = load(new KubeConfig(), "https://127.0.0.1:6443");
    assert.notEqual(
      await dispatcherOf(plain),
      await dispatcherOf(plain),
      "client-node's own behaviour this works around",
    );
    const kc = load(new PooledKubeConfig(), "https://127.0.0.1:6443");
    const a = await dispatcherOf(kc);
    assert.ok(a !== undefined);
    assert.equal(await dispatcherOf(kc), a);
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => dispatcherOf(kc)));
    assert.deepEqual(new Set(concurrent), new Set([a]));
  });

  it("starts a new pool when the TLS options change (e.g. a rotated CA), and closes the old one", async () => {
    const kc = load(new PooledKubeConfig(), "https://127.0.0.1:6443");
    const a = await dispatcherOf(kc);
    load(kc, "https://127.0.0.1:6443", { caData: Buffer.from("CA two").toString("base64") });
    const b = await dispatcherOf(kc);
    assert.notEqual(a, b);
    assert.equal(await dispatcherOf(kc), b);
    assert.equal((a as { closed: boolean }).closed, true);
    assert.equal((b as { closed: boolean }).closed, false);
  });

  it("reuses its TLS connections across many API calls to a real HTTPS server", async () => {
    const now = new Date();
    const ca = await createCA(now, 3_600_000);
    const leaf = await issueLeaf(
      ca,
      { dnsNames: [], ipAddresses: ["127.0.0.1"], leafValidityMs: 3_600_000, caValidityMs: 3_600_000 },
      now,
    );
    let handshakes = 0;
    const server = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ kind: "NamespaceList", apiVersion: "v1", metadata: {}, items: [] }));
    });
    server.on("secureConnection", () => handshakes++);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const caData = Buffer.from(ca.cert).toString("base64");
      const CALLS = 20;
      const calls = async (kc: KubeConfig): Promise<number> => {
        const before = handshakes;
        const core = kc.makeApiClient(CoreV1Api);
        for (let i = 0; i < CALLS; i++) assert.equal((await core.listNamespace()).items.length, 0);
        return handshakes - before;
      };
      assert.equal(await calls(load(new KubeConfig(), url, { caData })), CALLS, "client-node alone: one per call");
      // undici's pool opens a second connection when a call comes in before the first connection is marked idle again
      // (seen with sequential awaits), then alternates between the two: a bound, not one handshake per call.
      const pooled = await calls(load(new PooledKubeConfig(), url, { caData }));
      assert.ok(pooled >= 1 && pooled <= 2, `pooled: ${pooled} TLS handshakes for ${CALLS} calls`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
