// The operator's reach, on the real control plane (etcd + kube-apiserver + kube-controller-manager) with the operator
// as a local process:
// - hostNetwork pods are skipped (HostNetwork) unless they opt in;
// - a workload in an excluded namespace (kube-system, one labelled metricspusher.dev/injection: disabled) is never
//   patched, even when a MetricsPusher there selects it and its template carries a stamp to remove;
// - the apiserver does not call the webhook for kube-public (the namespaceSelector agrees with mutate());
// - the aggregated roles: `view` cannot create, update or delete a MetricsPusher (whoever can may send any Secret
//   of the namespace to a URL of their choosing), `edit` and `admin` can, and those can read Secrets already.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthorizationV1Api, RbacAuthorizationV1Api, type V1Pod } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { applyCrds, createNamespace, kubectl, ROOT } from "../lib/kube.ts";
import { OPERATOR_NAMESPACE, startOperator, type OperatorProcess } from "../lib/operator.ts";
import { waitFor } from "../lib/wait.ts";
import {
  bareSidecar,
  clients,
  createPusher,
  deployment,
  eventsFor,
  GROUP,
  PLURAL,
  VERSION,
  type Clients,
} from "./kube.ts";

const NS = "reach";
const RW_URL = "http://receiver.monitoring.svc:9090/api/v1/write";

describe("the operator's reach on the real control plane", { timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let c: Clients;
  let op: OperatorProcess | undefined;

  before(async () => {
    cp = await startControlPlane({ controllers: true });
    c = clients(cp.kubeConfig);
    await applyCrds(cp);
    await createNamespace(cp.kubeConfig, OPERATOR_NAMESPACE);
    await createNamespace(cp.kubeConfig, NS);
    await createNamespace(cp.kubeConfig, "disabled", { "metricspusher.dev/injection": "disabled" });
    op = await startOperator({ cp, name: "op-reach", env: { LEADER_ELECTION: "false", RESYNC_PERIOD: "5s" } });
    await op.waitReady();
    await createPusher(c, NS, "builders", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: RW_URL },
    });
    await waitFor(
      async () => {
        const p = await createPod(NS, `probe-${Date.now()}`, {});
        return bareSidecar(p).length === 1;
      },
      { timeoutMs: 30_000, message: "the webhook injecting (it knows the MetricsPusher)" },
    );
  });
  after(async () => {
    await op?.stop();
    await cp?.stop();
  });

  function createPod(namespace: string, name: string, annotations: Record<string, string>, hostNetwork = false) {
    return c.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, labels: { app: "builder" }, annotations },
        spec: { ...(hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: "main", image: "busybox" }] },
      },
    });
  }

  it("skips a hostNetwork pod with reason HostNetwork, and injects one annotated allow-host-network: true", async () => {
    const skippedBefore = await op!.metric("metrics_pusher_operator_webhook_skips_total", { reason: "HostNetwork" });
    const plain: V1Pod = await createPod(NS, "host-net", {}, true);
    assert.equal(bareSidecar(plain).length, 0, "a hostNetwork pod got the sidecar");
    const optedIn = await createPod(NS, "host-net-allowed", { "metricspusher.dev/allow-host-network": "true" }, true);
    assert.equal(bareSidecar(optedIn).length, 1, "an opted-in hostNetwork pod did not get the sidecar");
    assert.equal(
      await op!.metric("metrics_pusher_operator_webhook_skips_total", { reason: "HostNetwork" }),
      skippedBefore + 1,
    );
    const evs = await waitFor(
      async () => {
        const e = await eventsFor(c, NS, "MetricsPusher", "builders");
        return e.some((x) => x.reason === "InjectionSkipped" && /HostNetwork/.test(x.message)) ? e : undefined;
      },
      { timeoutMs: 15_000, message: "an InjectionSkipped Event naming HostNetwork on the MetricsPusher" },
    );
    assert.match(evs.find((x) => /HostNetwork/.test(x.message))!.message, /allow-host-network/);
  });

  for (const namespace of ["kube-system", "disabled"]) {
    it(`never patches a workload in ${namespace}, even one a MetricsPusher there selects and has stamped`, async () => {
      const d = deployment("stamped", { app: "builder" }, { "metricspusher.dev/config-hash": "0123456789abcdef" });
      await c.apps.createNamespacedDeployment({ namespace, body: d });
      const before = await c.apps.readNamespacedDeployment({ namespace, name: "stamped" });
      await createPusher(c, namespace, "mp", {
        selector: { matchLabels: { app: "builder" } },
        remoteWrite: { url: RW_URL },
      });
      // The controller reconciles it (finalizer added), then its deletion: without the guard, the deletion would
      // remove the stamp ("roll the sidecar away").
      await waitFor(
        async () => {
          const p = (await c.custom.getNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            name: "mp",
          })) as { metadata: { finalizers?: string[] } };
          return p.metadata.finalizers?.includes("metricspusher.dev/finalizer");
        },
        { timeoutMs: 30_000, message: `the controller reconciling ${namespace}/mp (finalizer)` },
      );
      await c.custom.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name: "mp",
      });
      await waitFor(
        async () => {
          const list = (await c.custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
          })) as {
            items: unknown[];
          };
          return list.items.length === 0;
        },
        { timeoutMs: 30_000, message: `${namespace}/mp deleted (finalizer removed by the controller)` },
      );
      // A resync or two more, in case anything would still come.
      await new Promise((r) => setTimeout(r, 6000));
      const after = await c.apps.readNamespacedDeployment({ namespace, name: "stamped" });
      assert.equal(
        after.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"],
        "0123456789abcdef",
        "the stamp was removed",
      );
      assert.equal(after.metadata?.generation, before.metadata?.generation, "the Deployment's spec was changed");
      const managers = (after.metadata?.managedFields ?? []).map((m) => m.manager);
      assert.ok(!managers.includes("metrics-pusher-operator"), `patched by the operator: ${managers.join(", ")}`);
      assert.ok(
        op!.lines.some((l) => l.includes("Not patching") && l.includes(namespace)),
        "the operator logged the refusal",
      );
    });
  }

  it("the apiserver does not call the webhook for kube-public, as mutate() skips it", async () => {
    const requests = () => op!.metric("metrics_pusher_operator_webhook_requests_total");
    const before = await requests();
    await createPod(NS, `counted-${Date.now()}`, {});
    const counted = await requests();
    assert.equal(counted, before + 1, "a pod elsewhere reaches the webhook (the counter works)");
    await createPod("kube-public", "not-called", {});
    assert.equal(await requests(), counted, "the webhook was called for a pod in kube-public");
  });

  it("view cannot create, update or delete a MetricsPusher; edit and admin can, and can read Secrets already", async () => {
    await kubectl(cp, ["apply", "-f", join(ROOT, "config/rbac/aggregate_roles.yaml")]);
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    for (const role of ["view", "edit", "admin"])
      await rbac.createNamespacedRoleBinding({
        namespace: NS,
        body: {
          metadata: { name: `user-${role}` },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: `user-${role}` }],
        },
      });
    const authz = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
    const can = async (user: string, verb: string, resource: string, group: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user,
              groups: ["system:authenticated"],
              resourceAttributes: { verb, resource, group, namespace: NS },
            },
          },
        })
      ).status?.allowed === true;
    // The aggregation controller fills the built-in roles; edit creating MetricsPushers shows it has.
    await waitFor(() => can("user-edit", "create", "metricspushers", GROUP), {
      timeoutMs: 30_000,
      message: "the aggregated metrics-pusher-edit rules in ClusterRole edit",
    });
    const seen: string[] = [];
    for (const user of ["user-view", "user-edit", "user-admin"]) {
      for (const verb of ["get", "list", "create", "update", "patch", "delete"])
        if (await can(user, verb, "metricspushers", GROUP)) seen.push(`${user} ${verb} metricspushers`);
      if (await can(user, "get", "secrets", "")) seen.push(`${user} get secrets`);
    }
    assert.deepEqual(seen, [
      "user-view get metricspushers",
      "user-view list metricspushers",
      ...["user-edit", "user-admin"].flatMap((u) => [
        ...["get", "list", "create", "update", "patch", "delete"].map((v) => `${u} ${v} metricspushers`),
        `${u} get secrets`,
      ]),
    ]);
  });
});
