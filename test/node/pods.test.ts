// The node bed as any in-cluster client sees it: a Deployment's pod is scheduled by kube-scheduler, started by the
// kubelet with a CNI address, resolves the cluster's names through CoreDNS (and nothing else), reaches the apiserver
// through the `kubernetes` Service with its ServiceAccount token and kube-root-ca.crt, and `kubectl logs`/`exec`
// work. No image is pulled.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { eventually } from "../lib/wait.ts";
import { acquireNodeBed, type SharedNodeBed } from "./shared.ts";
import { NODE } from "./hoststate.ts";

let bed: SharedNodeBed;
const ns = `bed-${Date.now().toString(36)}`;
const verbose = process.env.NODE_BED_LOG === "1";

before(async () => {
  bed = await acquireNodeBed((line) => {
    if (verbose || /^\[(node|build|cleanup)\]/.test(line)) process.stderr.write(line + "\n");
  });
  process.stderr.write(`node bed: ready (started in ${bed.startupSeconds}s)\n`);
});

after(async () => {
  if (bed === undefined) return;
  await bed.kubectlRun(["delete", "namespace", ns, "--wait=false"]).catch(() => {});
  await bed.release();
});

/** Polls until `check` returns a value, or fails with `what` and the last state seen. */

// Runs in the pod (Node from the node-test image): the cluster's DNS, a name outside it, and the apiserver through
// the `kubernetes` Service, with TLS verified against the mounted CA and the mounted token as the only credential.
const CHECK = `
const fs = require("fs"), https = require("https"), dns = require("dns").promises;
const sa = "/var/run/secrets/kubernetes.io/serviceaccount/";
(async () => {
  const a = await dns.lookup("kubernetes.default.svc");
  console.log("DNS kubernetes.default.svc " + a.address);
  try { await dns.resolve4("example.com"); console.log("OUTSIDE resolved"); } catch (e) { console.log("OUTSIDE " + e.code); }
  const body = JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" });
  const req = https.request({
    host: "kubernetes.default.svc", port: 443, method: "POST",
    path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    ca: fs.readFileSync(sa + "ca.crt"),
    headers: { authorization: "Bearer " + fs.readFileSync(sa + "token", "utf8"), "content-type": "application/json" },
  }, (res) => {
    let d = ""; res.on("data", (c) => (d += c));
    res.on("end", () => console.log("SELF " + res.statusCode + " " + JSON.parse(d).status.userInfo.username));
  });
  req.on("error", (e) => console.log("SELF error " + e.message));
  req.end(body);
})().catch((e) => console.log("ERROR " + e.message));
`;

it("a Deployment's pod is scheduled, gets a CNI address, and reaches DNS and the apiserver from inside", async () => {
  const core = bed.kubeConfig.makeApiClient(CoreV1Api);
  const apps = bed.kubeConfig.makeApiClient(AppsV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });

  // The controllers a real cluster runs: the namespace's ServiceAccount and its root CA.
  await eventually(
    "the default ServiceAccount",
    60_000,
    async () => (await core.readNamespacedServiceAccount({ namespace: ns, name: "default" })).metadata?.name,
  );
  const rootCa = await eventually(
    "the kube-root-ca.crt ConfigMap",
    60_000,
    async () => (await core.readNamespacedConfigMap({ namespace: ns, name: "kube-root-ca.crt" })).data?.["ca.crt"],
  );
  assert.equal(rootCa.trim(), bed.caCertPem.trim(), "kube-root-ca.crt holds the cluster's CA");

  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: "probe" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "probe" } },
        template: {
          metadata: { labels: { app: "probe" } },
          spec: {
            // No nodeName: kube-scheduler places it.
            containers: [
              {
                name: "probe",
                image: bed.testImage,
                imagePullPolicy: "Never",
                command: ["/bin/sh", "-c", 'node -e "$CHECK"; exec sleep 3600'],
                env: [{ name: "CHECK", value: CHECK }],
              },
            ],
            terminationGracePeriodSeconds: 1,
          },
        },
      },
    },
  });

  const pod: V1Pod = await eventually("the probe pod Running", 120_000, async () => {
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: "app=probe" });
    const p = pods.items[0];
    return p?.status?.phase === "Running" ? p : undefined;
  });
  const name = pod.metadata!.name!;
  assert.equal(pod.spec?.nodeName, bed.nodeName, "scheduled onto the bed's node");
  const podIp = pod.status?.podIP ?? "";
  assert.match(podIp, /^10\.244\.0\.\d+$/, `a CNI address in ${NODE.podCidr}`);
  assert.notEqual(podIp, bed.bridgeIp);
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  assert.equal(scheduled?.status, "True");

  // kubectl logs: the kubelet serves the container's log to the apiserver.
  const logs = await eventually("the probe's three lines in kubectl logs", 60_000, async () => {
    const out = await bed.kubectlRun(["logs", "-n", ns, name]);
    return /^SELF /m.test(out) ? out : undefined;
  });
  assert.match(
    logs,
    new RegExp(`^DNS kubernetes\\.default\\.svc ${NODE.kubernetesServiceIp.replace(/\./g, "\\.")}$`, "m"),
  );
  assert.match(logs, /^OUTSIDE ENOTFOUND$/m, "a name outside the cluster gets NXDOMAIN, not an answer from outside");
  assert.match(logs, new RegExp(`^SELF 201 system:serviceaccount:${ns}:default$`, "m"));

  // kubectl exec: the apiserver reaches the kubelet's streaming endpoint.
  const inside = await bed.kubectlRun(["exec", "-n", ns, name, "--", "cat", "/etc/resolv.conf"]);
  assert.match(inside, new RegExp(`^nameserver ${NODE.dnsServiceIp.replace(/\./g, "\\.")}$`, "m"));
  assert.match(inside, new RegExp(`search ${ns}\\.svc\\.cluster\\.local svc\\.cluster\\.local cluster\\.local`));
  const ip = await bed.kubectlRun(["exec", "-n", ns, name, "--", "sh", "-c", "ip -o -4 addr show eth0"]);
  assert.ok(ip.includes(`${podIp}/24`), `eth0 inside the pod carries ${podIp}: ${ip}`);

  // Imported, never pulled: the kubelet reports no Pulling in this namespace.
  const events = await core.listNamespacedEvent({ namespace: ns });
  const reasons = events.items.map((e) => e.reason);
  assert.ok(reasons.includes("Started"), `the kubelet's events are there: ${reasons.join(", ")}`);
  assert.ok(!reasons.includes("Pulling"), `no Pulling event: ${reasons.join(", ")}`);
});

it("the node reports the imported images and a Ready condition from the kubelet", async () => {
  const core = bed.kubeConfig.makeApiClient(CoreV1Api);
  const node = await core.readNode({ name: bed.nodeName });
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  assert.equal(ready?.status, "True");
  assert.equal(ready?.reason, "KubeletReady");
  assert.equal(
    node.status?.nodeInfo?.kubeletVersion,
    `v${(await import("../controlplane/harness.ts")).versions().KUBERNETES_VERSION}`,
  );
  assert.match(node.status?.nodeInfo?.containerRuntimeVersion ?? "", /^containerd:\/\//);
  const internal = node.status?.addresses?.find((a) => a.type === "InternalIP");
  assert.equal(internal?.address, bed.bridgeIp);
  const names = (node.status?.images ?? []).flatMap((i) => i.names ?? []);
  assert.ok(
    names.some((n) => n.startsWith(bed.testImage.split(":")[0]!)),
    `test image on the node: ${names.join(", ")}`,
  );
  assert.ok(
    names.some((n) => n.startsWith(bed.pauseImage.split(":")[0]!)),
    `pause image on the node`,
  );
});
