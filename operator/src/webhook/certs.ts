// Webhook serving certificates.
// Self-managed (default): a CA and a leaf kept in a Secret in the operator's namespace. Created once — on a create
// conflict the other replica's Secret is read back; an expired, tampered or wrong-SAN Secret is replaced; only the
// leader renews before expiry; every replica re-reads the Secret periodically and swaps its certificate in memory
// (server.setSecureContext) without a restart; the MutatingWebhookConfiguration's caBundle is patched when it differs
// (so a reset by `kubectl apply` or a Helm upgrade is undone).
// Directory mode (cert-manager): tls.crt/tls.key from a directory, reloaded on change; caBundle is cert-manager's job.
import "reflect-metadata";
import { createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { readFile, watch } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { AdmissionregistrationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { KubeConfig, V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiStatus } from "../kube/errors.ts";
import type { OperatorMetrics } from "../metrics.ts";
import { webhookConfiguration } from "./registration.ts";
import type { RegistrationSettings } from "./registration.ts";

x509.cryptoProvider.set(globalThis.crypto);
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
// A peer whose clock is a little behind still accepts a fresh certificate.
const BACKDATE_MS = 5 * 60_000;

export const SecretKeys = { caCert: "ca.crt", caKey: "ca.key", tlsCert: "tls.crt", tlsKey: "tls.key" } as const;

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** PEM CA bundle the apiserver must trust (self-managed mode only). */
  readonly caBundle?: string;
  readonly notAfter: Date;
}

export interface CertSpec {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly leafValidityMs: number;
  readonly caValidityMs: number;
}

// ---- pure-ish PKI ----

function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString("hex");
}

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");
}

export async function createCA(now: Date, validityMs: number): Promise<{ cert: string; key: string }> {
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [`metrics-pusher webhook CA ${now.toISOString()}`] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityMs),
    signingAlgorithm: KEY_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString("pem"), key: await keyPem(keys) };
}

export async function issueLeaf(
  ca: { cert: string; key: string },
  spec: CertSpec,
  now: Date,
): Promise<{ cert: string; key: string }> {
  const caCert = new x509.X509Certificate(firstPem(ca.cert));
  const caKey = await webcrypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(ca.key), KEY_ALGORITHM, false, [
    "sign",
  ]);
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  // Never outlive the CA: the apiserver would reject the chain.
  const notAfter = Math.min(now.getTime() + spec.leafValidityMs, caCert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [spec.dnsNames[0] ?? spec.ipAddresses[0] ?? "metrics-pusher-webhook"] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(notAfter),
    signingAlgorithm: KEY_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      new x509.SubjectAlternativeNameExtension([
        ...spec.dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...spec.ipAddresses.map((value) => ({ type: "ip" as const, value })),
      ]),
    ],
  });
  return { cert: cert.toString("pem"), key: await keyPem(keys) };
}

function firstPem(bundle: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(bundle);
  if (!m) throw new Error("no PEM certificate");
  return m[0];
}

function allPems(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function keyMatches(certPem: string, keyPemText: string): boolean {
  const fromCert = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  const fromKey = createPublicKey(createPrivateKey(keyPemText)).export({ type: "spki", format: "der" });
  return fromCert.equals(fromKey);
}

export type BundleVerdict =
  | {
      readonly kind: "ok";
      readonly renew: "none" | "leaf" | "ca";
      readonly leafNotAfter: Date;
      readonly caNotAfter: Date;
    }
  /** The CA is unusable: start over. */
  | { readonly kind: "replaceAll"; readonly why: string }
  /** The CA is fine but the leaf is not: issue a new leaf. */
  | { readonly kind: "reissueLeaf"; readonly why: string };

/** Judges a Secret's data at `now`: usable, due for renewal (a third of the lifetime left), or to be replaced. */
export function inspectBundle(
  data: Readonly<Record<string, string>> | undefined,
  spec: CertSpec,
  now: Date,
): BundleVerdict {
  const caCertPem = data?.[SecretKeys.caCert];
  const caKeyPem = data?.[SecretKeys.caKey];
  let ca: X509Certificate;
  try {
    if (!caCertPem || !caKeyPem) throw new Error("CA missing");
    ca = new X509Certificate(firstPem(caCertPem));
    if (!ca.ca) throw new Error("CA certificate is not a CA");
    if (!keyMatches(ca.toString(), caKeyPem)) throw new Error("CA key does not match the CA certificate");
  } catch (err) {
    return { kind: "replaceAll", why: (err as Error).message };
  }
  const caFrom = new Date(ca.validFrom).getTime();
  const caTo = new Date(ca.validTo).getTime();
  if (caTo <= now.getTime()) return { kind: "replaceAll", why: `CA expired at ${new Date(caTo).toISOString()}` };
  if (caFrom > now.getTime() + BACKDATE_MS) return { kind: "replaceAll", why: "CA not yet valid" };

  const leafPem = data?.[SecretKeys.tlsCert];
  const leafKey = data?.[SecretKeys.tlsKey];
  let leaf: X509Certificate;
  try {
    if (!leafPem || !leafKey) throw new Error("serving certificate missing");
    leaf = new X509Certificate(firstPem(leafPem));
    if (!leaf.verify(ca.publicKey)) throw new Error("serving certificate not signed by the CA");
    if (!keyMatches(leaf.toString(), leafKey)) throw new Error("serving key does not match the certificate");
  } catch (err) {
    return { kind: "reissueLeaf", why: (err as Error).message };
  }
  const from = new Date(leaf.validFrom).getTime();
  const to = new Date(leaf.validTo).getTime();
  if (to <= now.getTime())
    return { kind: "reissueLeaf", why: `serving certificate expired at ${new Date(to).toISOString()}` };
  if (from > now.getTime() + BACKDATE_MS) return { kind: "reissueLeaf", why: "serving certificate not yet valid" };
  const sans = (leaf.subjectAltName ?? "").split(", ");
  for (const d of spec.dnsNames)
    if (!sans.includes(`DNS:${d}`)) return { kind: "reissueLeaf", why: `serving certificate lacks DNS name ${d}` };
  for (const ip of spec.ipAddresses)
    if (!sans.includes(`IP Address:${ip}`)) return { kind: "reissueLeaf", why: `serving certificate lacks IP ${ip}` };

  // Lifetimes count from issue, not from the backdated notBefore: with the backdate in it, a certificate shorter than
  // about two backdates would be "due" the moment it is made and be renewed in a loop.
  const dueIn = (notBefore: number, notAfter: number): boolean => {
    const issued = Math.min(notBefore + BACKDATE_MS, notAfter);
    return notAfter - now.getTime() < (notAfter - issued) / 3;
  };
  const renewCA = dueIn(caFrom, caTo);
  const renewLeaf = dueIn(from, to);
  return {
    kind: "ok",
    renew: renewCA ? "ca" : renewLeaf ? "leaf" : "none",
    leafNotAfter: new Date(to),
    caNotAfter: new Date(caTo),
  };
}

/** Builds the Secret data that follows a verdict; undefined when nothing is to change. */
export async function nextBundle(
  data: Readonly<Record<string, string>> | undefined,
  verdict: BundleVerdict,
  spec: CertSpec,
  now: Date,
  isLeader: boolean,
): Promise<Record<string, string> | undefined> {
  if (verdict.kind === "ok" && (verdict.renew === "none" || !isLeader)) return undefined;
  const caCertPem = data?.[SecretKeys.caCert];
  const caKeyPem = data?.[SecretKeys.caKey];
  const oldCa = caCertPem && caKeyPem ? { cert: caCertPem, key: caKeyPem } : undefined;
  const rotateCA = verdict.kind === "replaceAll" || (verdict.kind === "ok" && verdict.renew === "ca") || !oldCa;
  let ca: { cert: string; key: string };
  let bundle: string;
  if (rotateCA) {
    ca = await createCA(now, spec.caValidityMs);
    // During a planned CA rotation the apiserver must trust the old CA too, until every replica serves the new leaf.
    bundle = verdict.kind === "ok" && oldCa ? `${ca.cert.trim()}\n${firstPem(oldCa.cert)}` : ca.cert;
  } else {
    ca = { cert: firstPem(oldCa.cert), key: oldCa.key };
    bundle = stillValid(oldCa.cert, now);
  }
  const leaf = await issueLeaf(ca, spec, now);
  return {
    [SecretKeys.caCert]: bundle.trim() + "\n",
    [SecretKeys.caKey]: ca.key,
    [SecretKeys.tlsCert]: leaf.cert,
    [SecretKeys.tlsKey]: leaf.key,
  };
}

function stillValid(bundle: string, now: Date): string {
  return allPems(bundle)
    .filter((p, i) => i === 0 || new Date(new X509Certificate(p).validTo).getTime() > now.getTime())
    .join("\n");
}

// ---- the Secret-backed source ----

/** The apiserver calls of the self-managed mode; a fake in unit tests. */
export interface CertStore {
  readSecret(): Promise<{ data: Record<string, string>; resourceVersion: string } | undefined>;
  /** Throws ConflictError when it exists already. */
  createSecret(data: Record<string, string>): Promise<void>;
  /** Throws ConflictError when resourceVersion is stale. */
  updateSecret(data: Record<string, string>, resourceVersion: string): Promise<void>;
  readWebhook(): Promise<V1MutatingWebhookConfiguration | undefined>;
  createWebhook(body: V1MutatingWebhookConfiguration): Promise<void>;
  /** JSON patch. */
  patchWebhook(ops: unknown[]): Promise<void>;
}

export class ConflictError extends Error {}

export interface CertSource {
  /** Resolves with the first usable material; rejects only on stop(). */
  start(): Promise<TlsMaterial>;
  onChange(fn: (m: TlsMaterial) => void): void;
  /** One check now (tests and the leader's renewal timer use it). */
  sync(): Promise<void>;
  stop(): Promise<void>;
}

export interface SecretCertSourceOptions {
  store: CertStore;
  spec: CertSpec;
  registration: RegistrationSettings;
  /** Whether this replica may renew (holds the Lease). Replacing an unusable Secret needs no leadership. */
  isLeader: () => Promise<boolean>;
  log: Logger;
  metrics?: OperatorMetrics;
  checkIntervalMs: number;
  now?: () => Date;
}

export function createSecretCertSource(o: SecretCertSourceOptions): CertSource {
  const now = o.now ?? (() => new Date());
  const listeners: Array<(m: TlsMaterial) => void> = [];
  let current: TlsMaterial | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> | undefined;

  const load = (data: Record<string, string>, notAfter: Date) => {
    const next: TlsMaterial = {
      cert: data[SecretKeys.tlsCert]!,
      key: data[SecretKeys.tlsKey]!,
      caBundle: data[SecretKeys.caCert]!,
      notAfter,
    };
    if (current && current.cert === next.cert && current.key === next.key) return;
    current = next;
    o.metrics?.certificateExpiry.set(notAfter.getTime() / 1000);
    o.metrics?.certificateRotations.inc({ kind: "loaded" });
    o.log.info({ notAfter: notAfter.toISOString(), fingerprint: fingerprint(next.cert) }, "Serving certificate loaded");
    for (const fn of listeners) fn(next);
  };

  const syncSecret = async (): Promise<Record<string, string>> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const secret = await o.store.readSecret();
      const at = now();
      const verdict = inspectBundle(secret?.data, o.spec, at);
      if (verdict.kind !== "ok")
        o.log.warn({ why: verdict.why, action: verdict.kind }, "Webhook certificate Secret unusable; replacing it");
      const leader = verdict.kind === "ok" && verdict.renew !== "none" ? await o.isLeader() : false;
      const next = await nextBundle(secret?.data, verdict, o.spec, at, leader);
      if (!next) {
        if (verdict.kind === "ok") load(secret!.data, verdict.leafNotAfter);
        return secret!.data;
      }
      try {
        if (secret) await o.store.updateSecret(next, secret.resourceVersion);
        else await o.store.createSecret(next);
        o.metrics?.certificateRotations.inc({ kind: verdict.kind === "ok" ? `renew_${verdict.renew}` : verdict.kind });
        o.log.info(
          { action: verdict.kind === "ok" ? `renew-${verdict.renew}` : secret ? verdict.kind : "create" },
          "Webhook certificate Secret written",
        );
      } catch (err) {
        // Another replica wrote first: read back what it made and judge that instead.
        if (err instanceof ConflictError) continue;
        throw err;
      }
    }
    throw new Error("could not settle the certificate Secret after 5 conflicts");
  };

  const syncWebhook = async (caBundlePem: string) => {
    const want = Buffer.from(caBundlePem).toString("base64");
    const mwc = await o.store.readWebhook();
    if (!mwc) {
      // In Service mode the manifests create it; in URL mode (local runs, tests) there is no one else to.
      if (o.registration.webhookUrl) {
        await o.store.createWebhook(webhookConfiguration(o.registration, want));
        o.metrics?.caBundlePatches.inc();
        o.log.info(
          { name: o.registration.webhookConfigName, url: o.registration.webhookUrl },
          "MutatingWebhookConfiguration created",
        );
      }
      return;
    }
    const ops: unknown[] = [];
    (mwc.webhooks ?? []).forEach((w, i) => {
      if (w.clientConfig.caBundle !== want) {
        ops.push({ op: "test", path: `/webhooks/${i}/name`, value: w.name });
        ops.push({ op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
      }
      if (o.registration.webhookUrl && (w.clientConfig.url !== o.registration.webhookUrl || w.clientConfig.service)) {
        ops.push({ op: "test", path: `/webhooks/${i}/name`, value: w.name });
        ops.push({
          op: "replace",
          path: `/webhooks/${i}/clientConfig`,
          value: { url: o.registration.webhookUrl, caBundle: want },
        });
      }
    });
    if (ops.length === 0) return;
    await o.store.patchWebhook(ops);
    o.metrics?.caBundlePatches.inc();
    o.log.info({ name: mwc.metadata?.name }, "Patched the webhook configuration's caBundle");
  };

  const syncOnce = async () => {
    const caBundle = (await syncSecret())[SecretKeys.caCert];
    if (caBundle) await syncWebhook(caBundle);
  };

  const sync = (): Promise<void> => {
    running ??= syncOnce().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      sync()
        .catch((err: unknown) => o.log.warn({ err: (err as Error).message }, "Certificate check failed; retrying"))
        .finally(schedule);
    }, o.checkIntervalMs);
  };

  return {
    async start() {
      for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
        if (stopped) throw new Error("stopped");
        try {
          await sync();
          if (current) break;
        } catch (err) {
          o.log.warn(
            { err: (err as Error).message, retryInMs: delay },
            "Could not set up the webhook certificate; retrying",
          );
        }
        await new Promise((r) => setTimeout(r, delay));
      }
      schedule();
      return current;
    },
    onChange: (fn) => void listeners.push(fn),
    sync,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}

export function fingerprint(pem: string): string {
  return createHash("sha256")
    .update(new X509Certificate(firstPem(pem)).raw)
    .digest("hex")
    .slice(0, 16);
}

export function kubeCertStore(kc: KubeConfig, namespace: string, secretName: string, webhookName: string): CertStore {
  const core = kc.makeApiClient(CoreV1Api);
  const adm = kc.makeApiClient(AdmissionregistrationV1Api);
  const decode = (d: Record<string, string> | undefined) =>
    Object.fromEntries(Object.entries(d ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
  const encode = (d: Record<string, string>) =>
    Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
  const body = (data: Record<string, string>, resourceVersion?: string) => ({
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: {
      name: secretName,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { "app.kubernetes.io/name": "metrics-pusher-operator" },
    },
    data: encode(data),
  });
  return {
    async readSecret() {
      try {
        const s = await core.readNamespacedSecret({ name: secretName, namespace });
        return { data: decode(s.data), resourceVersion: s.metadata?.resourceVersion ?? "" };
      } catch (err) {
        if (apiStatus(err) === 404) return undefined;
        throw err;
      }
    },
    async createSecret(data) {
      try {
        await core.createNamespacedSecret({ namespace, body: body(data) });
      } catch (err) {
        if (apiStatus(err) === 409) throw new ConflictError("exists");
        throw err;
      }
    },
    async updateSecret(data, resourceVersion) {
      try {
        await core.replaceNamespacedSecret({ name: secretName, namespace, body: body(data, resourceVersion) });
      } catch (err) {
        if (apiStatus(err) === 409) throw new ConflictError("stale");
        throw err;
      }
    },
    async readWebhook() {
      try {
        return await adm.readMutatingWebhookConfiguration({ name: webhookName });
      } catch (err) {
        if (apiStatus(err) === 404) return undefined;
        throw err;
      }
    },
    async createWebhook(b) {
      try {
        await adm.createMutatingWebhookConfiguration({ body: b });
      } catch (err) {
        // Another replica created it; the next check patches it if needed.
        if (apiStatus(err) !== 409) throw err;
      }
    },
    async patchWebhook(ops) {
      await adm.patchMutatingWebhookConfiguration(
        { name: webhookName, body: ops },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      );
    },
  };
}

// ---- directory mode (cert-manager) ----

export function createDirCertSource(o: {
  dir: string;
  log: Logger;
  metrics?: OperatorMetrics;
  checkIntervalMs: number;
}): CertSource {
  const listeners: Array<(m: TlsMaterial) => void> = [];
  let current: TlsMaterial | undefined;
  let timer: NodeJS.Timeout | undefined;
  const abort = new AbortController();

  const sync = async () => {
    const [cert, key] = await Promise.all([
      readFile(join(o.dir, "tls.crt"), "utf8"),
      readFile(join(o.dir, "tls.key"), "utf8"),
    ]);
    if (current && current.cert === cert && current.key === key) return;
    // A half-written pair (cert-manager swaps a symlink, but a hand-made dir may not) is skipped until both match.
    if (!keyMatches(firstPem(cert), key)) throw new Error(`${o.dir}: tls.key does not match tls.crt`);
    const notAfter = new Date(new X509Certificate(firstPem(cert)).validTo);
    current = { cert, key, notAfter };
    o.metrics?.certificateExpiry.set(notAfter.getTime() / 1000);
    o.metrics?.certificateRotations.inc({ kind: "loaded" });
    o.log.info(
      { dir: o.dir, notAfter: notAfter.toISOString(), fingerprint: fingerprint(cert) },
      "Serving certificate loaded from directory",
    );
    for (const fn of listeners) fn(current);
  };
  const safeSync = () =>
    sync().catch((err: unknown) =>
      o.log.warn({ err: (err as Error).message }, "Could not load certificates from directory"),
    );

  return {
    async start() {
      await sync();
      const tick = () => {
        timer = setTimeout(() => void safeSync().finally(tick), o.checkIntervalMs);
      };
      tick();
      // fs.watch only makes a change visible sooner; the poll above is what makes it reliable.
      void (async () => {
        try {
          for await (const _ of watch(o.dir, { signal: abort.signal })) await safeSync();
        } catch {
          /* aborted, or watching unsupported: polling covers it */
        }
      })();
      return current!;
    },
    onChange: (fn) => void listeners.push(fn),
    sync,
    stop() {
      clearTimeout(timer);
      abort.abort();
      return Promise.resolve();
    },
  };
}
