// Proves the test bed before the operator exists: the real apiserver stores CRDs, the controller-manager turns
// Deployments into Pods, calls a webhook of ours over TLS, enforces Pod Security and RBAC, and nothing outlives stop().
// CONTROLPLANE_LOG=1 prints every line the processes write.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { randomBytes } from "node:crypto";
import { waitFor } from "../lib/wait.ts";
import {
  AdmissionregistrationV1Api,
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
  VersionApi,
  type V1Pod,
} from "@kubernetes/client-node";
import { issueWebhookServingCert, startControlPlane, versions, type ControlPlane } from "./harness.ts";

let cp: ControlPlane;
let core: CoreV1Api;

// Generous: on a machine without the cached binaries this includes the cold build (minutes).
before(
  async () => {
    cp = await startControlPlane({
      controllers: true,
      log: process.env.CONTROLPLANE_LOG ? (line) => process.stderr.write(line + "\n") : undefined,
    });
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
  },
  { timeout: 40 * 60_000 },
);

after(async () => {
  await cp?.stop();
});

function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

async function createNamespace(labels: Record<string, string> = {}): Promise<string> {
  const name = uniqueName("cp-test");
  await core.createNamespace({ body: { metadata: { name, labels } } });
  return name;
}

async function apiError(promise: Promise<unknown>): Promise<ApiException<unknown>> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiException) return err;
    throw err;
  }
  assert.fail("the request succeeded, an API error was expected");
}

/** The `message` of the Status object the apiserver returns with an error. */
function statusMessage(err: ApiException<unknown>): string {
  const status = (typeof err.body === "string" ? JSON.parse(err.body) : err.body) as { message?: string };
  return status.message ?? "";
}

const PAUSE_IMAGE = "registry.k8s.io/pause:3.10"; // never pulled: there is no kubelet

it("the apiserver reports the version it was stamped with", async () => {
  const expected = versions().KUBERNETES_VERSION!; // "1.34.4"
  const version = await cp.kubeConfig.makeApiClient(VersionApi).getCode();
  assert.equal(version.gitVersion, `v${expected}`);
  assert.equal(`${version.major}.${version.minor}`, expected.split(".").slice(0, 2).join("."));
});

it("a namespace and a CRD can be created; the CRD becomes Established and accepts a custom object", async () => {
  const namespace = await createNamespace();
  const ns = await core.readNamespace({ name: namespace });
  assert.equal(ns.status?.phase, "Active");

  const group = `${uniqueName("g")}.tests.metrics-pusher.dev`;
  const crdName = `widgets.${group}`;
  const extensions = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  await extensions.createCustomResourceDefinition({
    body: {
      metadata: { name: crdName },
      spec: {
        group,
        scope: "Namespaced",
        names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: {
                  spec: {
                    type: "object",
                    required: ["size"],
                    properties: { size: { type: "integer", minimum: 1 } },
                  },
                },
              },
            },
          },
        ],
      },
    },
  });
  await waitFor(
    async () => {
      const crd = await extensions.readCustomResourceDefinition({ name: crdName });
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, message: "the CRD to be Established" },
  );

  const objects = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const ref = { group, version: "v1", namespace, plural: "widgets" };
  await objects.createNamespacedCustomObject({
    ...ref,
    body: { apiVersion: `${group}/v1`, kind: "Widget", metadata: { name: "small" }, spec: { size: 3 } },
  });
  const stored = (await objects.getNamespacedCustomObject({ ...ref, name: "small" })) as { spec: { size: number } };
  assert.equal(stored.spec.size, 3);

  // The schema is enforced, so the CRD is really in use and not merely stored.
  const invalid = await apiError(
    objects.createNamespacedCustomObject({
      ...ref,
      body: { apiVersion: `${group}/v1`, kind: "Widget", metadata: { name: "empty" }, spec: { size: 0 } },
    }),
  );
  assert.equal(invalid.code, 422);
});

const DEPLOYMENT_TEST = "a Deployment in a new namespace gets its ReplicaSet and Pending Pods within 60 s";
it(DEPLOYMENT_TEST, { timeout: 90_000 }, async () => {
  const namespace = await createNamespace();
  const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
  const labels = { app: "builder" };
  const deployment = await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name: "builder" },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "main", image: PAUSE_IMAGE }] } },
      },
    },
  });

  const pods = await waitFor(
    async () => {
      const list = await core.listNamespacedPod({ namespace, labelSelector: "app=builder" });
      return list.items.length === 2 ? list.items : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, message: "2 Pods from the ReplicaSet" },
  );
  const replicaSets = await apps.listNamespacedReplicaSet({ namespace });
  assert.equal(replicaSets.items.length, 1);
  const replicaSet = replicaSets.items[0]!;
  assert.equal(replicaSet.metadata?.ownerReferences?.[0]?.uid, deployment.metadata?.uid);
  for (const pod of pods) {
    assert.equal(pod.metadata?.ownerReferences?.[0]?.uid, replicaSet.metadata?.uid);
    assert.equal(pod.status?.phase, "Pending");
  }
});

interface SeenAdmission {
  name: string;
  generateName: string | undefined;
  namespace: string;
  dryRun: boolean;
}

/** A throw-away mutating webhook: annotates every Pod it is asked about and remembers what it saw. */
interface TestWebhook {
  server: Server;
  port: number;
  caBundle: string;
  seen: SeenAdmission[];
}

async function startMutatingWebhook(): Promise<TestWebhook> {
  const cert = await issueWebhookServingCert();
  const seen: SeenAdmission[] = [];
  const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const review = JSON.parse(body) as {
        request: { uid: string; name?: string; namespace: string; dryRun?: boolean; object: V1Pod };
      };
      const { request } = review;
      seen.push({
        name: request.name ?? "",
        generateName: request.object.metadata?.generateName,
        namespace: request.namespace,
        dryRun: request.dryRun === true,
      });
      // "add" of the whole map replaces it when present, so no JSON-pointer escaping of the key is needed.
      const annotations = { ...request.object.metadata?.annotations, "tests.metrics-pusher.dev/mutated": "true" };
      const patch = [{ op: "add", path: "/metadata/annotations", value: annotations }];
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          response: {
            uid: request.uid,
            allowed: true,
            patchType: "JSONPatch",
            patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
          },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { server, port: address.port, caBundle: cert.caBundle, seen };
}

const WEBHOOK_TEST =
  "a webhook at https://127.0.0.1 mutates a Pod the ReplicaSet controller creates (generateName, no name)";
it(WEBHOOK_TEST, { timeout: 120_000 }, async (t) => {
  const namespace = await createNamespace();
  const webhook = await startMutatingWebhook();
  t.after(() => webhook.server.close());
  const admissionregistration = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const configName = uniqueName("cp-test-mutate");
  await admissionregistration.createMutatingWebhookConfiguration({
    body: {
      metadata: { name: configName },
      webhooks: [
        {
          name: "mutate.tests.metrics-pusher.dev",
          clientConfig: { url: `https://127.0.0.1:${webhook.port}/mutate`, caBundle: webhook.caBundle },
          rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
          sideEffects: "None",
          admissionReviewVersions: ["v1"],
          failurePolicy: "Fail",
          timeoutSeconds: 10,
        },
      ],
    },
  });
  t.after(() => admissionregistration.deleteMutatingWebhookConfiguration({ name: configName }));

  // The apiserver picks new configurations up from an informer; a dry-run Pod shows when it has.
  await waitFor(
    async () => {
      const probe = await core.createNamespacedPod({
        namespace,
        dryRun: "All",
        body: { metadata: { name: "probe" }, spec: { containers: [{ name: "main", image: PAUSE_IMAGE }] } },
      });
      return probe.metadata?.annotations?.["tests.metrics-pusher.dev/mutated"] === "true" ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, message: "the webhook configuration to take effect" },
  );

  const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
  const labels = { app: "mutated" };
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name: "mutated" },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "main", image: PAUSE_IMAGE }] } },
      },
    },
  });
  const pod = await waitFor(
    async () => {
      const list = await core.listNamespacedPod({ namespace, labelSelector: "app=mutated" });
      return list.items[0];
    },
    { timeoutMs: 60_000, intervalMs: 250, message: "the ReplicaSet's Pod" },
  );
  const mutated = pod.metadata?.annotations?.["tests.metrics-pusher.dev/mutated"];
  assert.equal(mutated, "true", "the stored Pod carries the mutation");
  assert.match(pod.metadata?.generateName ?? "", /^mutated-[a-z0-9]+-$/);

  const admitted = webhook.seen.filter((s) => !s.dryRun && s.namespace === namespace);
  assert.equal(admitted.length, 1, `one real admission request, saw ${JSON.stringify(webhook.seen)}`);
  assert.equal(admitted[0]!.name, "", "the Pod has no name at admission");
  assert.equal(admitted[0]!.generateName, pod.metadata?.generateName);
});

const POD_SECURITY_TEST =
  "a namespace enforcing the restricted Pod Security profile rejects a privileged Pod and admits a restricted one";
it(POD_SECURITY_TEST, async () => {
  const namespace = await createNamespace({
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
  });
  const rejected = await apiError(
    core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "privileged" },
        spec: { containers: [{ name: "main", image: PAUSE_IMAGE, securityContext: { privileged: true } }] },
      },
    }),
  );
  assert.equal(rejected.code, 403);
  assert.match(statusMessage(rejected), /violates PodSecurity "restricted:latest": privileged \(container "main"/);

  const admitted = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: "restricted" },
      spec: {
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "main",
            image: PAUSE_IMAGE,
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
          },
        ],
      },
    },
  });
  assert.equal(admitted.metadata?.name, "restricted");
  assert.ok(admitted.metadata?.uid);
});

it("RBAC is enforced: a ServiceAccount without permissions is refused until a RoleBinding allows it", async () => {
  const namespace = await createNamespace();
  const account = "no-permissions";
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: account } } });
  const user = `system:serviceaccount:${namespace}:${account}`;
  const asAccount = (await cp.clientForServiceAccount(namespace, account)).makeApiClient(CoreV1Api);

  // Authenticated (403 names the account, not 401) and refused by authorization.
  const refused = await apiError(asAccount.listNamespacedPod({ namespace }));
  assert.equal(refused.code, 403);
  assert.match(statusMessage(refused), new RegExp(`User "${user}" cannot list resource "pods"`));

  const authorization = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
  const review = () =>
    authorization.createSubjectAccessReview({
      body: {
        spec: {
          user,
          groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
          resourceAttributes: { namespace, verb: "list", resource: "pods" },
        },
      },
    });
  assert.equal((await review()).status?.allowed, false);

  // The positive control: with a grant, the same token and the same request succeed.
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata: { name: "pod-reader" }, rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list"] }] },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: "pod-reader" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
      subjects: [{ kind: "ServiceAccount", name: account, namespace }],
    },
  });
  await waitFor(async () => ((await review()).status?.allowed ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 250,
    message: "the RoleBinding to take effect",
  });
  const pods = await asAccount.listNamespacedPod({ namespace });
  assert.deepEqual(pods.items, []);
});

it("stop() leaves no process and no temp dir behind", async (t) => {
  const pids = Object.entries(cp.pids);
  assert.deepEqual(
    pids.map(([name]) => name),
    ["etcd", "kube-apiserver", "kube-controller-manager"],
  );
  for (const [name, pid] of pids) {
    process.kill(pid, 0); // alive before stop(): throws otherwise
    // Memory after the suite's work, for docs/controlplane.md and CI logs.
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    t.diagnostic(`${name} pid ${pid} RSS ${Math.round(Number(rss) / 1024)} MiB`);
  }
  await cp.stop();
  const alive = pids.filter(([, pid]) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  assert.deepEqual(alive, [], "processes still running after stop()");
  assert.equal(existsSync(cp.dir), false);
});
