// Failure and restart behaviour end to end: the webhook fails open while the operator is down and the controller
// repairs what was admitted meanwhile; restarts never inject twice nor re-roll healthy workloads; two replicas elect
// one leader, which alone writes status, and hand over when it stops.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ApiextensionsV1Api, CoordinationV1Api, type V1Pod } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import {
  appContainer,
  bareSidecar,
  clients,
  condition,
  createPusher,
  currentPods,
  deployment,
  eventsFor,
  getPusher,
  GROUP,
  PLURAL,
  VERSION,
  type Clients,
} from "./kube.ts";
import { applyCrds, createNamespace } from "../lib/kube.ts";
import { OPERATOR_NAMESPACE, operatorPorts, startOperator, type OperatorProcess } from "../lib/operator.ts";
import { waitFor } from "../lib/wait.ts";

const NS = "builds";
const RW_URL = "http://receiver.monitoring.svc:9090/api/v1/write";
const LEASE = "metrics-pusher-leader";

function revision(d: { metadata?: { annotations?: Record<string, string> } }): string | undefined {
  return d.metadata?.annotations?.["deployment.kubernetes.io/revision"];
}

describe("operator resilience end to end", { timeout: 480_000 }, () => {
  let cp: ControlPlane;
  let c: Clients;
  let opA: OperatorProcess | undefined;
  let opB: OperatorProcess | undefined;
  let portsA: Awaited<ReturnType<typeof operatorPorts>>;
  const envA = { ROLLOUT_MAX_PER_INTERVAL: "20", ROLLOUT_INTERVAL: "10s" };

  before(async () => {
    cp = await startControlPlane({ controllers: true });
    c = clients(cp.kubeConfig);
    await applyCrds(cp);
    await createNamespace(cp.kubeConfig, OPERATOR_NAMESPACE);
    await createNamespace(cp.kubeConfig, NS);
    portsA = await operatorPorts();
    opA = await startOperator({ cp, name: "op-a", ports: portsA, env: envA });
    await opA.waitReady();
    await createPusher(c, NS, "builders", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: RW_URL },
    });
    await waitFor(async () => condition(await getPusher(c, NS, "builders"), "Ready")?.status === "True", {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "MetricsPusher Ready",
    });
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment("steady", { app: "builder" }) });
    const { pods } = await currentPods(c, NS, "steady");
    assert.equal(bareSidecar(pods[0]!).length, 1, "steady is injected while the operator runs");
  });
  after(async () => {
    await opB?.stop();
    await opA?.stop();
    await cp?.stop();
  });

  it("fails open while the operator is down; started again, it repairs the Deployment made meanwhile", async (t) => {
    await opA!.stop();
    const started = Date.now();
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment("late", { app: "builder" }) });
    const { pods } = await currentPods(c, NS, "late", 90_000);
    const admittedMs = Date.now() - started;
    assert.equal(bareSidecar(pods[0]!).length, 0, "admitted without the sidecar (failurePolicy Ignore)");
    assert.ok(admittedMs < 60_000, `pod admitted after ${admittedMs} ms`);
    t.diagnostic(`with the operator down, the Deployment's pod was admitted (without sidecar) after ${admittedMs} ms`);

    const restartedAt = Date.now();
    opA = await startOperator({ cp, name: "op-a", ports: portsA, env: envA });
    await opA.waitReady();
    const repaired = await waitFor(
      async () => {
        const cur = await currentPods(c, NS, "late");
        return bareSidecar(cur.pods[0]!).length === 1 ? cur : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 100, message: "late rolled to pods with the sidecar" },
    );
    assert.equal(revision(repaired.rs), "2", "rolled exactly once");
    t.diagnostic(`repaired ${Date.now() - restartedAt} ms after the operator was started again`);
    const evs = await eventsFor(c, NS, "Deployment", "late");
    const drift = evs.find((e) => e.reason === "DriftRepaired");
    assert.ok(drift, `DriftRepaired Event on Deployment late: ${JSON.stringify(evs)}`);
    assert.equal(drift.type, "Warning");
    assert.match(drift.message, /without the metrics-pusher sidecar/);
    const steady = await c.apps.readNamespacedDeployment({ namespace: NS, name: "steady" });
    assert.equal(revision(steady), "1", "the healthy Deployment was not restarted");
    const mp = await waitFor(
      async () => {
        const p = await getPusher(c, NS, "builders");
        return p.status?.matchedWorkloads === 2 && p.status?.updatedWorkloads === 2 ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "status counts both Deployments as updated" },
    );
    assert.equal(condition(mp, "UpToDate")?.status, "True");
  });

  it("restarting the operator never injects twice nor re-rolls anything", async () => {
    const generations = async () =>
      Promise.all(
        ["steady", "late"].map(
          async (name) => (await c.apps.readNamespacedDeployment({ namespace: NS, name })).metadata?.generation,
        ),
      );
    const before = await generations();
    await opA!.stop();
    opA = await startOperator({ cp, name: "op-a", ports: portsA, env: envA });
    await opA.waitReady();
    const pod: V1Pod = {
      metadata: { name: "after-restart", labels: { app: "builder" } },
      spec: { containers: [appContainer()] },
    };
    const created = await c.core.createNamespacedPod({ namespace: NS, body: pod });
    assert.equal(bareSidecar(created).length, 1);
    // A finished reconcile of the only MetricsPusher has applied whatever it decided: a stamp would show as a new
    // Deployment generation (the apiserver bumps it synchronously on a template change).
    await waitFor(
      async () => {
        const text = await (await fetch(opA!.metricsUrl)).text();
        return (
          Number(
            /^controller_runtime_reconcile_total\{controller="metricspusher",result="success"\} (\d+)/m.exec(
              text,
            )?.[1] ?? 0,
          ) >= 1
        );
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "the restarted operator reconciled builders" },
    );
    assert.deepEqual(await generations(), before, "no Deployment template changed");
    for (const name of ["steady", "late"]) {
      const { pods } = await currentPods(c, NS, name);
      for (const p of pods) assert.equal(bareSidecar(p).length, 1, `${p.metadata?.name} has exactly one sidecar`);
    }
  });

  it("a new default pusher image re-stamps the workloads, at most ROLLOUT_MAX_PER_INTERVAL per ROLLOUT_INTERVAL", async (t) => {
    await opA!.stop();
    Object.assign(envA, {
      PUSHER_IMAGE: "ghcr.io/metrics-pusher/pusher:9.9.9",
      ROLLOUT_MAX_PER_INTERVAL: "1",
      ROLLOUT_INTERVAL: "5s",
    });
    opA = await startOperator({ cp, name: "op-a", ports: portsA, env: envA });
    await opA.waitReady();
    const limited = await waitFor(
      async () => {
        const p = await getPusher(c, NS, "builders");
        return condition(p, "UpToDate")?.reason === "RolloutRateLimited" ? p : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 50,
        message: "status UpToDate False / RolloutRateLimited while the second workload waits",
      },
    );
    assert.match(condition(limited, "UpToDate")?.message ?? "", /1 of 2 matching workloads updated/);
    const rolledAt: Record<string, number> = {};
    await waitFor(
      async () => {
        for (const name of ["steady", "late"]) {
          if (rolledAt[name]) continue;
          const { pods } = await currentPods(c, NS, name);
          if (bareSidecar(pods[0]!)[0]?.image === "ghcr.io/metrics-pusher/pusher:9.9.9") rolledAt[name] = Date.now();
        }
        return Object.keys(rolledAt).length === 2;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: "both Deployments run the new image" },
    );
    const gapMs = Math.abs(rolledAt.steady! - rolledAt.late!);
    t.diagnostic(`second rollout ${gapMs} ms after the first (limit 1 per 5s)`);
    assert.ok(gapMs >= 3500, `the two rollouts were ${gapMs} ms apart`);
    const stamps = opA.records().filter((r) => r.action === "stamp" && typeof r.workload === "string");
    assert.equal(stamps.length, 2, JSON.stringify(stamps));
    await waitFor(async () => condition(await getPusher(c, NS, "builders"), "UpToDate")?.status === "True", {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "UpToDate True again",
    });
  });

  it("two replicas elect one leader; only the leader writes status; the other takes over when it stops", async (t) => {
    const coord = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    const holder = async () =>
      (await coord.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE })).spec?.holderIdentity ?? "";
    await waitFor(async () => (await holder()).startsWith("op-a_"), {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "op-a holds the Lease",
    });
    // A second webhook configuration for replica B: the apiserver calls both webhooks for every pod, so this also
    // shows that a second injector pass changes nothing.
    const b = await startOperator({ cp, name: "op-b", env: { ...envA, WEBHOOK_CONFIG_NAME: "metrics-pusher-b" } });
    opB = b;
    await b.waitReady();
    const pod = await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: "two-webhooks", labels: { app: "builder" } }, spec: { containers: [appContainer()] } },
    });
    assert.equal(bareSidecar(pod).length, 1, "two webhook passes inject once");

    await createPusher(c, NS, "second", { selector: { matchLabels: { app: "second" } }, remoteWrite: { url: RW_URL } });
    await waitFor(async () => (await getPusher(c, NS, "second")).status?.conditions?.length, {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "status of the new MetricsPusher written",
    });
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok((await holder()).startsWith("op-a_"), "op-a still leads");
    const statusWriters = (op: OperatorProcess) =>
      op.records().filter((r) => r.msg === "Status updated" && r.metricspusher === `${NS}/second`).length;
    assert.ok(statusWriters(opA!) >= 1, "the leader wrote the status");
    assert.equal(statusWriters(b), 0, "the follower wrote no status");
    assert.equal(b.records().filter((r) => r.msg === "Became leader").length, 0);

    await opA!.stop();
    opA = undefined;
    const stoppedAt = Date.now();
    await waitFor(async () => (await holder()).startsWith("op-b_"), {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "op-b takes over the Lease",
    });
    t.diagnostic(`op-b took over ${Date.now() - stoppedAt} ms after op-a stopped`);
    // The new leader reconciles: a change to the MetricsPusher shows up in status, written by op-b.
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment("second", { app: "second" }) });
    await waitFor(async () => (await getPusher(c, NS, "second")).status?.matchedWorkloads === 1, {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "op-b counts the new Deployment",
    });
    // The log line follows the status patch and reaches us through a pipe: wait for it rather than race it.
    await waitFor(() => statusWriters(b) >= 1, {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "op-b wrote the status after taking over (its 'Status updated' log line)",
    });
  });

  it("uninstalling (CRD deleted, operator stopped right after) never leaves MetricsPushers stuck on the finalizer", async (t) => {
    const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
    const leader = opB!;
    const pushersBefore = (await c.custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as { items: unknown[] };
    assert.ok(pushersBefore.items.length >= 2, "MetricsPushers with finalizers exist");
    const started = Date.now();
    // kubectl delete -k config/default deletes the CRD before the operator's Deployment (kustomize order).
    await ext.deleteCustomResourceDefinition({ name: "metricspushers.metricspusher.dev" });
    await leader.stop();
    opB = undefined;
    await waitFor(
      async () => {
        try {
          await ext.readCustomResourceDefinition({ name: "metricspushers.metricspusher.dev" });
          return false;
        } catch (err) {
          return (err as { code?: number }).code === 404;
        }
      },
      { timeoutMs: 60_000, intervalMs: 100, message: "CRD deleted" },
    );
    const how = leader
      .records()
      .filter((r) => typeof r.msg === "string" && /Finalizer removed|removed finalizers/.test(r.msg))
      .map((r) => r.msg);
    t.diagnostic(`finalizers released by the stopping leader: ${JSON.stringify(how)}`);
    assert.ok(how.length > 0, "the stopping leader released the finalizers");
    t.diagnostic(
      `CRD and ${pushersBefore.items.length} MetricsPushers gone ${Date.now() - started} ms after the uninstall began`,
    );
  });
});
