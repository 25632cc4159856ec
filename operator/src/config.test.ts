import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { DEFAULT_PUSHER_IMAGE, OperatorConfigError, SETTINGS, parseOperatorConfig } from "./config.ts";

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

describe("operator config", () => {
  it("has documented defaults, frozen", () => {
    const c = parseOperatorConfig({ POD_NAME: "op-0" });
    assert.equal(c.pusherImage, `ghcr.io/metrics-pusher/pusher:${version}`);
    assert.equal(c.pusherImage, DEFAULT_PUSHER_IMAGE);
    assert.equal(c.webhookPort, 9443);
    assert.equal(c.metricsPort, 8080);
    assert.equal(c.probePort, 8081);
    assert.equal(c.podNamespace, "metrics-pusher-system");
    assert.equal(c.podName, "op-0");
    assert.equal(c.webhookUrl, undefined);
    assert.deepEqual(c.watchNamespaces, []);
    assert.deepEqual(c.systemNamespaces, ["kube-system", "kube-node-lease", "kube-public", "metrics-pusher-system"]);
    assert.ok(c.certDnsNames.includes("metrics-pusher-webhook.metrics-pusher-system.svc"));
    assert.deepEqual(c.sidecarResources, { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "192Mi" } });
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.sidecarResources.requests));
    assert.throws(() => ((c as { webhookPort: number }).webhookPort = 1));
  });

  it("SIDECAR_RESOURCES takes quantities as the apiserver does: strings or numbers (issue 11, item 4)", () => {
    const c = parseOperatorConfig({ POD_NAME: "op-0", SIDECAR_RESOURCES: '{"requests":{"cpu":1,"memory":"64Mi"}}' });
    assert.deepEqual(c.sidecarResources, { requests: { cpu: 1, memory: "64Mi" } });
  });

  it("flags win over env, both spellings", () => {
    const c = parseOperatorConfig({ WEBHOOK_PORT: "1000", LOG_LEVEL: "warn" }, [
      "--webhook-port=2000",
      "--log-level",
      "debug",
      "--watch-namespaces",
      "a, b",
    ]);
    assert.equal(c.webhookPort, 2000);
    assert.equal(c.logLevel, "debug");
    assert.deepEqual(c.watchNamespaces, ["a", "b"]);
  });

  it("URL mode: puts the URL's host into the certificate SANs", () => {
    const ip = parseOperatorConfig({ WEBHOOK_URL: "https://127.0.0.1:9443/mutate-v1-pod" });
    assert.equal(ip.webhookUrl, "https://127.0.0.1:9443/mutate-v1-pod");
    assert.deepEqual(ip.certIpAddresses, ["127.0.0.1"]);
    const dns = parseOperatorConfig({ WEBHOOK_URL: "https://webhook.example:8443/mutate-v1-pod" });
    assert.ok(dns.certDnsNames.includes("webhook.example"));
    assert.deepEqual(dns.certIpAddresses, []);
  });

  const bad: Array<{ name: string; env: Record<string, string>; argv?: string[]; settings: string[] }> = [
    { name: "a port out of range", env: { WEBHOOK_PORT: "70000" }, settings: ["WEBHOOK_PORT"] },
    { name: "a port that is not a number", env: { METRICS_PORT: "80a" }, settings: ["METRICS_PORT"] },
    { name: "clashing ports", env: { METRICS_PORT: "9443" }, settings: ["WEBHOOK_PORT"] },
    {
      name: "http webhook URL",
      env: { WEBHOOK_URL: "http://127.0.0.1:9443/mutate-v1-pod" },
      settings: ["WEBHOOK_URL"],
    },
    { name: "wrong webhook path", env: { WEBHOOK_URL: "https://127.0.0.1:9443/mutate" }, settings: ["WEBHOOK_URL"] },
    { name: "a zero duration", env: { ROLLOUT_INTERVAL: "0s" }, settings: ["ROLLOUT_INTERVAL"] },
    { name: "a duration without unit", env: { CERT_VALIDITY: "90" }, settings: ["CERT_VALIDITY"] },
    { name: "leaf outliving the CA", env: { CERT_VALIDITY: "100h", CA_VALIDITY: "10h" }, settings: ["CERT_VALIDITY"] },
    { name: "renew deadline ≥ lease", env: { LEASE_RENEW_DEADLINE: "20s" }, settings: ["LEASE_RENEW_DEADLINE"] },
    { name: "bad log level", env: { LOG_LEVEL: "verbose" }, settings: ["LOG_LEVEL"] },
    { name: "bad boolean", env: { LEADER_ELECTION: "yes" }, settings: ["LEADER_ELECTION"] },
    { name: "bad image", env: { PUSHER_IMAGE: "Not An Image" }, settings: ["PUSHER_IMAGE"] },
    { name: "bad namespace", env: { POD_NAMESPACE: "Bad_NS" }, settings: ["POD_NAMESPACE"] },
    { name: "bad watched namespace", env: { WATCH_NAMESPACES: "ok,NOT OK" }, settings: ["WATCH_NAMESPACES"] },
    {
      name: "bad resources JSON",
      env: { SIDECAR_RESOURCES: '{"requests":{"cpu":"lots"}}' },
      settings: ["SIDECAR_RESOURCES"],
    },
    { name: "root user", env: { SIDECAR_RUN_AS_USER: "0" }, settings: ["SIDECAR_RUN_AS_USER"] },
    { name: "an unknown flag", env: {}, argv: ["--webhok-port=1"], settings: ["flags"] },
    {
      name: "several problems at once",
      env: { WEBHOOK_PORT: "x", LOG_LEVEL: "loud", BIND_ADDRESS: "localhost" },
      settings: ["WEBHOOK_PORT", "BIND_ADDRESS", "LOG_LEVEL"],
    },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}, naming the setting and the value`, () => {
      let error: unknown;
      try {
        parseOperatorConfig(c.env, c.argv ?? []);
      } catch (err) {
        error = err;
      }
      assert.ok(error instanceof OperatorConfigError, "throws OperatorConfigError");
      assert.deepEqual(
        error.problems.map((p) => p.setting),
        c.settings,
      );
      for (const p of error.problems) {
        if (p.setting === "flags") continue;
        assert.ok(error.message.includes(p.setting) && error.message.includes(`--${SETTINGS[p.setting].flag}`));
        const given = c.env[p.setting];
        if (given !== undefined) assert.ok(p.message.includes(JSON.stringify(given)), `${p.message} names ${given}`);
      }
    });
  }
});
