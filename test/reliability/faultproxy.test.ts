// The fault-injecting proxy is itself tested: a reliability suite is only as good as the faults it really injects.
import { strict as assert } from "node:assert";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { compress, encodeWriteRequest } from "../../pusher/src/remote-write/encode.ts";
import { hang, reset, respond, startFaultProxy, type FaultProxy } from "./lib/faultproxy.ts";

const body = Buffer.from(
  compress(
    encodeWriteRequest([
      {
        labels: [
          { name: "__name__", value: "x" },
          { name: "job", value: "j" },
        ],
        value: 1,
        timestampMs: 1_700_000_000_000,
      },
    ]),
  ),
);

async function post(url: string, timeoutMs = 3000): Promise<number | string> {
  try {
    const r = await fetch(url, { method: "POST", body, signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.status;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    return err.cause?.code ?? err.name;
  }
}

describe("fault proxy", () => {
  let upstream: Server;
  let upstreamHits = 0;
  let proxy: FaultProxy;
  before(async () => {
    upstream = createServer((req, res) => {
      upstreamHits++;
      req.resume();
      req.on("end", () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const a = upstream.address();
    proxy = await startFaultProxy({ upstream: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}` });
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  it("forwards, answers, resets, hangs and refuses as scripted, and records the samples", async () => {
    assert.equal(await post(proxy.remoteWriteUrl), 204);
    assert.equal(upstreamHits, 1);
    proxy.script(respond(429, { "retry-after": "2" }), reset, hang);
    assert.equal(await post(proxy.remoteWriteUrl), 429);
    assert.match(String(await post(proxy.remoteWriteUrl)), /ECONNRESET|UND_ERR_SOCKET|socket/i);
    assert.equal(await post(proxy.remoteWriteUrl, 500), "TimeoutError");
    await proxy.down();
    assert.equal(await post(proxy.remoteWriteUrl), "ECONNREFUSED");
    await proxy.up();
    assert.equal(await post(proxy.remoteWriteUrl), 204);
    assert.equal(upstreamHits, 2, "only forwarded requests reach upstream");
    assert.deepEqual(
      proxy.requests.map((r) => r.action),
      ["forward", "respond", "reset", "hang", "forward"],
    );
    assert.equal(proxy.delivered().length, 2);
    assert.equal(proxy.delivered()[0]!.timestampMs, 1_700_000_000_000);
  });
});
