import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, request } from "node:https";
import type { AddressInfo } from "node:net";
import { X509Certificate } from "node:crypto";
import fastJsonPatch from "fast-json-patch";
import pino from "pino";
import type { V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import {
  ConflictError,
  SecretKeys,
  createCA,
  createDirCertSource,
  createSecretCertSource,
  fingerprint,
  inspectBundle,
  issueLeaf,
} from "./certs.ts";
import type { CertSpec, CertStore } from "./certs.ts";
import { webhookConfiguration } from "./registration.ts";
import type { RegistrationSettings } from "./registration.ts";

const log = pino({ level: "silent" });
const DAY = 86_400_000;
const spec: CertSpec = {
  dnsNames: ["metrics-pusher-webhook.metrics-pusher-system.svc"],
  ipAddresses: ["127.0.0.1"],
  leafValidityMs: 90 * DAY,
  caValidityMs: 3650 * DAY,
};
const reg: RegistrationSettings = {
  webhookConfigName: "metrics-pusher",
  webhookServiceName: "metrics-pusher-webhook",
  podNamespace: "metrics-pusher-system",
  webhookUrl: undefined,
};

function fakeStore(init: { data?: Record<string, string>; mwc?: V1MutatingWebhookConfiguration } = {}) {
  const state = {
    secret: init.data
      ? { data: { ...init.data }, resourceVersion: "1" }
      : (undefined as { data: Record<string, string>; resourceVersion: string } | undefined),
    mwc: init.mwc ? structuredClone(init.mwc) : (undefined as V1MutatingWebhookConfiguration | undefined),
    writes: 0,
    rv: 1,
    /** Simulates another replica creating the Secret between our read and our create. */
    raceOnCreate: undefined as Record<string, string> | undefined,
  };
  const store: CertStore = {
    async readSecret() {
      return state.secret ? structuredClone(state.secret) : undefined;
    },
    async createSecret(data) {
      if (state.raceOnCreate) {
        state.secret = { data: state.raceOnCreate, resourceVersion: String(++state.rv) };
        state.raceOnCreate = undefined;
      }
      if (state.secret) throw new ConflictError("exists");
      state.writes++;
      state.secret = { data: { ...data }, resourceVersion: String(++state.rv) };
    },
    async updateSecret(data, rv) {
      if (!state.secret || state.secret.resourceVersion !== rv) throw new ConflictError("stale");
      state.writes++;
      state.secret = { data: { ...data }, resourceVersion: String(++state.rv) };
    },
    async readWebhook() {
      return state.mwc ? structuredClone(state.mwc) : undefined;
    },
    async createWebhook(b) {
      state.mwc = structuredClone(b);
    },
    async patchWebhook(ops) {
      state.mwc = fastJsonPatch.applyPatch(state.mwc!, ops as fastJsonPatch.Operation[], true, false).newDocument;
    },
  };
  return { store, state };
}

function source(store: CertStore, o: { leader?: boolean; now?: () => Date; registration?: RegistrationSettings } = {}) {
  return createSecretCertSource({
    store,
    spec,
    registration: o.registration ?? reg,
    isLeader: async () => o.leader ?? true,
    log,
    checkIntervalMs: 3_600_000,
    ...(o.now ? { now: o.now } : {}),
  });
}

async function validBundle(now = new Date()) {
  const ca = await createCA(now, spec.caValidityMs);
  const leaf = await issueLeaf(ca, spec, now);
  return {
    [SecretKeys.caCert]: ca.cert,
    [SecretKeys.caKey]: ca.key,
    [SecretKeys.tlsCert]: leaf.cert,
    [SecretKeys.tlsKey]: leaf.key,
  };
}

describe("inspectBundle", () => {
  it("judges every broken Secret", async () => {
    const good = await validBundle();
    const other = await validBundle();
    const now = new Date();
    const cases: Array<{ name: string; data: Record<string, string> | undefined; kind: string }> = [
      { name: "missing Secret", data: undefined, kind: "replaceAll" },
      { name: "fresh and valid", data: good, kind: "ok" },
      {
        name: "CA key swapped (tampered)",
        data: { ...good, [SecretKeys.caKey]: other[SecretKeys.caKey] },
        kind: "replaceAll",
      },
      {
        name: "CA certificate garbage",
        data: { ...good, [SecretKeys.caCert]: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" },
        kind: "replaceAll",
      },
      {
        name: "leaf from another CA",
        data: {
          ...good,
          [SecretKeys.tlsCert]: other[SecretKeys.tlsCert],
          [SecretKeys.tlsKey]: other[SecretKeys.tlsKey],
        },
        kind: "reissueLeaf",
      },
      {
        name: "leaf key swapped",
        data: { ...good, [SecretKeys.tlsKey]: other[SecretKeys.tlsKey] },
        kind: "reissueLeaf",
      },
      { name: "leaf missing", data: { ...good, [SecretKeys.tlsCert]: "" }, kind: "reissueLeaf" },
    ];
    for (const c of cases) assert.equal(inspectBundle(c.data, spec, now).kind, c.kind, c.name);
  });

  it("asks to renew at two thirds of the lifetime, and replaces when expired", async () => {
    const t0 = new Date("2026-01-01T00:00:00Z");
    const b = await validBundle(t0);
    assert.deepEqual(pick(inspectBundle(b, spec, new Date(t0.getTime() + 50 * DAY))), { kind: "ok", renew: "none" });
    assert.deepEqual(pick(inspectBundle(b, spec, new Date(t0.getTime() + 70 * DAY))), { kind: "ok", renew: "leaf" });
    assert.equal(inspectBundle(b, spec, new Date(t0.getTime() + 91 * DAY)).kind, "reissueLeaf");
    assert.equal(inspectBundle(b, spec, new Date(t0.getTime() + 3651 * DAY)).kind, "replaceAll");
  });

  it("counts a short lifetime from issue, not from the backdated notBefore (no renewal loop)", async () => {
    const t0 = new Date("2026-01-01T00:00:00Z");
    const ca = await createCA(t0, 3650 * DAY);
    const shortSpec = { ...spec, leafValidityMs: 45_000 };
    const leaf = await issueLeaf(ca, shortSpec, t0);
    const b = {
      [SecretKeys.caCert]: ca.cert,
      [SecretKeys.caKey]: ca.key,
      [SecretKeys.tlsCert]: leaf.cert,
      [SecretKeys.tlsKey]: leaf.key,
    };
    assert.deepEqual(
      pick(inspectBundle(b, shortSpec, t0)),
      { kind: "ok", renew: "none" },
      "a leaf just issued is not due",
    );
    assert.deepEqual(pick(inspectBundle(b, shortSpec, new Date(t0.getTime() + 29_000))), { kind: "ok", renew: "none" });
    assert.deepEqual(pick(inspectBundle(b, shortSpec, new Date(t0.getTime() + 31_000))), { kind: "ok", renew: "leaf" });
  });

  it("asks for a new leaf when the SANs changed (URL mode host)", async () => {
    const b = await validBundle();
    assert.equal(inspectBundle(b, { ...spec, ipAddresses: ["127.0.0.2"] }, new Date()).kind, "reissueLeaf");
  });
});

function pick(v: ReturnType<typeof inspectBundle>) {
  return v.kind === "ok" ? { kind: v.kind, renew: v.renew } : { kind: v.kind };
}

describe("Secret-backed certificate source", () => {
  it("creates the Secret once and patches the caBundle", async () => {
    const f = fakeStore({ mwc: webhookConfiguration(reg) });
    const s = source(f.store);
    const m = await s.start();
    await s.stop();
    assert.equal(f.state.writes, 1);
    assert.equal(m.cert, f.state.secret?.data[SecretKeys.tlsCert]);
    const san = new X509Certificate(m.cert).subjectAltName ?? "";
    assert.match(san, /DNS:metrics-pusher-webhook\.metrics-pusher-system\.svc/);
    assert.match(san, /IP Address:127\.0\.0\.1/);
    assert.equal(
      f.state.mwc?.webhooks?.[0]?.clientConfig.caBundle,
      Buffer.from(f.state.secret!.data[SecretKeys.caCert]!).toString("base64"),
    );
  });

  it("on a create conflict, reads back and uses the other replica's Secret", async () => {
    const theirs = await validBundle();
    const f = fakeStore();
    f.state.raceOnCreate = theirs;
    const s = source(f.store);
    const m = await s.start();
    await s.stop();
    assert.equal(f.state.writes, 0);
    assert.equal(m.cert, theirs[SecretKeys.tlsCert]);
  });

  it("two replicas starting together end up with the same certificate", async () => {
    const f = fakeStore();
    const [a, b] = [source(f.store), source(f.store, { leader: false })];
    const [ma, mb] = await Promise.all([a.start(), b.start()]);
    await Promise.all([a.stop(), b.stop()]);
    assert.equal(fingerprint(ma.cert), fingerprint(mb.cert));
  });

  const broken = [
    { name: "expired", make: async () => validBundle(new Date(Date.now() - 4000 * DAY)), keepsCA: false },
    {
      name: "tampered CA key",
      make: async () => ({ ...(await validBundle()), [SecretKeys.caKey]: (await validBundle())[SecretKeys.caKey] }),
      keepsCA: false,
    },
    {
      name: "tampered leaf",
      make: async () => ({
        ...(await validBundle()),
        [SecretKeys.tlsCert]: (await validBundle())[SecretKeys.tlsCert],
      }),
      keepsCA: true,
    },
  ];
  for (const c of broken) {
    it(`replaces a ${c.name} Secret at start, even on a non-leader`, async () => {
      const data = await c.make();
      const f = fakeStore({ data });
      const s = source(f.store, { leader: false });
      const m = await s.start();
      await s.stop();
      assert.equal(f.state.writes, 1);
      assert.equal(inspectBundle(f.state.secret?.data, spec, new Date()).kind, "ok");
      assert.equal(m.cert, f.state.secret?.data[SecretKeys.tlsCert]);
      assert.equal(f.state.secret?.data[SecretKeys.caCert]?.trim() === data[SecretKeys.caCert]?.trim(), c.keepsCA);
    });
  }

  it("only the leader renews before expiry; followers pick the new leaf up and swap", async () => {
    const t0 = Date.now();
    let offset = 0;
    const now = () => new Date(t0 + offset);
    const f = fakeStore({ data: await validBundle(new Date(t0)) });
    const leader = source(f.store, { leader: true, now });
    const follower = source(f.store, { leader: false, now });
    const first = await follower.start();
    await leader.start();
    const swaps: string[] = [];
    follower.onChange((m) => swaps.push(fingerprint(m.cert)));
    offset = 70 * DAY;
    await follower.sync();
    assert.equal(f.state.writes, 0, "a follower never renews");
    await leader.sync();
    assert.equal(f.state.writes, 1);
    await follower.sync();
    assert.equal(swaps.length, 1);
    assert.notEqual(swaps[0], fingerprint(first.cert));
    assert.equal(swaps[0], fingerprint(f.state.secret!.data[SecretKeys.tlsCert]!));
    await Promise.all([leader.stop(), follower.stop()]);
  });

  it("rotates the CA with an overlap: the caBundle trusts old and new", async () => {
    const t0 = Date.now();
    const short = { ...spec, caValidityMs: 30 * DAY, leafValidityMs: 10 * DAY };
    const f = fakeStore({ mwc: webhookConfiguration(reg) });
    const s = createSecretCertSource({
      store: f.store,
      spec: short,
      registration: reg,
      isLeader: async () => true,
      log,
      checkIntervalMs: 3_600_000,
      now: () => new Date(t0),
    });
    await s.start();
    await s.stop();
    const oldCa = f.state.secret!.data[SecretKeys.caCert]!;
    const later = createSecretCertSource({
      store: f.store,
      spec: short,
      registration: reg,
      isLeader: async () => true,
      log,
      checkIntervalMs: 3_600_000,
      now: () => new Date(t0 + 21 * DAY),
    });
    await later.start();
    await later.stop();
    const bundle = f.state.secret!.data[SecretKeys.caCert]!;
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.ok(bundle.includes(oldCa.trim()));
    assert.equal(f.state.mwc?.webhooks?.[0]?.clientConfig.caBundle, Buffer.from(bundle).toString("base64"));
  });

  it("re-patches a caBundle someone reset", async () => {
    const f = fakeStore({ mwc: webhookConfiguration(reg) });
    const s = source(f.store);
    await s.start();
    const want = f.state.mwc!.webhooks![0]!.clientConfig.caBundle;
    f.state.mwc!.webhooks![0]!.clientConfig.caBundle = "";
    await s.sync();
    await s.stop();
    assert.equal(f.state.mwc!.webhooks![0]!.clientConfig.caBundle, want);
  });

  it("URL mode: creates the webhook configuration with clientConfig.url", async () => {
    const f = fakeStore();
    const url = "https://127.0.0.1:9443/mutate-v1-pod";
    const s = source(f.store, { registration: { ...reg, webhookUrl: url } });
    await s.start();
    await s.stop();
    const cc = f.state.mwc?.webhooks?.[0]?.clientConfig;
    assert.equal(cc?.url, url);
    assert.equal(cc?.service, undefined);
    assert.ok(cc?.caBundle);
  });

  it("swaps the serving certificate of a live HTTPS server without a restart", async () => {
    // Start 70 days in the past so that "now + 70 days" (renewal time) is the real clock the TLS client checks.
    const t0 = Date.now() - 70 * DAY;
    let offset = 0;
    const f = fakeStore({ data: await validBundle(new Date(t0)) });
    const s = source(f.store, { now: () => new Date(t0 + offset) });
    const m = await s.start();
    const server = createServer({ cert: m.cert, key: m.key }, (_req, res) => res.end("ok"));
    s.onChange((n) => server.setSecureContext({ cert: n.cert, key: n.key }));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const served = () =>
      new Promise<string>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port, ca: f.state.secret!.data[SecretKeys.caCert], agent: false },
          (res) => {
            const peer = (res.socket as import("node:tls").TLSSocket).getPeerX509Certificate();
            res.resume();
            resolve(peer ? createFingerprint(peer) : "");
          },
        );
        req.on("error", reject);
        req.end();
      });
    try {
      const before = await served();
      offset = 70 * DAY;
      await s.sync();
      const after = await served();
      assert.equal(before, fingerprint(m.cert));
      assert.notEqual(after, before);
      assert.equal(after, fingerprint(f.state.secret!.data[SecretKeys.tlsCert]!));
    } finally {
      await s.stop();
      server.close();
    }
  });
});

function createFingerprint(c: X509Certificate): string {
  return fingerprint(c.toString());
}

describe("directory certificate source", () => {
  it("loads tls.crt/tls.key and reloads on change", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mp-certs-"));
    try {
      const a = await validBundle();
      await writeFile(join(dir, "tls.crt"), a[SecretKeys.tlsCert]);
      await writeFile(join(dir, "tls.key"), a[SecretKeys.tlsKey]);
      const s = createDirCertSource({ dir, log, checkIntervalMs: 50 });
      const m = await s.start();
      assert.equal(m.cert, a[SecretKeys.tlsCert]);
      const changed = new Promise<string>((r) => s.onChange((n) => r(n.cert)));
      const b = await validBundle();
      // cert-manager replaces files atomically; do the same so no half-written pair is seen.
      await writeFile(join(dir, "tls.key.new"), b[SecretKeys.tlsKey]);
      await writeFile(join(dir, "tls.crt.new"), b[SecretKeys.tlsCert]);
      await rename(join(dir, "tls.key.new"), join(dir, "tls.key"));
      await rename(join(dir, "tls.crt.new"), join(dir, "tls.crt"));
      assert.equal(await changed, b[SecretKeys.tlsCert]);
      await s.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
