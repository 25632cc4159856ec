import { describe, it } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { HttpMethod, KubeConfig, RequestContext } from "@kubernetes/client-node";
import { PooledKubeConfig } from "./kubeconfig.ts";

function load<T extends KubeConfig>(kc: T, server: string, extra: Record<string, unknown> = {}): T {
  kc.loadFromOptions({
    clusters: [{ name: "c", server, skipTLSVerify: false, ...extra }],
    users: [{ name: "u", token: "t0k3n" }],
    contexts: [{ name: "ctx", cluster: "c", user: "u" }],
    currentContext: "ctx",
  });
  return kc;
}

async function agentOf(kc: KubeConfig): Promise<unknown> {
  const ctx = new RequestContext("https://127.0.0.1:6443/api/v1/namespaces", HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  assert.equal(ctx.getHeaders()["Authorization"], "Bearer t0k3n", "authentication is still applied");
  return ctx.getAgent();
}

describe("PooledKubeConfig", () => {
  it("reuses one keep-alive HTTPS agent across requests (client-node alone makes one per request)", async () => {
    const plain = load(new KubeConfig(), "https://127.0.0.1:6443");
    assert.notEqual(await agentOf(plain), await agentOf(plain), "client-node's own behaviour this works around");
    const kc = load(new PooledKubeConfig(), "https://127.0.0.1:6443");
    const a = await agentOf(kc);
    assert.ok(a instanceof https.Agent);
    assert.equal(await agentOf(kc), a);
    assert.equal((a as https.Agent).options.keepAlive, true);
  });

  it("starts a new pool when the TLS options change (e.g. a rotated CA)", async () => {
    const kc = load(new PooledKubeConfig(), "https://127.0.0.1:6443", {
      caData: Buffer.from("CA one").toString("base64"),
    });
    const a = await agentOf(kc);
    load(kc, "https://127.0.0.1:6443", { caData: Buffer.from("CA two").toString("base64") });
    const b = await agentOf(kc);
    assert.notEqual(a, b);
    assert.equal(String((b as https.Agent).options.ca), "CA two");
  });
});
