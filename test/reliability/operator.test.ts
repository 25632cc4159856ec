// The operator on the real control plane, running as its own ServiceAccount with the roles from config/ (never as
// an admin), its API connection going through a TCP proxy the test can cut:
// - RBAC: it does its job with those roles, and SubjectAccessReview shows it can neither read Secrets outside its
//   namespace nor write what it does not need;
// - cross-namespace: a MetricsPusher never injects into, nor makes a pod of, another namespace read Secrets;
// - Pod Security restricted admits injected pods and the operator's own pod template;
// - certificates: a reset caBundle is restored, the leaf is renewed before expiry without a restart, an expired or
//   tampered Secret is replaced at start;
// - the API server unreachable for a while: the webhook keeps serving from its cache, the process stays up, the
//   informers reconnect and catch up.
import { strict as assert } from "node:assert";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { X509Certificate } from "node:crypto";
import {
  AdmissionregistrationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1DeploymentSpec,
  type V1Pod,
  type V1PodSpec,
} from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { createCA, issueCert } from "../controlplane/pki.ts";
import {
  API_VERSION,
  Annotations,
  GROUP,
  KIND,
  PLURAL,
  SIDECAR_CONTAINER_NAME,
  VERSION,
  type MetricsPusher,
} from "../../operator/src/api/index.ts";
import { apiMessage, applyCrds, createNamespace, kubectl, ROOT } from "../lib/kube.ts";
import { soak } from "./lib/mode.ts";
import { startOperator, type OperatorProcess } from "../lib/operator.ts";
import { startTcpProxy, type TcpProxy } from "./lib/tcpproxy.ts";
import { waitFor } from "../lib/wait.ts";

// certs.ts backdates certificates by 5 min and renews when a third of (lifetime + backdate) is left: below ~2.5 min
// every leaf is born due for renewal (reported). 3 min renews the leaf about 20 s after issue.
const CERT_VALIDITY_S = 180;
const OUTAGE_MS = soak(15_000, 90_000);
// The names config/ grants access to (resourceNames in the roles).
const WEBHOOK_CONFIG = "metrics-pusher";
const CERT_SECRET = "metrics-pusher-webhook-cert";

/** A pod that satisfies Pod Security "restricted" on its own. */
function restrictedSpec(): V1PodSpec {
  return {
    securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
    containers: [
      {
        name: "main",
        image: "busybox",
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, runAsNonRoot: true },
      },
    ],
  };
}

function sidecarOf(pod: V1Pod) {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.name === SIDECAR_CONTAINER_NAME,
  );
}

describe("the operator on the real control plane, as its ServiceAccount", () => {
  let cp: ControlPlane;
  let proxy: TcpProxy;
  let op: OperatorProcess | undefined;
  let dir = "";
  let saNamespace = "";
  let saName = "";
  let saKubeconfig = "";
  let operatorPodSpec: V1PodSpec | undefined;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let admission: AdmissionregistrationV1Api;

  const start = (extra: Record<string, string> = {}): Promise<OperatorProcess> =>
    startOperator({
      cp,
      kubeconfigPath: saKubeconfig,
      name: "operator-reliability",
      waitReady: true,
      env: {
        LEADER_ELECTION: "false",
        LOG_LEVEL: "info",
        POD_NAMESPACE: saNamespace,
        WEBHOOK_CONFIG_NAME: WEBHOOK_CONFIG,
        CERT_SECRET_NAME: CERT_SECRET,
        CERT_VALIDITY: `${CERT_VALIDITY_S}s`,
        PUSHER_IMAGE: "ghcr.io/metrics-pusher/pusher:0.1.0",
        RESYNC_PERIOD: "10s",
        ...extra,
      },
    });

  const createPusher = (namespace: string, name: string, spec: Record<string, unknown>) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      body: { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec },
    });

  const createPod = (
    namespace: string,
    name: string,
    labels: Record<string, string>,
    annotations: Record<string, string> = {},
    spec: V1PodSpec = restrictedSpec(),
  ) => core.createNamespacedPod({ namespace, body: { metadata: { name, labels, annotations }, spec } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "mp-operator-rel-"));
    cp = await startControlPlane({ controllers: true });
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await applyCrds(cp);

    // The operator's Namespace, ServiceAccount and RBAC exactly as config/default renders them.
    const rendered = (await kubectl(cp, ["kustomize", join(ROOT, "config/default")])).stdout;
    const docs = parseAllDocuments(rendered).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; spec?: unknown },
    );
    // The webhook configuration too: the operator only patches it (URL mode, caBundle), as in a real install.
    const rbacKinds = new Set([
      "Namespace",
      "ServiceAccount",
      "Role",
      "ClusterRole",
      "RoleBinding",
      "ClusterRoleBinding",
      "MutatingWebhookConfiguration",
    ]);
    const rbac = docs.filter((d) => rbacKinds.has(d.kind));
    const sa = rbac.find((d) => d.kind === "ServiceAccount");
    assert.ok(sa?.metadata.namespace, "config/default renders no namespaced ServiceAccount");
    saNamespace = sa.metadata.namespace;
    saName = sa.metadata.name;
    const deploymentSpec = docs.find((d) => d.kind === "Deployment")?.spec as V1DeploymentSpec | undefined;
    operatorPodSpec = deploymentSpec?.template?.spec;
    await kubectl(cp, ["apply", "-f", "-"], rbac.map((d) => JSON.stringify(d)).join("\n"));

    // The operator reaches the apiserver only through the proxy, with a token of its ServiceAccount.
    const server = new URL(cp.serverUrl);
    proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port) });
    const kc = await cp.clientForServiceAccount(saNamespace, saName, 3600);
    const viaProxy = new KubeConfig();
    viaProxy.loadFromOptions({
      clusters: kc.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${proxy.port}` })),
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    saKubeconfig = join(dir, "operator.kubeconfig");
    writeFileSync(saKubeconfig, viaProxy.exportConfig());

    for (const ns of ["team-a", "team-b"]) await createNamespace(cp.kubeConfig, ns);
    await createNamespace(cp.kubeConfig, "restricted", {
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": "latest",
    });
    for (const ns of ["team-a", "team-b"]) {
      await core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: "token" }, stringData: { token: `secret-of-${ns}` } },
      });
    }
    // Used by every case below (each can run alone with --test-name-pattern).
    await createPusher("team-a", "mp", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: {
        url: "http://prometheus.monitoring:9090/api/v1/write",
        bearerTokenSecret: { name: "token", key: "token" },
      },
    });
    op = await start();
  });

  after(async () => {
    await op?.stop();
    await proxy?.close();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("does its job with only its own roles: certificate Secret, webhook registration, status, injection", async () => {
    const mwc = await waitFor(
      async () => {
        const m = await admission.readMutatingWebhookConfiguration({ name: WEBHOOK_CONFIG });
        return m.webhooks?.[0]?.clientConfig.caBundle ? m : undefined;
      },
      { timeoutMs: 20_000, message: `MutatingWebhookConfiguration ${WEBHOOK_CONFIG} registered with a caBundle` },
    );
    assert.equal(mwc.webhooks?.[0]?.clientConfig.url, op!.webhookUrl);
    const secret = await core.readNamespacedSecret({ namespace: saNamespace, name: CERT_SECRET });
    assert.ok(secret.data?.["tls.crt"], "certificate Secret lacks tls.crt");

    await waitFor(
      async () => {
        const mp = (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: "team-a",
          plural: PLURAL,
          name: "mp",
        })) as MetricsPusher;
        return mp.status?.conditions?.some((c) => c.type === "Ready") ? mp : undefined;
      },
      { timeoutMs: 20_000, message: "MetricsPusher team-a/mp has a Ready condition written by the operator" },
    );
    const pod = await waitFor(
      async () => {
        const p = await createPod("team-a", `builder-${Date.now()}`, { app: "builder" });
        return sidecarOf(p) ? p : undefined;
      },
      { timeoutMs: 20_000, message: "a builder pod in team-a injected (the webhook's cache has the MetricsPusher)" },
    );
    assert.ok(pod.metadata?.annotations?.[Annotations.injected]?.startsWith("mp@"));
    const forbidden = op!.records().filter((l) => /forbidden|\b403\b/i.test(JSON.stringify(l)));
    assert.deepEqual(forbidden, [], "the operator hit RBAC refusals while doing its job");
  });

  it("cannot read Secrets outside its namespace nor write what it does not need (SubjectAccessReview)", async () => {
    const authz = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
    const user = `system:serviceaccount:${saNamespace}:${saName}`;
    const groups = ["system:serviceaccounts", `system:serviceaccounts:${saNamespace}`, "system:authenticated"];
    const can = async (
      verb: string,
      resource: string,
      namespace: string,
      group = "",
      subresource?: string,
      name?: string,
    ): Promise<boolean> => {
      const r = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user,
            groups,
            resourceAttributes: {
              verb,
              resource,
              namespace,
              group,
              ...(subresource ? { subresource } : {}),
              ...(name ? { name } : {}),
            },
          },
        },
      });
      return r.status?.allowed === true;
    };
    const denied: [string, string, string, string?, string?][] = [
      ...["get", "list", "watch", "create", "update", "patch", "delete"].flatMap((v) => [
        [v, "secrets", "team-a"] as [string, string, string],
        [v, "secrets", "kube-system"] as [string, string, string],
        [v, "secrets", ""] as [string, string, string],
      ]),
      ["create", "pods", "team-a"],
      ["update", "pods", "team-a"],
      ["patch", "pods", "team-a"],
      ["delete", "pods", "team-a"],
      ["create", "pods", "team-a", "", "exec"],
      ["create", "deployments", "team-a", "apps"],
      ["delete", "deployments", "team-a", "apps"],
      ["create", "namespaces", ""],
      ["delete", "namespaces", ""],
      ["update", "nodes", ""],
      ["create", "clusterroles", "", "rbac.authorization.k8s.io"],
      ["create", "clusterrolebindings", "", "rbac.authorization.k8s.io"],
      ["escalate", "clusterroles", "", "rbac.authorization.k8s.io"],
      ["bind", "clusterroles", "", "rbac.authorization.k8s.io"],
      ["create", "rolebindings", "team-a", "rbac.authorization.k8s.io"],
      ["update", "customresourcedefinitions", "", "apiextensions.k8s.io"],
      ["delete", "mutatingwebhookconfigurations", "", "admissionregistration.k8s.io"],
      ["create", "validatingwebhookconfigurations", "", "admissionregistration.k8s.io"],
      ["create", "serviceaccounts", "team-a", "", "token"],
      ["create", "metricspushers", "team-a", GROUP],
      ["delete", "metricspushers", "team-a", GROUP],
      ["create", "configmaps", "team-a"],
      ["impersonate", "users", ""],
      // Its webhook Service's EndpointSlices, in its own namespace only.
      ["list", "endpointslices", "team-a", "discovery.k8s.io"],
      ["watch", "endpointslices", "", "discovery.k8s.io"],
    ];
    const leaks: string[] = [];
    for (const [verb, resource, ns, group = "", sub] of denied) {
      if (await can(verb, resource, ns, group, sub))
        leaks.push(
          `${verb} ${group ? `${group}/` : ""}${resource}${sub ? `/${sub}` : ""} in ${ns || "all namespaces"}`,
        );
    }
    assert.deepEqual(leaks, [], "the operator's ServiceAccount holds permissions it does not need");

    // The positive side: what its job needs (checked above in practice; named here so a role change shows).
    const needed: [string, string, string, string, string | undefined, string | undefined][] = [
      ["list", "metricspushers", "", GROUP, undefined, undefined],
      ["watch", "metricspushers", "", GROUP, undefined, undefined],
      ["patch", "metricspushers", "team-a", GROUP, "status", undefined],
      ["patch", "deployments", "team-a", "apps", undefined, undefined],
      ["create", "events", "team-a", "", undefined, undefined],
      ["get", "secrets", saNamespace, "", undefined, CERT_SECRET],
      ["patch", "mutatingwebhookconfigurations", "", "admissionregistration.k8s.io", undefined, WEBHOOK_CONFIG],
      ["list", "endpointslices", saNamespace, "discovery.k8s.io", undefined, undefined],
      ["watch", "endpointslices", saNamespace, "discovery.k8s.io", undefined, undefined],
    ];
    for (const [verb, resource, ns, group, sub, name] of needed) {
      assert.ok(
        await can(verb, resource, ns, group, sub, name),
        `the ServiceAccount cannot ${verb} ${resource}${sub ? `/${sub}` : ""} ${name ?? ""} in ${ns || "all namespaces"}`,
      );
    }
    // Even in its own namespace, only its own Secret: not any other.
    assert.equal(
      await can("get", "secrets", saNamespace, "", undefined, "someone-elses"),
      false,
      "the ServiceAccount can read any Secret of its namespace",
    );
  });

  it("never injects across namespaces, so a MetricsPusher cannot make another namespace's pod read its Secrets", async () => {
    // team-a/mp (created above) selects app=builder and references Secret "token".
    const other = await createPod("team-b", "builder-b", { app: "builder" });
    assert.equal(sidecarOf(other), undefined, "a team-b pod got team-a's sidecar");
    const named = await createPod("team-b", "builder-b-named", { app: "builder" }, { [Annotations.inject]: "mp" });
    assert.equal(sidecarOf(named), undefined, "a team-b pod naming team-a's MetricsPusher got it");
    assert.ok(!(named.spec?.volumes ?? []).some((v) => v.secret), "a team-b pod mounts a Secret it did not ask for");

    const own = await createPod("team-a", "builder-a", { app: "builder" });
    assert.ok(sidecarOf(own), "the team-a pod was not injected");
    const secretVolumes = (own.spec?.volumes ?? []).filter((v) => v.secret);
    assert.deepEqual(
      secretVolumes.map((v) => v.secret?.secretName),
      ["token"],
    );
    assert.ok(
      secretVolumes.every((v) => v.secret?.optional === true),
      "Secret volume not optional: a missing Secret would block the pod",
    );
  });

  it("never blocks a pod whose own names collide with what the sidecar adds (found by the fuzz suite)", async () => {
    // team-a/mp mounts Secret "token" as volume metrics-pusher-secret-0; this pod already has a volume of that name.
    const spec = restrictedSpec();
    spec.volumes = [
      { name: "metrics-pusher-secret-0", emptyDir: {} },
      { name: "metrics-pusher-buffer", emptyDir: {} },
    ];
    let created: V1Pod | undefined;
    try {
      created = await createPod("team-a", "builder-collision", { app: "builder" }, {}, spec);
    } catch (e) {
      assert.fail(`the webhook's patch made the pod invalid, so the pod was refused: ${apiMessage(e)}`);
    }
    const names = (created.spec?.volumes ?? []).map((v) => v.name);
    assert.equal(new Set(names).size, names.length, `duplicate volumes: ${names.join(",")}`);
  });

  it("injected pods and the operator's own pod template are admitted under Pod Security restricted", async () => {
    await createPusher("restricted", "mp", {
      selector: { matchLabels: { app: "builder" } },
      remoteWrite: { url: "http://prometheus.monitoring:9090/api/v1/write" },
      scrape: { targets: [{ port: 8080 }] },
      buffer: { disk: { sizeLimit: "64Mi" } },
    });
    const pod = await waitFor(
      async () => {
        const p = await createPod("restricted", `builder-${Date.now()}`, { app: "builder" });
        return sidecarOf(p) ? p : undefined;
      },
      { timeoutMs: 20_000, message: "an injected pod admitted in the restricted namespace" },
    );
    assert.ok(sidecarOf(pod)?.securityContext?.runAsNonRoot);

    assert.ok(operatorPodSpec, "config/default renders no Deployment for the operator");
    try {
      await core.createNamespacedPod({
        namespace: "restricted",
        dryRun: "All",
        body: { metadata: { name: "operator-template" }, spec: operatorPodSpec },
      });
    } catch (e) {
      assert.fail(`the operator's own pod template is refused under restricted: ${apiMessage(e)}`);
    }
  });

  it("restores a reset caBundle", async () => {
    const before = (await admission.readMutatingWebhookConfiguration({ name: WEBHOOK_CONFIG })).webhooks![0]!
      .clientConfig.caBundle;
    const bogus = Buffer.from((await createCA({ commonName: "not the operator's" })).certPem).toString("base64");
    await admission.patchMutatingWebhookConfiguration(
      { name: WEBHOOK_CONFIG, body: [{ op: "replace", path: "/webhooks/0/clientConfig/caBundle", value: bogus }] },
      setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
    );
    await waitFor(
      async () =>
        (await admission.readMutatingWebhookConfiguration({ name: WEBHOOK_CONFIG })).webhooks![0]!.clientConfig
          .caBundle === before,
      { timeoutMs: 30_000, message: "the operator restoring the caBundle someone reset" },
    );
  });

  it(`renews the serving certificate before expiry without a restart (CERT_VALIDITY ${CERT_VALIDITY_S}s)`, async () => {
    const served = (): Promise<X509Certificate> =>
      new Promise((resolve, reject) => {
        const s = connect(
          { host: "127.0.0.1", port: op!.ports.webhook, rejectUnauthorized: false, servername: undefined },
          () => {
            const raw = s.getPeerX509Certificate();
            s.end();
            if (raw) resolve(raw);
            else reject(new Error("no peer certificate"));
          },
        );
        s.on("error", reject);
      });
    const first = await served();
    const pid = op!.pid;
    const renewed = await waitFor(
      async () => {
        const c = await served();
        return c.fingerprint256 !== first.fingerprint256 ? c : undefined;
      },
      {
        timeoutMs: CERT_VALIDITY_S * 1000,
        message: `a new serving certificate before the old one expires (${first.validTo})`,
      },
    );
    assert.ok(Date.now() < new Date(first.validTo).getTime(), "renewed only after the old certificate expired");
    assert.equal(op!.pid, pid);
    assert.equal(op!.exitInfo, undefined, "the operator restarted");
    // The apiserver still trusts it: a pod is injected through the new certificate.
    const pod = await createPod("team-a", `after-renewal-${Date.now()}`, { app: "builder" });
    assert.ok(sidecarOf(pod), `no injection after renewal (new certificate valid to ${renewed.validTo})`);
  });

  it(`keeps serving from its cache while the API server is unreachable for ${OUTAGE_MS / 1000} s, then catches up`, async () => {
    const pid = op!.pid;
    const connectionsBefore = proxy.connections;
    await proxy.down();
    try {
      const t0 = Date.now();
      // Created by an admin directly: the apiserver calls the webhook, which answers from its informers' cache.
      const during = await createPod("team-a", "during-outage", { app: "builder" });
      assert.ok(sidecarOf(during), "no injection while the operator could not reach the API server");
      await createPusher("team-b", "late", {
        selector: { matchLabels: { app: "late" } },
        remoteWrite: { url: "http://vm.monitoring:8428/api/v1/write" },
      });
      while (Date.now() - t0 < OUTAGE_MS) {
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(op!.exitInfo, undefined, `the operator exited during the outage:\n${op!.tail()}`);
        assert.equal(await op!.probe("/healthz"), 200, "liveness failed during the outage: a kubelet would restart it");
      }
    } finally {
      await proxy.up();
    }
    // Catch-up: the MetricsPusher created during the outage reaches the cache and gets a status.
    await waitFor(
      async () => {
        const p = await createPod("team-b", `late-${Date.now()}`, { app: "late" });
        return sidecarOf(p) ? p : undefined;
      },
      {
        timeoutMs: 60_000,
        message: "the webhook learning about team-b/late (created during the outage) after the API came back",
      },
    );
    await waitFor(
      async () => {
        const mp = (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: "team-b",
          plural: PLURAL,
          name: "late",
        })) as MetricsPusher;
        return mp.status?.observedGeneration === mp.metadata.generation;
      },
      { timeoutMs: 60_000, message: "team-b/late reconciled after the outage" },
    );
    assert.ok(proxy.connections > connectionsBefore, "the operator never reconnected through the proxy");
    assert.equal(op!.pid, pid);
    assert.equal(op!.exitInfo, undefined);
  });

  for (const damage of ["tampered", "expired"] as const) {
    it(`replaces a ${damage} certificate Secret at start`, async () => {
      if (op) {
        await op.stop();
        assert.deepEqual(op.exitInfo, { code: 0, signal: null }, "the operator did not stop cleanly");
        op = undefined;
      }
      const current = await core.readNamespacedSecret({ namespace: saNamespace, name: CERT_SECRET });
      let data: Record<string, string>;
      if (damage === "tampered") {
        const cert = Buffer.from(current.data!["tls.crt"]!, "base64").toString("utf8");
        // Flip characters inside the base64 body of the certificate: still PEM-shaped, no longer a valid signature.
        const lines = cert.split("\n");
        const mid = Math.floor(lines.length / 2);
        lines[mid] = lines[mid]!.split("").reverse().join("");
        data = { ...current.data!, "tls.crt": Buffer.from(lines.join("\n")).toString("base64") };
      } else {
        const ca = await createCA({ commonName: "expired", lifetimeMs: -60_000 });
        const leaf = await issueCert({ ca, commonName: "127.0.0.1", ips: ["127.0.0.1"], lifetimeMs: -60_000 });
        data = {
          "ca.crt": Buffer.from(ca.certPem).toString("base64"),
          "ca.key": Buffer.from(ca.keyPem).toString("base64"),
          "tls.crt": Buffer.from(leaf.certPem).toString("base64"),
          "tls.key": Buffer.from(leaf.keyPem).toString("base64"),
        };
      }
      await core.replaceNamespacedSecret({
        namespace: saNamespace,
        name: CERT_SECRET,
        body: { metadata: { name: CERT_SECRET }, ...(current.type ? { type: current.type } : {}), data },
      });
      op = await start();
      const s = await core.readNamespacedSecret({ namespace: saNamespace, name: CERT_SECRET });
      assert.notEqual(s.data!["tls.crt"], data["tls.crt"], `the ${damage} certificate was kept`);
      const cert = new X509Certificate(Buffer.from(s.data!["tls.crt"]!, "base64"));
      assert.ok(new Date(cert.validTo).getTime() > Date.now(), "the replacement is not valid");
      const ca = new X509Certificate(Buffer.from(s.data!["ca.crt"]!, "base64"));
      assert.ok(cert.verify(ca.publicKey), "the replacement is not signed by the Secret's CA");
      const pod = await waitFor(
        async () => {
          const p = await createPod("team-a", `after-${damage}-${Date.now()}`, { app: "builder" });
          return sidecarOf(p) ? p : undefined;
        },
        { timeoutMs: 20_000, message: `injection working after replacing the ${damage} Secret` },
      );
      assert.ok(pod);
    });
  }
});
