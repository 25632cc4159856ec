// The operator end to end on a real control plane: etcd + kube-apiserver + kube-controller-manager (Deployments make
// ReplicaSets make Pods), the operator as a local process whose webhook the apiserver calls over TLS.
// Pods stay Pending (no scheduler, no kubelet): admission is what is under test.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdmissionregistrationV1Api, ApiException, type V1Pod } from "@kubernetes/client-node";
import { buildCrd } from "../../operator/src/api/crd.ts";
import { parseQuantity } from "../../operator/src/api/quantity.ts";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import {
  appContainer,
  bareSidecar,
  clients,
  condition,
  createPusher,
  currentPods,
  deployment,
  env,
  eventsFor,
  getPusher,
  GROUP,
  PLURAL,
  VERSION,
  type Clients,
} from "./kube.ts";
import { applyCrds, createNamespace, kubectl, ROOT } from "../lib/kube.ts";
import { OPERATOR_NAMESPACE, startOperator, type OperatorProcess } from "../lib/operator.ts";
import { waitFor } from "../lib/wait.ts";

const NS = "builds";
const RW_URL = "http://receiver.monitoring.svc:9090/api/v1/write";

describe("operator end to end", { timeout: 420_000 }, () => {
  let cp: ControlPlane;
  let c: Clients;
  let op: OperatorProcess | undefined;

  before(async () => {
    cp = await startControlPlane({ controllers: true });
    c = clients(cp.kubeConfig);
    await applyCrds(cp);
    await createNamespace(cp.kubeConfig, OPERATOR_NAMESPACE);
    await createNamespace(cp.kubeConfig, NS);
    await createNamespace(cp.kubeConfig, "other");
    op = await startOperator({ cp, name: "op-main", env: { ROLLOUT_MAX_PER_INTERVAL: "20", ROLLOUT_INTERVAL: "10s" } });
    await op.waitReady();
    // The webhook configuration is registered (with the CA) before the first pod is created.
    await waitFor(
      async () => {
        const mwc = await cp.kubeConfig
          .makeApiClient(AdmissionregistrationV1Api)
          .readMutatingWebhookConfiguration({ name: "metrics-pusher" });
        const cc = mwc.webhooks?.[0]?.clientConfig;
        return cc?.url === op!.webhookUrl && !!cc.caBundle;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        message: "MutatingWebhookConfiguration metrics-pusher pointing at the operator, with a caBundle",
      },
    );
  });
  after(async () => {
    await op?.stop();
    await cp?.stop();
  });

  it("a builder Deployment's pods get the pusher with the right env; the MetricsPusher reports Ready, 1 matched", async () => {
    await createPusher(c, NS, "builders", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: RW_URL },
      pushInterval: "15s",
      externalLabels: { cluster: "e2e" },
    });
    await waitFor(
      async () => (await getPusher(c, NS, "builders")).metadata.finalizers?.includes("metricspusher.dev/finalizer"),
      { timeoutMs: 30_000, intervalMs: 100, message: "finalizer on the MetricsPusher" },
    );
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment("builder", { app: "builder" }) });
    const { pods, replicaSets } = await currentPods(c, NS, "builder");
    const pod = pods[0]!;
    const sidecars = bareSidecar(pod);
    assert.equal(sidecars.length, 1, "exactly one metrics-pusher container");
    const s = sidecars[0]!;
    assert.equal(env(s, "PROMETHEUS_REMOTE_WRITE_URL"), RW_URL);
    assert.equal(env(s, "PUSH_INTERVAL"), "15s");
    assert.equal(env(s, "EXTERNAL_LABELS"), "cluster=e2e");
    assert.equal(s.env?.find((e) => e.name === "POD_NAME")?.valueFrom?.fieldRef?.fieldPath, "metadata.name");
    const injected = pod.metadata?.annotations?.["metricspusher.dev/injected"] ?? "";
    assert.match(injected, /^builders@[0-9a-f]{16}$/);
    assert.equal(pod.metadata?.labels?.["metricspusher.dev/pusher"], "builders");
    // What `kubectl get pods -l metricspusher.dev/pusher=builders` asks the apiserver.
    const selected = await c.core.listNamespacedPod({
      namespace: NS,
      labelSelector: "metricspusher.dev/pusher=builders",
    });
    assert.deepEqual(
      selected.items.map((x) => x.metadata?.name).sort(),
      pods.map((x) => x.metadata?.name).sort(),
      "a label selector finds exactly the injected pods",
    );

    const p = await waitFor(
      async () => {
        const mp = await getPusher(c, NS, "builders");
        return condition(mp, "Ready")?.status === "True" &&
          mp.status?.matchedWorkloads === 1 &&
          condition(mp, "UpToDate")?.status === "True"
          ? mp
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "MetricsPusher Ready with matchedWorkloads 1" },
    );
    assert.equal(p.status?.updatedWorkloads, 1);
    assert.equal(p.status?.observedGeneration, p.metadata.generation);
    assert.equal(condition(p, "Ready")?.reason, "Valid");
    assert.equal(`builders@${p.status?.configHash}`, injected, "status.configHash is what the webhook injected");
    // A Deployment created after its MetricsPusher already runs the current config: no extra rollout.
    assert.equal(replicaSets, 1);
    const dep = await c.apps.readNamespacedDeployment({ namespace: NS, name: "builder" });
    assert.equal(dep.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"], undefined);
  });

  it("leaves alone: the opt-out annotation, a non-matching pod, a pod in another namespace", async () => {
    const pod = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}): V1Pod => ({
      metadata: { name, labels, annotations },
      spec: { containers: [appContainer()] },
    });
    const optOut = await c.core.createNamespacedPod({
      namespace: NS,
      body: pod("opt-out", { app: "builder" }, { "metricspusher.dev/inject": "false" }),
    });
    const web = await c.core.createNamespacedPod({ namespace: NS, body: pod("web", { app: "web" }) });
    const elsewhere = await c.core.createNamespacedPod({
      namespace: "other",
      body: pod("builder-elsewhere", { app: "builder" }),
    });
    const control = await c.core.createNamespacedPod({ namespace: NS, body: pod("bare-builder", { app: "builder" }) });
    for (const p of [optOut, web, elsewhere]) {
      assert.equal(bareSidecar(p).length, 0, `${p.metadata?.namespace}/${p.metadata?.name} has no sidecar`);
      assert.equal(p.spec?.containers.length, 1);
      assert.equal(p.metadata?.annotations?.["metricspusher.dev/injected"], undefined);
      assert.equal(p.metadata?.labels?.["metricspusher.dev/pusher"], undefined);
    }
    assert.equal(
      bareSidecar(control).length,
      1,
      "a matching bare pod created the same way is injected (the skips are not an outage)",
    );
  });

  it("integer quantities (int-or-string) are injected like strings: emptyDir, BUFFER_MAX_BYTES, resources (issue 11, item 4)", async () => {
    const ns = "contract-int";
    await createNamespace(cp.kubeConfig, ns);
    await createPusher(c, ns, "ints", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: RW_URL },
      buffer: { disk: { sizeLimit: 268435456 } },
      resources: { requests: { cpu: 1 as unknown as string, memory: 67108864 as unknown as string } },
      scrape: { targets: [{ port: 8080 }, { port: 9100, path: "/stats" }] },
    });
    const p = await waitFor(
      async () => {
        const mp = await getPusher(c, ns, "ints");
        return condition(mp, "Ready")?.status === "True" ? mp : undefined;
      },
      { timeoutMs: 30_000, message: "MetricsPusher ints Ready" },
    );
    const pod = await c.core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: "builder", labels: { app: "builder" } }, spec: { containers: [appContainer()] } },
    });
    const s = bareSidecar(pod)[0];
    assert.ok(s, "the pod got the sidecar (the webhook used to throw q.trim is not a function)");
    assert.equal(pod.metadata?.annotations?.["metricspusher.dev/injected"], `ints@${p.status?.configHash}`);
    const volume = pod.spec?.volumes?.find((v) => v.name === "metrics-pusher-buffer");
    assert.equal(parseQuantity(volume?.emptyDir?.sizeLimit), 268435456);
    assert.equal(env(s, "BUFFER_MAX_BYTES"), String(Math.floor(268435456 * 0.9)));
    assert.equal(parseQuantity(s.resources?.requests?.memory), 67108864);
    assert.equal(parseQuantity(s.resources?.requests?.cpu), 1);
    // Item 5: the targets travel as one JSON array, all on the pod's loopback.
    assert.deepEqual(JSON.parse(env(s, "SCRAPE_TARGETS") ?? "null"), [
      "http://127.0.0.1:8080/metrics",
      "http://127.0.0.1:9100/stats",
    ]);
  });

  it("a MetricsPusher the pusher would refuse (stored under a laxer CRD): Ready=False InvalidSpec, pods left alone, Events (issue 11, item 3)", async () => {
    const ns = "contract-invalid";
    await createNamespace(cp.kubeConfig, ns);
    // The apiserver keeps objects stored under an older CRD when the CRD tightens (validation ratcheting): the
    // controller and the webhook must not trust the schema alone. Install a CRD without maxSamples' minimum...
    const lax = buildCrd();
    delete lax.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties!.buffer!.properties!.maxSamples!
      .minimum;
    const file = join(tmpdir(), `lax-crd-${process.pid}.json`);
    await writeFile(file, JSON.stringify(lax));
    await kubectl(cp, ["apply", "--server-side", "--force-conflicts", "-f", file]);
    const spec = {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: RW_URL },
      buffer: { maxSamples: 1000 },
    };
    await waitFor(
      async () => {
        await createPusher(c, ns, "small-buffer", spec);
        return true;
      },
      { timeoutMs: 30_000, message: "the lax CRD accepts maxSamples 1000" },
    );
    // ...then the real one again: it refuses such a spec, and the stored object stays.
    await kubectl(cp, [
      "apply",
      "--server-side",
      "--force-conflicts",
      "-f",
      join(ROOT, "crds/metricspusher.dev_metricspushers.yaml"),
    ]);
    await waitFor(
      async () => {
        const err = await createPusher(c, ns, "probe", spec).then(
          () => undefined,
          (e: unknown) => e,
        );
        return err instanceof ApiException && err.code === 422;
      },
      { timeoutMs: 30_000, message: "the current CRD refuses maxSamples 1000 again" },
    );

    const mp = await waitFor(
      async () => {
        const p = await getPusher(c, ns, "small-buffer");
        return condition(p, "Ready")?.reason === "InvalidSpec" ? p : undefined;
      },
      { timeoutMs: 30_000, message: "MetricsPusher small-buffer Ready=False InvalidSpec" },
    );
    const ready = condition(mp, "Ready")!;
    assert.equal(ready.status, "False");
    assert.match(ready.message, /BUFFER_MAX_SAMPLES="1000": must be at least MAX_SAMPLES_PER_SEND \(2000\)/);
    assert.equal(condition(mp, "UpToDate")?.status, "False");

    const pod = await c.core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: "builder", labels: { app: "builder" } }, spec: { containers: [appContainer()] } },
    });
    assert.equal(bareSidecar(pod).length, 0, "no sidecar that would exit 2 at start");
    assert.equal(pod.metadata?.annotations?.["metricspusher.dev/injected"], undefined);
    await waitFor(
      async () => {
        const events = await eventsFor(c, ns, "MetricsPusher", "small-buffer");
        return (
          events.some((e) => e.reason === "InvalidSpec" && e.type === "Warning") &&
          events.some((e) => e.reason === "InjectionSkipped" && /^InvalidSpec: .*BUFFER_MAX_SAMPLES/.test(e.message))
        );
      },
      {
        timeoutMs: 30_000,
        message: "InvalidSpec Events on the MetricsPusher, from the controller and from the webhook",
      },
    );
  });

  it("injected pods are admitted in a namespace enforcing Pod Security restricted", async () => {
    await createNamespace(cp.kubeConfig, "secure", {
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": "latest",
    });
    await createPusher(c, "secure", "builders", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: RW_URL },
    });
    await waitFor(
      async () => {
        const mp = await getPusher(c, "secure", "builders");
        return mp.metadata.finalizers?.length ? mp : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "MetricsPusher in secure is known to the webhook" },
    );
    const created = await c.core.createNamespacedPod({
      namespace: "secure",
      body: {
        metadata: { name: "restricted", labels: { app: "builder" } },
        spec: {
          containers: [appContainer()],
          securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
        },
      },
    });
    assert.equal(bareSidecar(created).length, 1, "the pod was injected and still admitted under restricted");
    // The same pod with a non-compliant container is refused: the namespace really enforces the profile.
    await assert.rejects(
      c.core.createNamespacedPod({
        namespace: "secure",
        body: {
          metadata: { name: "privileged", labels: { app: "web" } },
          spec: { containers: [{ name: "x", image: "x", securityContext: { privileged: true } }] },
        },
      }),
      (err: { code?: number }) => err.code === 403,
    );
  });

  it("updating the MetricsPusher rolls the Deployment: new pods carry the new config", async () => {
    const before = await getPusher(c, NS, "builders");
    const oldHash = before.status?.configHash;
    await c.custom.patchNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      name: "builders",
      body: [{ op: "replace", path: "/spec/pushInterval", value: "20s" }],
    });
    const { pods, rs } = await waitFor(
      async () => {
        const cur = await currentPods(c, NS, "builder");
        return env(bareSidecar(cur.pods[0]!)[0], "PUSH_INTERVAL") === "20s" ? cur : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: "a new ReplicaSet whose pods carry PUSH_INTERVAL=20s" },
    );
    const dep = await c.apps.readNamespacedDeployment({ namespace: NS, name: "builder" });
    const stamp = dep.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"];
    assert.ok(stamp && stamp !== oldHash, `stamped with the new hash (${stamp}, old ${oldHash})`);
    assert.equal(pods[0]!.metadata?.annotations?.["metricspusher.dev/injected"], `builders@${stamp}`);
    assert.equal(rs.metadata?.annotations?.["deployment.kubernetes.io/revision"], "2");
    const p = await waitFor(
      async () => {
        const mp = await getPusher(c, NS, "builders");
        return mp.status?.observedGeneration === mp.metadata.generation &&
          mp.status?.configHash === stamp &&
          mp.status?.updatedWorkloads === 1
          ? mp
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "status observes generation 2 and the new hash" },
    );
    assert.equal(condition(p, "UpToDate")?.status, "True");
    const evs = await eventsFor(c, NS, "Deployment", "builder");
    assert.ok(
      evs.some((e) => e.reason === "RolloutTriggered"),
      `RolloutTriggered Event on the Deployment: ${JSON.stringify(evs)}`,
    );
  });

  it("a Deployment controlled by another controller (e.g. Knative) is injected but never stamped; status says so", async () => {
    await createNamespace(cp.kubeConfig, "knative");
    await createPusher(c, "knative", "fns", { selector: { matchLabels: { app: "fn" } }, remoteWrite: { url: RW_URL } });
    await waitFor(async () => condition(await getPusher(c, "knative", "fns"), "Ready")?.status === "True", {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "MetricsPusher fns Ready",
    });
    // The owner must exist, or the garbage collector deletes the Deployment.
    const owner = await c.core.createNamespacedConfigMap({
      namespace: "knative",
      body: { metadata: { name: "revision-owner" } },
    });
    const body = deployment("fn-00001", { app: "fn" });
    body.metadata!.ownerReferences = [
      { apiVersion: "v1", kind: "ConfigMap", name: "revision-owner", uid: owner.metadata!.uid!, controller: true },
    ];
    await c.apps.createNamespacedDeployment({ namespace: "knative", body });
    const { pods } = await currentPods(c, "knative", "fn-00001");
    assert.equal(bareSidecar(pods[0]!).length, 1, "injected at creation");
    await c.custom.patchNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: "knative",
      plural: PLURAL,
      name: "fns",
      body: [{ op: "add", path: "/spec/pushInterval", value: "45s" }],
    });
    const mp = await waitFor(
      async () => {
        const p = await getPusher(c, "knative", "fns");
        return p.status?.observedGeneration === 2 && condition(p, "UpToDate")?.reason === "OwnedByAnotherController"
          ? p
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "UpToDate False / OwnedByAnotherController" },
    );
    assert.equal(condition(mp, "UpToDate")?.status, "False");
    assert.match(
      condition(mp, "UpToDate")?.message ?? "",
      /Deployment\/fn-00001 \(controlled by ConfigMap\/revision-owner\)/,
    );
    assert.deepEqual([mp.status?.matchedWorkloads, mp.status?.updatedWorkloads], [1, 0]);
    const dep = await c.apps.readNamespacedDeployment({ namespace: "knative", name: "fn-00001" });
    assert.equal(dep.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"], undefined, "not stamped");
    assert.equal(dep.metadata?.annotations?.["deployment.kubernetes.io/revision"], "1");
  });

  it("a selector that stops selecting a Deployment rolls the sidecar away from it", async () => {
    await createNamespace(cp.kubeConfig, "reselect");
    await createPusher(c, "reselect", "mp", { selector: { matchLabels: { app: "a" } }, remoteWrite: { url: RW_URL } });
    await waitFor(async () => condition(await getPusher(c, "reselect", "mp"), "Ready")?.status === "True", {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "MetricsPusher mp Ready",
    });
    await c.apps.createNamespacedDeployment({ namespace: "reselect", body: deployment("a", { app: "a" }) });
    assert.equal(bareSidecar((await currentPods(c, "reselect", "a")).pods[0]!).length, 1);
    await c.custom.patchNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: "reselect",
      plural: PLURAL,
      name: "mp",
      body: [{ op: "replace", path: "/spec/selector", value: { matchLabels: { app: "b" } } }],
    });
    const { pods } = await waitFor(
      async () => {
        const cur = await currentPods(c, "reselect", "a");
        return bareSidecar(cur.pods[0]!).length === 0 ? cur : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "pods of Deployment a without the sidecar" },
    );
    assert.equal(pods[0]!.metadata?.annotations?.["metricspusher.dev/injected"], undefined);
    const mp = await waitFor(
      async () => {
        const p = await getPusher(c, "reselect", "mp");
        return p.status?.observedGeneration === 2 ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "status: nothing matched" },
    );
    assert.equal(mp.status?.matchedWorkloads, 0);
    assert.equal(condition(mp, "Ready")?.reason, "NoMatchingWorkloads");
  });

  it("StatefulSets and DaemonSets are stamped like Deployments", async () => {
    await createNamespace(cp.kubeConfig, "kinds");
    await createPusher(c, "kinds", "mp", { selector: { matchLabels: { app: "db" } }, remoteWrite: { url: RW_URL } });
    const mp = await waitFor(async () => (await getPusher(c, "kinds", "mp")).status?.configHash, {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "MetricsPusher mp has a config hash",
    });
    // Templates carrying an older stamp (no kubelet here, so no pods: the stamp alone says they are out of date).
    const template = (name: string) => ({
      metadata: {
        labels: { app: "db", "e2e/workload": name },
        annotations: { "metricspusher.dev/config-hash": "0123456789abcdef" },
      },
      spec: { containers: [appContainer()] },
    });
    await c.apps.createNamespacedStatefulSet({
      namespace: "kinds",
      body: {
        metadata: { name: "db" },
        spec: { serviceName: "db", selector: { matchLabels: { "e2e/workload": "db" } }, template: template("db") },
      },
    });
    await c.apps.createNamespacedDaemonSet({
      namespace: "kinds",
      body: {
        metadata: { name: "agent" },
        spec: { selector: { matchLabels: { "e2e/workload": "agent" } }, template: template("agent") },
      },
    });
    await waitFor(
      async () => {
        const sts = await c.apps.readNamespacedStatefulSet({ namespace: "kinds", name: "db" });
        const ds = await c.apps.readNamespacedDaemonSet({ namespace: "kinds", name: "agent" });
        return [sts, ds].every((w) => w.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"] === mp);
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "StatefulSet and DaemonSet stamped with the current hash" },
    );
    const status = await waitFor(
      async () => {
        const p = await getPusher(c, "kinds", "mp");
        return p.status?.matchedWorkloads === 2 && p.status.updatedWorkloads === 2 ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "both counted" },
    );
    assert.match(condition(status, "Ready")?.message ?? "", /DaemonSet\/agent, StatefulSet\/db/);
  });

  it("exposes controller metrics", async (t) => {
    const text = await (await fetch(op!.metricsUrl)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? "NaN");
    assert.ok(
      value(/^metrics_pusher_operator_rollouts_total\{reason="config_change",kind="Deployment"\} (\d+)/m) >= 1,
      "a config_change rollout counted",
    );
    assert.ok(
      value(/^controller_runtime_reconcile_total\{controller="metricspusher",result="success"\} (\d+)/m) >= 1,
      "reconciles counted",
    );
    assert.equal(value(/^leader_election_master_status\{name="[^"]+"\} (\d+)/m), 1);
    assert.ok(value(/^workqueue_adds_total\{name="metricspusher"\} (\d+)/m) >= 1, "queue adds counted");
    assert.equal(value(/^workqueue_depth\{name="metricspusher"\} (\d+)/m) >= 0, true, "queue depth exposed");
    assert.ok(value(/^workqueue_work_duration_seconds_count\{name="metricspusher"\} (\d+)/m) >= 1, "work timed");
    assert.ok(value(/^workqueue_queue_duration_seconds_count\{name="metricspusher"\} (\d+)/m) >= 1, "waits timed");
    assert.ok(
      value(/^controller_runtime_reconcile_time_seconds_count\{controller="metricspusher"\} (\d+)/m) >= 1,
      "reconciles timed",
    );
    assert.match(text, /^# TYPE controller_runtime_reconcile_errors_total counter$/m);
    assert.match(text, /^# TYPE workqueue_retries_total counter$/m);
    // Status is written only when it changes: a handful of writes per MetricsPusher, not one per reconcile.
    const writes = op!.records().filter((r) => r.msg === "Status updated").length;
    const reconciles = value(
      /^controller_runtime_reconcile_total\{controller="metricspusher",result="success"\} (\d+)/m,
    );
    t.diagnostic(`${reconciles} reconciles, ${writes} status writes, for 6 MetricsPushers and their changes`);
    assert.ok(writes <= 20 && writes < reconciles, `${writes} status writes for ${reconciles} reconciles`);
  });

  it("deleting the MetricsPusher rolls the sidecar away and removes the object", async () => {
    await c.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      name: "builders",
    });
    await waitFor(
      async () => {
        try {
          await getPusher(c, NS, "builders");
          return false;
        } catch (err) {
          return (err as { code?: number }).code === 404;
        }
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "MetricsPusher gone (finalizer removed)" },
    );
    const { pods } = await waitFor(
      async () => {
        const cur = await currentPods(c, NS, "builder");
        return bareSidecar(cur.pods[0]!).length === 0 ? cur : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: "pods of a new ReplicaSet without the sidecar" },
    );
    assert.equal(pods[0]!.metadata?.annotations?.["metricspusher.dev/injected"], undefined);
    const dep = await c.apps.readNamespacedDeployment({ namespace: NS, name: "builder" });
    assert.equal(
      dep.spec?.template.metadata?.annotations?.["metricspusher.dev/config-hash"],
      undefined,
      "stamp removed",
    );
    const evs = await eventsFor(c, NS, "Deployment", "builder");
    assert.ok(
      evs.some((e) => e.reason === "SidecarRemoved"),
      JSON.stringify(evs),
    );
  });
});
