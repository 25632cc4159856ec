// Certificates for the test control plane and for throw-away TLS servers in tests. Generic on purpose: nothing here
// knows about Kubernetes beyond what a caller passes in (the operator's webhook certificates use the same library).
import { generateKeyPair, randomBytes, webcrypto } from "node:crypto";
import { promisify } from "node:util";
// @peculiar/x509 2.x resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata polyfill loaded
// first (1.x depended on it itself).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(globalThis.crypto);

// Without the DOM lib these types live under node:crypto's webcrypto namespace.
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// ECDSA P-256 keys are generated in milliseconds; Go, Node and OpenSSL all accept them for TLS.
const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Certificates start a little in the past so a peer whose clock is slightly behind still accepts them.
const BACKDATE_MS = 5 * 60 * 1000;

export const CertUsage = { server: "server", client: "client" } as const;
export type CertUsage = (typeof CertUsage)[keyof typeof CertUsage];

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends KeyPairPem {
  readonly cert: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}

export interface IssueCertOptions {
  ca: CertificateAuthority;
  commonName: string;
  ips?: readonly string[];
  dns?: readonly string[];
  /** Subject O= values; Kubernetes reads them as groups (`system:masters`). */
  organizations?: readonly string[];
  /** Extended key usages; defaults to server only. */
  usages?: readonly CertUsage[];
  lifetimeMs?: number;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // a positive INTEGER without a leading zero byte
  return bytes.toString("hex");
}

function validity(lifetimeMs: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + lifetimeMs) };
}

function subjectName(commonName: string, organizations: readonly string[] = []): x509.JsonName {
  // The JSON form needs no escaping of commas or equals signs in values.
  const name: x509.JsonName = [];
  if (organizations.length > 0) name.push({ O: [...organizations] });
  name.push({ CN: [commonName] });
  return name;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

export async function createCA(
  options: { commonName?: string; lifetimeMs?: number } = {},
): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: subjectName(options.commonName ?? "metrics-pusher test CA"),
    ...validity(options.lifetimeMs ?? 365 * DAY_MS),
    signingAlgorithm: KEY_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = await privateKeyPem(keys.privateKey);
  return { cert, privateKey: keys.privateKey, certPem: cert.toString("pem"), keyPem };
}

export async function issueCert(options: IssueCertOptions): Promise<KeyPairPem> {
  const usages = options.usages ?? [CertUsage.server];
  const ips = options.ips ?? [];
  const dns = options.dns ?? [];
  const keys = await generateKeys();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(
      usages.map((u) => (u === CertUsage.server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth)),
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(options.ca.cert),
  ];
  if (ips.length > 0 || dns.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...dns.map((value) => ({ type: "dns" as const, value })),
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: subjectName(options.commonName, options.organizations),
    issuer: options.ca.cert.subjectName,
    ...validity(options.lifetimeMs ?? 30 * DAY_MS),
    signingAlgorithm: KEY_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: options.ca.privateKey,
    extensions,
  });
  return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
}

/** An RSA key pair for signing ServiceAccount tokens (kube-apiserver's --service-account-*-key-file flags). */
export async function createServiceAccountKeyPair(): Promise<{ publicKeyPem: string; privateKeyPem: string }> {
  const { publicKey, privateKey } = await promisify(generateKeyPair)("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}
