// Every answer a receiver can give, injected by the proxy in front of a real Prometheus: the pusher takes the right
// action for each (wait for Retry-After, retry 5xx/timeouts/resets with the same batch, drop a 400/413 batch without
// retry), never dies, and counts each outcome in its own metrics. Unresolvable hosts and TLS failures too.
import { strict as assert } from "node:assert";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createCA, issueCert } from "../controlplane/pki.ts";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import {
  hang,
  labelKey,
  reset,
  respond,
  startFaultProxy,
  type FaultProxy,
  type RecordedRequest,
} from "./lib/faultproxy.ts";
import { startPusher, type PusherProcess } from "./lib/pusher.ts";
import { PM } from "./lib/pushermetrics.ts";
import { waitFor } from "../lib/wait.ts";

/** Identity of a request's payload: its first series and sample (a retried batch starts with the same one). */
function firstSample(r: RecordedRequest): string {
  const s = r.series?.[0];
  return s ? `${labelKey(s.labels)}@${s.samples[0]?.timestampMs}` : "";
}
function sampleCount(r: RecordedRequest): number {
  return (r.series ?? []).reduce((n, s) => n + s.samples.length, 0);
}

describe("receiver answers and network failures", () => {
  let prom: Receiver;
  let proxy: FaultProxy;
  let pusher: PusherProcess;
  let dir = "";

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "mp-answers-"));
    prom = await startPrometheus();
    proxy = await startFaultProxy({ upstream: prom.url });
    pusher = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: proxy.remoteWriteUrl,
        PUSH_INTERVAL: "1s",
        TIMEOUT: "1s",
        MAX_SAMPLES_PER_SEND: "5000",
      },
    });
    await waitFor(async () => (await pusher.metric(PM.sent)) > 0, {
      timeoutMs: 20_000,
      message: "a first successful push",
    });
  });
  after(async () => {
    await pusher?.stop();
    await proxy?.close();
    await prom?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Queues `actions`, waits until they were all used and one more request passed; returns those requests. */
  async function inject(...actions: Parameters<FaultProxy["script"]>): Promise<RecordedRequest[]> {
    const from = proxy.requests.length;
    proxy.script(...actions);
    await waitFor(() => proxy.requests.length >= from + actions.length + 1 && proxy.requests.at(-1)!.status !== 0, {
      timeoutMs: 30_000,
      message: `${actions.length} injected answers used and a following request answered (requests: ${proxy.requests
        .slice(from)
        .map((r) => `${r.action}:${r.status}`)
        .join(",")})`,
    });
    assert.equal(pusher.exitInfo, undefined, `the pusher died: ${JSON.stringify(pusher.exitInfo)}\n${pusher.tail()}`);
    return proxy.requests.slice(from);
  }

  async function counterDelta<T>(
    name: string,
    labels: Record<string, string>,
    during: () => Promise<T>,
  ): Promise<{ delta: number; result: T }> {
    const before = await pusher.metric(name, labels);
    const result = await during();
    const delta = await waitFor(async () => (await pusher.metric(name, labels)) - before || undefined, {
      timeoutMs: 5000,
      message: `${name}${JSON.stringify(labels)} to increase`,
    });
    return { delta, result };
  }

  it("429 with Retry-After in seconds: waits that long, then retries the same batch", async () => {
    const { delta, result: reqs } = await counterDelta(PM.retries, { reason: "rate_limited" }, () =>
      inject(respond(429, { "retry-after": "3" }, "slow down")),
    );
    const [limited, next] = reqs;
    assert.equal(limited!.status, 429);
    const waited = next!.atMs - limited!.atMs;
    assert.ok(waited >= 2900, `retried ${waited} ms after Retry-After: 3`);
    assert.equal(firstSample(next!), firstSample(limited!), "the retry does not carry the same batch");
    assert.ok(delta >= 1);
  });

  it("429 with Retry-After as an HTTP date: waits until then", async () => {
    const at = new Date(Date.now() + 5000);
    const { result: reqs } = await counterDelta(PM.retries, { reason: "rate_limited" }, () =>
      inject(respond(429, { "retry-after": at.toUTCString() })),
    );
    const [limited, next] = reqs;
    // The 429 goes to the next push (within a second); toUTCString keeps whole seconds: the date is >= 3 s after it.
    const notBefore = Math.floor(at.getTime() / 1000) * 1000;
    assert.ok(
      next!.atMs >= notBefore - 100,
      `retried at ${new Date(next!.atMs).toISOString()}, before Retry-After: ${at.toUTCString()}`,
    );
    assert.ok(
      next!.atMs - limited!.atMs >= 2000,
      `retried ${next!.atMs - limited!.atMs} ms after the 429: backoff instead of the date`,
    );
    assert.equal(firstSample(next!), firstSample(limited!));
  });

  it("a storm of 5xx: retried with backoff, same batch, delivered in the end", async () => {
    const storm = [503, 500, 502, 503, 504, 500, 503, 503].map((s) => respond(s, {}, "receiver overloaded"));
    const { delta, result: reqs } = await counterDelta(PM.retries, { reason: "server_error" }, () => inject(...storm));
    const failed = reqs.slice(0, storm.length);
    const delivered = reqs[storm.length]!;
    assert.ok(
      failed.every((r) => firstSample(r) === firstSample(failed[0]!)),
      "a 5xx batch was not retried as is",
    );
    assert.equal(
      firstSample(delivered),
      firstSample(failed[0]!),
      "the batch after the storm is not the one that failed",
    );
    assert.ok(delivered.status >= 200 && delivered.status < 300, `after the storm: ${delivered.status}`);
    assert.ok(delta >= storm.length, `retries counted ${delta}, expected >= ${storm.length}`);
    // Backoff: the storm takes longer than back-to-back retries would, yet the retries never wait past the cap.
    const span = delivered.atMs - failed[0]!.atMs;
    assert.ok(span >= 200, `8 retries within ${span} ms: no backoff`);
    const gaps = reqs.slice(1).map((r, i) => r.atMs - reqs[i]!.atMs);
    assert.ok(Math.max(...gaps) <= 10_000, `a retry waited ${Math.max(...gaps)} ms`);
  });

  for (const status of [400, 413]) {
    it(`${status} on one batch: dropped without retry, counted, logged with the status and body`, async () => {
      const body = `refused-by-test-${status}: out of order sample`;
      const { delta, result: reqs } = await counterDelta(PM.dropped, { reason: "rejected" }, () =>
        inject(respond(status, {}, body)),
      );
      const [refused, next] = reqs;
      assert.notEqual(firstSample(next!), firstSample(refused!), `the ${status} batch was retried`);
      assert.equal(
        delta,
        sampleCount(refused!),
        `dropped counter rose by ${delta}, the batch held ${sampleCount(refused!)}`,
      );
      const line = await waitFor(
        () => pusher.logs.find((l) => JSON.stringify(l).includes(`refused-by-test-${status}`)),
        {
          timeoutMs: 5000,
          message: `a log line quoting the ${status} body`,
        },
      );
      assert.ok(JSON.stringify(line).includes(String(status)), `log line lacks the status: ${JSON.stringify(line)}`);
    });
  }

  it("a receiver that does not answer within TIMEOUT: the request is abandoned and the batch retried", async () => {
    const { result: reqs } = await counterDelta(PM.retries, { reason: "timeout" }, () => inject(hang));
    const [hung, next] = reqs;
    assert.ok(next!.atMs - hung!.atMs >= 900, `next request ${next!.atMs - hung!.atMs} ms after the hang (TIMEOUT 1s)`);
    assert.equal(firstSample(next!), firstSample(hung!), "the timed-out batch was not retried");
  });

  it("a connection reset: the batch is retried", async () => {
    const { delta, result: reqs } = await counterDelta(PM.retries, { reason: "network" }, () => inject(reset, reset));
    assert.ok(delta >= 2, `resets counted ${delta}`);
    assert.equal(firstSample(reqs[2]!), firstSample(reqs[0]!));
    assert.ok(reqs[2]!.status >= 200 && reqs[2]!.status < 300);
  });

  it("nothing refused by Prometheus besides what the test injected", () => {
    const unexpected = proxy.requests.filter((r) => r.action === "forward" && r.status >= 400);
    assert.deepEqual(
      unexpected.map((r) => r.status),
      [],
    );
  });

  it("an unresolvable receiver host (.invalid): keeps running, ready, buffering, failures counted", async () => {
    const p = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: "http://receiver.invalid:9090/api/v1/write",
        PUSH_INTERVAL: "500ms",
        TIMEOUT: "1s",
        BUFFER_MAX_SAMPLES: "3000",
      },
    });
    try {
      await sleep(5000);
      assert.equal(p.exitInfo, undefined, `the pusher exited: ${p.tail()}`);
      const ready = await fetch(`http://127.0.0.1:${p.httpPort}/ready`);
      assert.equal(ready.status, 200, "/ready must not depend on the receiver");
      assert.ok((await p.metric(PM.retries, { reason: "network" })) > 0, "DNS failures not counted as network retries");
      assert.equal(await p.metric(PM.sent), 0);
      assert.ok((await p.metric(PM.buffered)) > 0, "nothing buffered");
      assert.ok(JSON.stringify(p.logs).match(/ENOTFOUND|EAI_AGAIN|getaddrinfo/), "no log line names the DNS failure");
    } finally {
      await p.stop();
    }
  });

  it("a TLS receiver with an untrusted certificate: refused, counted, never dies; with TLS_CA_FILE it delivers", async () => {
    const ca = await createCA({ commonName: "reliability receiver CA" });
    const leaf = await issueCert({ ca, commonName: "127.0.0.1", ips: ["127.0.0.1"] });
    const tlsProxy = await startFaultProxy({ upstream: prom.url, tls: leaf });
    const caFile = join(dir, "ca.pem");
    writeFileSync(caFile, ca.certPem);
    const untrusted = await startPusher({
      env: { PROMETHEUS_REMOTE_WRITE_URL: tlsProxy.remoteWriteUrl, PUSH_INTERVAL: "500ms", TIMEOUT: "1s" },
    });
    try {
      await sleep(4000);
      assert.equal(untrusted.exitInfo, undefined, `the pusher exited: ${untrusted.tail()}`);
      assert.equal(tlsProxy.requests.length, 0, "a request got through an untrusted TLS handshake");
      assert.ok(
        (await untrusted.metric(PM.retries, { reason: "network" })) > 0,
        "TLS failures not counted as network retries",
      );
      assert.match(
        JSON.stringify(untrusted.logs),
        /certificate|self.signed|UNABLE_TO_VERIFY|CERT_/i,
        "no log line names the TLS failure",
      );
    } finally {
      await untrusted.stop();
    }
    const trusted = await startPusher({
      env: {
        PROMETHEUS_REMOTE_WRITE_URL: tlsProxy.remoteWriteUrl,
        PUSH_INTERVAL: "500ms",
        TIMEOUT: "1s",
        TLS_CA_FILE: caFile,
      },
    });
    try {
      await waitFor(async () => (await trusted.metric(PM.sent)) > 0, {
        timeoutMs: 15_000,
        message: "delivery over TLS with TLS_CA_FILE",
      });
      assert.ok(tlsProxy.requests.some((r) => r.status === 204));
    } finally {
      await trusted.stop();
      await tlsProxy.close();
    }
  });
});
