// The real operator process, with the heap cap it ships with (NODE_OPTIONS from config/manager/deployment.yaml), on
// the real control plane, while several connections flood its webhook port with large bodies: valid AdmissionReviews
// just under and well over the body limit (with Content-Length), the same sent chunked, and many at once. Meanwhile
// legitimate reviews go on, straight to the webhook and as Pod creations through the kube-apiserver. Every legitimate
// review must be answered (HTTP 200, allowed) within the webhook's 5 s timeout, every pod created through the
// apiserver must be injected, and the process must neither exit nor run out of heap. The p99 is printed, not asserted.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request } from "node:https";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { bareSidecar, clients, createPusher, type Clients } from "./kube.ts";
import { applyCrds, createNamespace, ROOT } from "../lib/kube.ts";
import { OPERATOR_NAMESPACE, startOperator, type OperatorProcess } from "../lib/operator.ts";
import { waitFor } from "../lib/wait.ts";

const NS = "flood";
const FLOOD_MS = 20_000;
const FLOOD_CONNECTIONS = 8;
const WEBHOOK_TIMEOUT_MS = 5000;

/** NODE_OPTIONS of the manager container, as shipped. */
function shippedNodeOptions(): string {
  const doc = parseAllDocuments(readFileSync(join(ROOT, "config/manager/deployment.yaml"), "utf8"))[0]!.toJS() as {
    spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } };
  };
  const value = doc.spec.template.spec.containers[0]!.env.find((e) => e.name === "NODE_OPTIONS")?.value;
  assert.ok(value, "config/manager/deployment.yaml sets NODE_OPTIONS");
  return value;
}

function review(uid: string, pod: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      operation: "CREATE",
      namespace: NS,
      userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
      object: pod,
    },
  };
}

/** A valid review of a matching pod whose JSON is about `bytes` long, made of many small objects (env vars): the
 * shape that costs a parser the most heap per byte. */
function bigReview(bytes: number): Buffer {
  const env: Array<{ name: string; value: string }> = [];
  const per = JSON.stringify({ name: "V_000000", value: "x".repeat(16) }).length + 1;
  for (let i = 0; i < bytes / per; i++) env.push({ name: `V_${String(i).padStart(6, "0")}`, value: "x".repeat(16) });
  return Buffer.from(
    JSON.stringify(
      review("flood", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { generateName: "flood-", namespace: NS, labels: { app: "builder" } },
        spec: { containers: [{ name: "main", image: "busybox", env }] },
      }),
    ),
  );
}

interface Answer {
  status: number;
  body: string;
}

function post(
  url: string,
  body: Buffer,
  opts: { ca: string; agent: Agent; chunked?: boolean; timeoutMs: number },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        ca: opts.ca,
        agent: opts.agent,
        headers: opts.chunked
          ? { "content-type": "application/json", "transfer-encoding": "chunked" }
          : { "content-type": "application/json", "content-length": body.length },
        signal: AbortSignal.timeout(opts.timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (opts.chunked) {
      // 64 KiB at a time, as a streaming client would.
      for (let off = 0; off < body.length; off += 65536) req.write(body.subarray(off, off + 65536));
      req.end();
    } else req.end(body);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

describe(
  "webhook under a flood of large bodies (real operator process, shipped heap cap)",
  { timeout: 240_000 },
  () => {
    let cp: ControlPlane;
    let c: Clients;
    let op: OperatorProcess | undefined;
    let ca = "";
    const nodeOptions = shippedNodeOptions();

    before(async () => {
      cp = await startControlPlane({ controllers: false });
      c = clients(cp.kubeConfig);
      await applyCrds(cp);
      await createNamespace(cp.kubeConfig, OPERATOR_NAMESPACE);
      await createNamespace(cp.kubeConfig, NS);
      op = await startOperator({ cp, name: "op-flood", env: { NODE_OPTIONS: nodeOptions, LOG_LEVEL: "info" } });
      await op.waitReady();
      ca = await waitFor(
        async () => {
          const mwc = await cp.kubeConfig
            .makeApiClient(AdmissionregistrationV1Api)
            .readMutatingWebhookConfiguration({ name: "metrics-pusher" });
          const b = mwc.webhooks?.[0]?.clientConfig?.caBundle;
          return b ? Buffer.from(b, "base64").toString("utf8") : undefined;
        },
        { timeoutMs: 30_000, message: "the webhook configuration's caBundle" },
      );
      await createPusher(c, NS, "builders", {
        selector: { matchLabels: { app: "builder" } },
        remoteWrite: { url: "http://receiver.monitoring.svc:9090/api/v1/write" },
      });
      // The webhook sees the MetricsPusher before the flood starts.
      await waitFor(
        async () => {
          const r = await post(op!.webhookUrl, Buffer.from(JSON.stringify(review("probe", legitPod(0)))), {
            ca,
            agent: new Agent({ keepAlive: false }),
            timeoutMs: 5000,
          });
          return r.status === 200 && (JSON.parse(r.body) as { response: { patch?: string } }).response.patch;
        },
        { timeoutMs: 30_000, message: "a probe review injected" },
      );
    });
    after(async () => {
      await op?.stop();
      await cp?.stop();
    });

    function legitPod(i: number) {
      return {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `legit-${i}`, namespace: NS, labels: { app: "builder" } },
        spec: { containers: [{ name: "main", image: "busybox" }] },
      };
    }

    it(`answers every legitimate review within ${WEBHOOK_TIMEOUT_MS / 1000} s and stays up while ${FLOOD_CONNECTIONS} connections send large bodies for ${FLOOD_MS / 1000} s`, async (t) => {
      const pid = op!.pid;
      let exited: string | undefined;
      void op!.exited.then((e) => (exited = e.signal ?? `exit code ${e.code}`));
      // Just under the limit (parsed), well over it with Content-Length (refused unread) and chunked (cut off).
      const bodies = [bigReview(3.9 * 1024 * 1024), bigReview(7.5 * 1024 * 1024)];
      const floodStatus = new Map<string, number>();
      const count = (k: string) => floodStatus.set(k, (floodStatus.get(k) ?? 0) + 1);
      const stopAt = Date.now() + FLOOD_MS;

      const flood = Array.from({ length: FLOOD_CONNECTIONS }, async (_, w) => {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        for (let i = 0; Date.now() < stopAt; i++) {
          const body = bodies[(w + i) % bodies.length]!;
          try {
            const r = await post(op!.webhookUrl, body, { ca, agent, chunked: (w + i) % 3 === 2, timeoutMs: 20_000 });
            count(String(r.status));
          } catch (err) {
            count((err as NodeJS.ErrnoException).code ?? (err as Error).name);
          }
        }
        agent.destroy();
      });

      const heap: number[] = [];
      const sampler = (async () => {
        while (Date.now() < stopAt) {
          try {
            const text = await (await fetch(op!.metricsUrl, { signal: AbortSignal.timeout(3000) })).text();
            const m = /^metrics_pusher_operator_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
            if (m) heap.push(Number(m[1]));
          } catch {
            // a sample lost under the flood is not a failure
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      })();

      // Legitimate traffic 1: reviews straight to the webhook, one after another, on a connection of their own.
      const latencies: number[] = [];
      const failures: string[] = [];
      const direct = (async () => {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        for (let i = 1; Date.now() < stopAt; i++) {
          const started = performance.now();
          try {
            const r = await post(op!.webhookUrl, Buffer.from(JSON.stringify(review(`legit-${i}`, legitPod(i)))), {
              ca,
              agent,
              timeoutMs: WEBHOOK_TIMEOUT_MS,
            });
            const ms = performance.now() - started;
            const res =
              r.status === 200 ? (JSON.parse(r.body) as { response: { allowed: boolean; patch?: string } }) : undefined;
            if (!res?.response.allowed || !res.response.patch)
              failures.push(`review ${i}: HTTP ${r.status} ${r.body.slice(0, 100)}`);
            else latencies.push(ms);
          } catch (err) {
            failures.push(`review ${i}: ${(err as Error).message}`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        agent.destroy();
      })();

      // Legitimate traffic 2: Pods created through the kube-apiserver, which calls the webhook with its own 5 s
      // timeout and fails open: a pod without the sidecar is a review that was not answered in time.
      const bare: string[] = [];
      let created = 0;
      const viaApiserver = (async () => {
        for (let i = 1; Date.now() < stopAt; i++) {
          try {
            const pod = await c.core.createNamespacedPod({
              namespace: NS,
              body: {
                metadata: { name: `via-api-${i}`, labels: { app: "builder" } },
                spec: { containers: [{ name: "main", image: "busybox" }] },
              },
            });
            created++;
            if (bareSidecar(pod).length !== 1) bare.push(pod.metadata?.name ?? `via-api-${i}`);
          } catch (err) {
            failures.push(`pod via-api-${i}: ${(err as Error).message.split("\n")[0]}`);
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      })();

      await Promise.all([...flood, sampler, direct, viaApiserver]);

      const sorted = [...latencies].sort((a, b) => a - b);
      const stderrOom = op!.lines.filter((l) => /heap out of memory|Allocation failed|FATAL ERROR/i.test(l));
      const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
      t.diagnostic(
        `NODE_OPTIONS=${nodeOptions}; flood answers: ${JSON.stringify(Object.fromEntries(floodStatus))}; ` +
          `legitimate direct reviews: ${latencies.length} answered, ${failures.length} failed; ` +
          `p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? NaN).toFixed(1)} ms; ` +
          `pods via the apiserver: ${created} created, ${bare.length} without the sidecar; ` +
          `heap used: max ${heap.length ? mib(Math.max(...heap)) : "?"} MiB over ${heap.length} samples`,
      );
      assert.equal(
        exited,
        undefined,
        `the operator exited (${exited}); last lines:\n${op!.lines.slice(-10).join("\n")}`,
      );
      assert.equal(op!.pid, pid);
      assert.deepEqual(stderrOom, [], "no heap exhaustion in the operator's output");
      const health = await fetch(`${op!.probeUrl}/healthz`, { signal: AbortSignal.timeout(3000) });
      assert.equal(health.status, 200);
      assert.deepEqual(failures, [], "every legitimate review answered allowed with a patch within 5 s");
      assert.ok(latencies.length >= 10, `enough legitimate reviews to mean something (${latencies.length})`);
      assert.ok(sorted.at(-1)! < WEBHOOK_TIMEOUT_MS);
      assert.ok(created >= 5, `pods were created through the apiserver during the flood (${created})`);
      assert.deepEqual(bare, [], "every pod created through the apiserver during the flood got the sidecar");
      // The flood did reach the webhook (not refused before TLS, not all lost).
      assert.ok(
        [...floodStatus.keys()].some((k) => /^\d+$/.test(k)),
        JSON.stringify(Object.fromEntries(floodStatus)),
      );
    });
  },
);
