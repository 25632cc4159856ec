// The real kube-apiserver, with the project's crds/ applied, refuses every invalid MetricsPusher in this table with
// a message that names the offending field; and a MetricsPusher can never reference a Secret of another namespace
// (its Secret references have no namespace field: strict field validation refuses one, and without it the field is
// pruned, so the reference stays in the MetricsPusher's own namespace).
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { CustomObjectsApi } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../controlplane/harness.ts";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../../operator/src/api/index.ts";
import { apiCode, apiMessage, applyCrds, createNamespace } from "../lib/kube.ts";

const NS = "crd-table";

/**
 * A spec as it goes on the wire: the cases put values of the wrong type in it on purpose (a number for the url, a
 * string for the selector), so its fields are `unknown`; remoteWrite is the one object the cases reach into.
 */
interface RawSpec {
  [field: string]: unknown;
  remoteWrite: Record<string, unknown>;
}

function valid(): RawSpec {
  return {
    selector: { matchLabels: { app: "builder" } },
    remoteWrite: { url: "http://prometheus.monitoring:9090/api/v1/write" },
  };
}

interface Case {
  name: string;
  /** Changes a valid spec into an invalid one. */
  spec: (s: RawSpec) => void;
  /** The field the message must name (as the apiserver writes paths: spec.remoteWrite.url). */
  field: string | RegExp;
}

const cases: Case[] = [
  { name: "no selector", spec: (s) => delete s.selector, field: "spec.selector" },
  { name: "no remoteWrite", spec: (s: Record<string, unknown>) => delete s.remoteWrite, field: "spec.remoteWrite" },
  { name: "no remoteWrite.url", spec: (s) => delete s.remoteWrite.url, field: "spec.remoteWrite.url" },
  {
    name: "url with ftp scheme",
    spec: (s) => (s.remoteWrite.url = "ftp://prometheus/api/v1/write"),
    field: "spec.remoteWrite.url",
  },
  {
    name: "url without scheme",
    spec: (s) => (s.remoteWrite.url = "prometheus:9090/api/v1/write"),
    field: "spec.remoteWrite.url",
  },
  { name: "empty url", spec: (s) => (s.remoteWrite.url = ""), field: "spec.remoteWrite.url" },
  { name: "url that is not a string", spec: (s) => (s.remoteWrite.url = 42), field: "spec.remoteWrite.url" },
  { name: "zero pushInterval", spec: (s) => (s.pushInterval = "0s"), field: "spec.pushInterval" },
  { name: "negative pushInterval", spec: (s) => (s.pushInterval = "-5s"), field: "spec.pushInterval" },
  { name: "pushInterval without unit", spec: (s) => (s.pushInterval = "30"), field: "spec.pushInterval" },
  { name: "pushInterval garbage", spec: (s) => (s.pushInterval = "soon"), field: "spec.pushInterval" },
  { name: "zero remoteWrite.timeout", spec: (s) => (s.remoteWrite.timeout = "0ms"), field: "spec.remoteWrite.timeout" },
  {
    name: "reserved header Content-Type",
    spec: (s) => (s.remoteWrite.headers = { "Content-Type": "text/plain" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header authorization (any case)",
    spec: (s) => (s.remoteWrite.headers = { authorization: "Bearer x" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header X-Prometheus-Remote-Write-Version",
    spec: (s) => (s.remoteWrite.headers = { "X-Prometheus-Remote-Write-Version": "2.0.0" }),
    field: "spec.remoteWrite.headers",
  },
  {
    name: "reserved header Content-Encoding",
    spec: (s) => (s.remoteWrite.headers = { "Content-Encoding": "gzip" }),
    field: "spec.remoteWrite.headers",
  },
  { name: "unknown logLevel", spec: (s) => (s.logLevel = "verbose"), field: "spec.logLevel" },
  { name: "unknown sidecarMode", spec: (s) => (s.sidecarMode = "Sometimes"), field: "spec.sidecarMode" },
  { name: "unknown rolloutStrategy", spec: (s) => (s.rolloutStrategy = "Always"), field: "spec.rolloutStrategy" },
  {
    name: "scrape port 0",
    spec: (s) => (s.scrape = { targets: [{ port: 0 }] }),
    field: /spec\.scrape\.targets(\[0\])?\.port/,
  },
  {
    name: "scrape port 70000",
    spec: (s) => (s.scrape = { targets: [{ port: 70000 }] }),
    field: /spec\.scrape\.targets(\[0\])?\.port/,
  },
  {
    name: "scrape target without port",
    spec: (s) => (s.scrape = { targets: [{ path: "/metrics" }] }),
    field: /spec\.scrape\.targets(\[0\])?\.port/,
  },
  {
    name: "bearerTokenSecret without key",
    spec: (s) => (s.remoteWrite.bearerTokenSecret = { name: "token" }),
    field: "spec.remoteWrite.bearerTokenSecret.key",
  },
  {
    name: "bearerTokenSecret without name",
    spec: (s) => (s.remoteWrite.bearerTokenSecret = { key: "token" }),
    field: "spec.remoteWrite.bearerTokenSecret.name",
  },
  {
    name: "basicAuth without passwordSecret",
    spec: (s) => (s.remoteWrite.basicAuth = { username: "u" }),
    field: "spec.remoteWrite.basicAuth.passwordSecret",
  },
  {
    name: "insecureSkipVerify as a string",
    spec: (s) => (s.remoteWrite.insecureSkipVerify = "yes"),
    field: "spec.remoteWrite.insecureSkipVerify",
  },
  { name: "buffer.maxSamples 0", spec: (s) => (s.buffer = { maxSamples: 0 }), field: "spec.buffer.maxSamples" },
  { name: "selector that is a string", spec: (s) => (s.selector = "app=builder"), field: "spec.selector" },
  {
    name: "externalLabels with an invalid label name",
    spec: (s) => (s.externalLabels = { "1bad-name": "x" }),
    field: "spec.externalLabels",
  },
];

describe("invalid MetricsPushers refused by the real apiserver", () => {
  let cp: ControlPlane;
  let api: CustomObjectsApi;
  before(async () => {
    cp = await startControlPlane();
    await applyCrds(cp);
    await createNamespace(cp.kubeConfig, NS);
    api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await cp?.stop();
  });

  const create = (name: string, spec: unknown, fieldValidation?: string) =>
    api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      body: { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec },
      ...(fieldValidation ? { fieldValidation } : {}),
    });

  it("accepts the valid base object (so each refusal below is due to its one change)", async () => {
    await create("valid", valid());
  });

  assert.ok(cases.length >= 20, "the table must hold at least 20 cases");
  for (const [i, c] of cases.entries()) {
    it(`refuses: ${c.name}`, async () => {
      const spec = valid();
      c.spec(spec);
      let message = "";
      try {
        await create(`invalid-${i}`, spec);
      } catch (e) {
        assert.equal(apiCode(e), 422, `expected 422 Unprocessable Entity, got ${apiCode(e)}: ${apiMessage(e)}`);
        message = apiMessage(e);
      }
      assert.notEqual(message, "", `the apiserver accepted ${JSON.stringify(spec)}`);
      if (typeof c.field === "string")
        assert.ok(message.includes(c.field), `message does not name ${c.field}: ${message}`);
      else assert.match(message, c.field, `message does not name the field: ${message}`);
    });
  }

  it("has no way to name a Secret in another namespace: strict validation refuses the field, lax validation drops it", async () => {
    const spec = valid();
    spec.remoteWrite.bearerTokenSecret = { name: "token", key: "token", namespace: "kube-system" };
    let message = "";
    try {
      await create("cross-ns-strict", spec, "Strict");
    } catch (e) {
      message = apiMessage(e);
    }
    assert.match(
      message,
      /unknown field "?spec\.remoteWrite\.bearerTokenSecret\.namespace"?/,
      `strict create was not refused for the namespace field: ${message}`,
    );

    const created = (await create("cross-ns-lax", spec, "Ignore")) as {
      spec: { remoteWrite: { bearerTokenSecret: Record<string, unknown> } };
    };
    assert.deepEqual(
      created.spec.remoteWrite.bearerTokenSecret,
      { name: "token", key: "token" },
      "the namespace field survived in storage",
    );
  });
});
