// Authentication of the webhook's caller on the real control plane: a kube-apiserver started with an
// AdmissionConfiguration whose kubeConfigFile gives it a client certificate for the webhook's host:port, and the
// operator started with WEBHOOK_CLIENT_CA_FILE (the CA of that certificate). Pods are still injected through the
// apiserver; a direct request without a certificate, or with one of another CA, is refused in the TLS handshake.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:https";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { CertUsage, createCA, issueCert, type KeyPairPem } from "../controlplane/pki.ts";
import { applyCrds, createNamespace } from "../lib/kube.ts";
import { OPERATOR_NAMESPACE, operatorPorts, startOperator, type OperatorProcess } from "../lib/operator.ts";
import { waitFor } from "../lib/wait.ts";
import { bareSidecar, clients, createPusher, type Clients } from "./kube.ts";

const NS = "authn";

function postReview(url: string, ca: string, client?: KeyPairPem): Promise<number> {
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "direct",
      kind: { group: "", version: "v1", kind: "Pod" },
      operation: "CREATE",
      namespace: NS,
      object: { metadata: { name: "direct", labels: { app: "builder" } }, spec: { containers: [{ name: "c" }] } },
    },
  });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        ca,
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
        headers: { "content-type": "application/json" },
        signal: AbortSignal.timeout(5000),
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe(
  "webhook client authentication (WEBHOOK_CLIENT_CA_FILE) with a real kube-apiserver",
  { timeout: 240_000 },
  () => {
    let cp: ControlPlane;
    let c: Clients;
    let op: OperatorProcess | undefined;
    let dir = "";
    let servingCa = "";
    let apiserverClient: KeyPairPem;
    let stranger: KeyPairPem;
    let strangerCa = "";
    let clientCaPem = "";

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "mp-webhook-authn-"));
      const ports = await operatorPorts();
      const clientCa = await createCA({ commonName: "webhook client CA" });
      apiserverClient = await issueCert({ ca: clientCa, commonName: "kube-apiserver", usages: [CertUsage.client] });
      const otherCa = await createCA({ commonName: "someone else's CA" });
      strangerCa = otherCa.certPem;
      stranger = await issueCert({ ca: otherCa, commonName: "kube-apiserver", usages: [CertUsage.client] });
      clientCaPem = clientCa.certPem;
      writeFileSync(join(dir, "client-ca.crt"), clientCa.certPem);
      // The apiserver picks the user entry named after the webhook's host:port. JSON is YAML.
      const b64 = (s: string) => Buffer.from(s).toString("base64");
      writeFileSync(
        join(dir, "webhook-kubeconfig"),
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          users: [
            {
              name: `127.0.0.1:${ports.webhook}`,
              user: {
                "client-certificate-data": b64(apiserverClient.certPem),
                "client-key-data": b64(apiserverClient.keyPem),
              },
            },
          ],
        }),
      );
      writeFileSync(
        join(dir, "admission.json"),
        JSON.stringify({
          apiVersion: "apiserver.config.k8s.io/v1",
          kind: "AdmissionConfiguration",
          plugins: [
            {
              name: "MutatingAdmissionWebhook",
              configuration: {
                apiVersion: "apiserver.config.k8s.io/v1",
                kind: "WebhookAdmissionConfiguration",
                kubeConfigFile: join(dir, "webhook-kubeconfig"),
              },
            },
          ],
        }),
      );
      cp = await startControlPlane({
        apiserverFlags: [`--admission-control-config-file=${join(dir, "admission.json")}`],
      });
      c = clients(cp.kubeConfig);
      await applyCrds(cp);
      await createNamespace(cp.kubeConfig, OPERATOR_NAMESPACE);
      await createNamespace(cp.kubeConfig, NS);
      op = await startOperator({
        cp,
        name: "op-authn",
        ports,
        // CERT_VALIDITY sets the period of the certificate checks, and with it of the client CA file's: 18 s.
        env: { WEBHOOK_CLIENT_CA_FILE: join(dir, "client-ca.crt"), LOG_LEVEL: "info", CERT_VALIDITY: "180s" },
      });
      await op.waitReady();
      servingCa = await waitFor(
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
    });
    after(async () => {
      await op?.stop();
      await cp?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("pods created through the apiserver are injected (it presents its client certificate)", async () => {
      const pod = await waitFor(
        async () => {
          const p = await c.core.createNamespacedPod({
            namespace: NS,
            body: {
              metadata: { generateName: "builder-", labels: { app: "builder" } },
              spec: { containers: [{ name: "main", image: "busybox" }] },
            },
          });
          return bareSidecar(p).length === 1 ? p : undefined;
        },
        { timeoutMs: 30_000, message: "a pod created through the apiserver with the sidecar" },
      );
      assert.equal(bareSidecar(pod).length, 1);
    });

    it("refuses a direct review without a client certificate, or with one of another CA", async () => {
      await assert.rejects(postReview(op!.webhookUrl, servingCa), (err: NodeJS.ErrnoException) => {
        // The handshake fails: TLS alert "certificate required", or the connection reset.
        assert.match(`${err.code} ${err.message}`, /certificate|ECONNRESET|socket hang up|EPIPE/i);
        return true;
      });
      await assert.rejects(postReview(op!.webhookUrl, servingCa, stranger), (err: NodeJS.ErrnoException) => {
        assert.match(`${err.code} ${err.message}`, /certificate|unknown ca|ECONNRESET|socket hang up|EPIPE/i);
        return true;
      });
      // The same request with the apiserver's certificate is answered: the refusals are the authentication's.
      assert.equal(await postReview(op!.webhookUrl, servingCa, apiserverClient), 200);
    });

    it("re-reads the client CA file when it changes", async () => {
      // Trust the other CA as well: its certificate is accepted once the file is re-read, without a restart.
      writeFileSync(join(dir, "client-ca.crt"), `${clientCaPem}${strangerCa}`);
      await waitFor(async () => (await postReview(op!.webhookUrl, servingCa, stranger)) === 200, {
        timeoutMs: 45_000,
        intervalMs: 1000,
        message: "a certificate of the newly trusted CA accepted",
      });
      assert.equal(await postReview(op!.webhookUrl, servingCa, apiserverClient), 200);
      assert.ok(op!.lines.some((l) => l.includes("Reloaded the webhook's client CA")));
    });
  },
);
