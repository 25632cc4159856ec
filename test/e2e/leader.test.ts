// Leader election and the resilient informer against a real kube-apiserver (no kube-controller-manager needed).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1ConfigMap } from "@kubernetes/client-node";
import pino from "pino";
import { createInformer } from "../../operator/src/kube/informer.ts";
import { LeaderElector } from "../../operator/src/kube/leader.ts";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { waitFor } from "../lib/wait.ts";

const log = pino({ level: process.env.TEST_LOG ?? "silent" });
const NS = "default";

describe("leader election on a real apiserver", { timeout: 240_000 }, () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => cp?.stop());

  function elector(
    name: string,
    identity: string,
    state: { leading: boolean; starts: number },
    durations = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 },
  ) {
    return new LeaderElector({
      kc: cp.kubeConfig,
      log,
      namespace: NS,
      name,
      identity,
      ...durations,
      onStartedLeading: () => {
        state.leading = true;
        state.starts++;
      },
      onStoppedLeading: () => {
        state.leading = false;
      },
    });
  }

  it("elects exactly one of two candidates, hands over at once on release", async (t) => {
    const coord = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    const a = { leading: false, starts: 0 };
    const b = { leading: false, starts: 0 };
    // A long lease: without the release, a takeover would need 10 s; with it, about one retry period.
    const long = { leaseDurationMs: 10_000, renewDeadlineMs: 6000, retryPeriodMs: 300 };
    const ea = elector("handover", "a", a, long);
    const eb = elector("handover", "b", b, long);
    ea.start();
    eb.start();
    await waitFor(() => a.leading || b.leading, { timeoutMs: 20_000, intervalMs: 100, message: "one leader" });
    // Several retry periods: the other candidate must stay a follower while the leader renews.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(Number(a.leading) + Number(b.leading), 1, "exactly one leader");
    assert.equal(ea.isLeader(), a.leading);
    const lease = await coord.readNamespacedLease({ name: "handover", namespace: NS });
    const [leader, follower, followerState] = a.leading ? [ea, eb, b] : [eb, ea, a];
    assert.equal(lease.spec?.holderIdentity, a.leading ? "a" : "b");
    assert.equal(lease.spec?.leaseDurationSeconds, 10);

    const stoppedAt = Date.now();
    await leader.stop();
    const released = await coord.readNamespacedLease({ name: "handover", namespace: NS });
    const leaderId = a.leading ? "b" : "a";
    assert.notEqual(released.spec?.holderIdentity, leaderId, "the stopped leader released the Lease");
    await waitFor(() => followerState.leading, { timeoutMs: 10_000, intervalMs: 100, message: "follower takes over" });
    const handoverMs = Date.now() - stoppedAt;
    // Released: the follower need not wait for the 10 s lease duration (it retries every 300-660 ms).
    assert.ok(handoverMs < 5000, `handover took ${handoverMs} ms`);
    t.diagnostic(`handover after release: ${handoverMs} ms (lease duration 10 s)`);
    const after = await coord.readNamespacedLease({ name: "handover", namespace: NS });
    assert.equal(after.spec?.holderIdentity, a.leading ? "a" : "b", "the former follower holds the Lease");
    assert.ok((after.spec?.leaseTransitions ?? 0) >= 1);
    await follower.stop();
  });

  it("takes over from a crashed leader only after the lease duration", async () => {
    const coord = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    // A leader that vanished without releasing: a Lease renewed "now" by someone who will never renew again.
    const now = new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
    await coord.createNamespacedLease({
      namespace: NS,
      body: {
        metadata: { name: "crash", namespace: NS },
        spec: {
          holderIdentity: "ghost",
          leaseDurationSeconds: 3,
          renewTime: now as unknown as Date,
          acquireTime: now as unknown as Date,
          leaseTransitions: 0,
        },
      },
    });
    const s = { leading: false, starts: 0 };
    const e = elector("crash", "survivor", s);
    const started = Date.now();
    e.start();
    await waitFor(() => s.leading, { timeoutMs: 15_000, intervalMs: 100, message: "survivor leads" });
    const waited = Date.now() - started;
    assert.ok(waited >= 2900, `took over after ${waited} ms, before the 3 s lease duration expired`);
    await e.stop();
  });
});

describe("resilient informer on a real apiserver", { timeout: 240_000 }, () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => cp?.stop());

  it("lists, watches, and sees creates, updates and deletes", async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "before" }, data: { a: "1" } } });
    const inf = createInformer<V1ConfigMap>({
      kc: cp.kubeConfig,
      log,
      name: "cm",
      path: `/api/v1/namespaces/${NS}/configmaps`,
      list: () => core.listNamespacedConfigMap({ namespace: NS }),
    });
    const events: string[] = [];
    inf.on("add", (o) => events.push(`add ${o.metadata?.name}`));
    inf.on("update", (o) => events.push(`update ${o.metadata?.name}`));
    inf.on("delete", (o) => events.push(`delete ${o.metadata?.name}`));
    inf.start();
    await inf.waitForSync(AbortSignal.timeout(10_000));
    assert.ok(inf.get(NS, "before"));
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "later" }, data: { a: "1" } } });
    await core.patchNamespacedConfigMap({
      namespace: NS,
      name: "later",
      body: [{ op: "replace", path: "/data/a", value: "2" }],
    });
    await core.deleteNamespacedConfigMap({ namespace: NS, name: "before" });
    await waitFor(() => events.includes("delete before") && inf.get(NS, "later")?.data?.a === "2", {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "watch events",
    });
    assert.ok(events.includes("add later"), events.join(", "));
    await inf.stop();
  });

  it("keeps retrying while access is forbidden (403 stops client-node's informer) and syncs once granted", async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: "late-rbac" } } });
    const kc = await cp.clientForServiceAccount(NS, "late-rbac");
    const limited = kc.makeApiClient(CoreV1Api);
    const errors: unknown[] = [];
    const inf = createInformer<V1ConfigMap>({
      kc,
      log,
      name: "cm-forbidden",
      path: `/api/v1/namespaces/${NS}/configmaps`,
      list: () => limited.listNamespacedConfigMap({ namespace: NS }),
      backoffInitialMs: 100,
      backoffMaxMs: 500,
      onError: (e) => errors.push(e),
    });
    inf.start();
    await waitFor(() => errors.length >= 3, { timeoutMs: 15_000, intervalMs: 100, message: "several failed attempts" });
    assert.equal(inf.hasSynced(), false);
    assert.equal((errors[0] as { code?: number }).code, 403);
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: "cm-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["list", "watch"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: "cm-reader" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "cm-reader" },
        subjects: [{ kind: "ServiceAccount", name: "late-rbac", namespace: NS }],
      },
    });
    await inf.waitForSync(AbortSignal.timeout(15_000));
    assert.ok(inf.restarts() >= 3);
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "seen-after-grant" } } });
    await waitFor(() => inf.get(NS, "seen-after-grant") !== undefined, {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "watch works after the grant",
    });
    await inf.stop();
  });
});
