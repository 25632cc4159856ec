import { it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { parseOperatorConfig } from "../config.ts";
import { webhookConfiguration } from "./registration.ts";

const manifest = parse(
  readFileSync(new URL("../../../config/webhook/manifests.yaml", import.meta.url), "utf8"),
) as unknown;

it("config/webhook/manifests.yaml is what the operator registers, with the default settings", () => {
  assert.deepEqual(manifest, webhookConfiguration(parseOperatorConfig({})));
});

it("keeps the safety properties the issue asks for", () => {
  const w = webhookConfiguration(parseOperatorConfig({})).webhooks![0]!;
  assert.equal(w.failurePolicy, "Ignore");
  assert.equal(w.sideEffects, "NoneOnDryRun");
  assert.ok(w.timeoutSeconds! <= 10);
  assert.equal(w.reinvocationPolicy, "IfNeeded");
  assert.deepEqual(w.admissionReviewVersions, ["v1"]);
  const excluded = w.namespaceSelector?.matchExpressions?.find((e) => e.key === "kubernetes.io/metadata.name")?.values;
  assert.deepEqual(excluded, ["kube-system", "kube-node-lease", "kube-public", "metrics-pusher-system"]);
});

it("the namespaceSelector excludes exactly the namespaces mutate() skips as SystemNamespace", () => {
  for (const POD_NAMESPACE of ["metrics-pusher-system", "mp-test"]) {
    const c = parseOperatorConfig({ POD_NAMESPACE });
    const w = webhookConfiguration(c).webhooks![0]!;
    const excluded = w.namespaceSelector?.matchExpressions?.find((e) => e.key === "kubernetes.io/metadata.name");
    assert.equal(excluded?.operator, "NotIn");
    assert.deepEqual([...(excluded?.values ?? [])].sort(), [...c.systemNamespaces].sort());
  }
});

it("URL mode registers clientConfig.url instead of the Service, and excludes the configured namespace", () => {
  const c = parseOperatorConfig({ WEBHOOK_URL: "https://127.0.0.1:9443/mutate-v1-pod", POD_NAMESPACE: "mp-test" });
  const w = webhookConfiguration(c, "Q0E=").webhooks![0]!;
  assert.deepEqual(w.clientConfig, { url: "https://127.0.0.1:9443/mutate-v1-pod", caBundle: "Q0E=" });
  assert.ok(w.namespaceSelector?.matchExpressions?.[0]?.values?.includes("mp-test"));
});
