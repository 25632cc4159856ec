// HTTP only: read the AdmissionReview, decode it, let the pure mutate() decide, answer. A malformed request gets HTTP
// 400; every well-formed one gets allowed: true — on an internal error the pod is admitted unchanged, so the webhook
// can never block a pod. What happened goes to an AdmissionObserver (metrics, Events and the log: admission.ts).
import { createServer } from "node:https";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Server, ServerOptions } from "node:https";
import type { V1Pod } from "@kubernetes/client-node";
import { SkipReason, WEBHOOK_PATH } from "../api/index.ts";
import type { MetricsPusher } from "../api/index.ts";
import { mutate as pureMutate } from "../inject/mutate.ts";
import type { MutateInput, MutateResult, MutateSettings } from "../inject/mutate.ts";
import type { SidecarDefaults } from "../inject/sidecar.ts";

/**
 * The largest body the webhook reads. The kube-apiserver refuses request bodies over 3 MiB (MaxRequestBodyBytes,
 * k8s.io/apiserver pkg/server/config.go: twice etcd's default 1.5 MiB request limit, for JSON's overhead over the
 * protobuf stored), so the Pod inside a review is at most 3 MiB of JSON; the review adds the request's metadata
 * (userInfo, options, a few KiB): 4 MiB admits every review the apiserver can send. Parsing one costs at most ~30 MiB
 * of heap (measured with Pods made of small objects, the worst case per byte), within the shipped 128 MiB heap.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Real Pods are a few KiB; bodies up to this size only count against MAX_IN_FLIGHT. */
export const SMALL_BODY_BYTES = 256 * 1024;
/** Reviews being read or answered at once; over it the webhook answers 503 at once (the apiserver fails open). */
export const MAX_IN_FLIGHT = 64;
/** The apiserver sends a review's body at once; one not complete this long after its headers is cut off (408), so a
 * slow client (slowloris) holds a place among MAX_IN_FLIGHT no longer. */
export const BODY_TIMEOUT_MS = 3000;
/** Bytes of bodies larger than SMALL_BODY_BYTES held at once: two reviews of the largest size. Large bodies cannot
 * take the room of ordinary ones, which keep MAX_IN_FLIGHT × SMALL_BODY_BYTES (16 MiB) of their own: at most 24 MiB
 * of bodies are held in all. */
export const MAX_LARGE_BYTES_IN_FLIGHT = 2 * MAX_BODY_BYTES;

export interface AdmissionLimits {
  readonly maxBodyBytes: number;
  readonly smallBodyBytes: number;
  readonly maxInFlight: number;
  readonly maxLargeBytesInFlight: number;
  readonly bodyTimeoutMs: number;
}

export const DEFAULT_LIMITS: AdmissionLimits = Object.freeze({
  maxBodyBytes: MAX_BODY_BYTES,
  smallBodyBytes: SMALL_BODY_BYTES,
  maxInFlight: MAX_IN_FLIGHT,
  maxLargeBytesInFlight: MAX_LARGE_BYTES_IN_FLIGHT,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
});

/** Why a request was refused before its body was decoded. */
export const RefuseReason = {
  /** Content-Length, or the bytes received so far, over maxBodyBytes: HTTP 413. */
  TooLarge: "TooLarge",
  /** maxInFlight reviews, or maxLargeBytesInFlight bytes of large bodies, are held already: HTTP 503. */
  Overloaded: "Overloaded",
  /** The body was not complete within bodyTimeoutMs: HTTP 408. */
  TooSlow: "TooSlow",
} as const;
export type RefuseReason = (typeof RefuseReason)[keyof typeof RefuseReason];

/** One request's share of the in-flight bounds; release() exactly once, when its answer is sent or it is gone. */
export interface InFlightTicket {
  /** Accounts for `bytes` of body in total (declared or received so far). */
  reserve(this: void, bytes: number): RefuseReason | undefined;
  release(this: void): void;
}

/** The in-flight bounds, pure (no I/O): how many requests, and how many bytes of large bodies, are held. */
export class InFlightGate {
  readonly #l: AdmissionLimits;
  #count = 0;
  #largeBytes = 0;

  constructor(limits: AdmissionLimits = DEFAULT_LIMITS) {
    this.#l = limits;
  }

  get inFlight(): number {
    return this.#count;
  }
  /** Bytes of large bodies held; with at most inFlight × smallBodyBytes of small ones, what the webhook holds. */
  get largeBytes(): number {
    return this.#largeBytes;
  }

  enter(): InFlightTicket | undefined {
    if (this.#count >= this.#l.maxInFlight) return undefined;
    this.#count++;
    let large = 0;
    let released = false;
    return {
      reserve: (bytes) => {
        if (!(bytes <= this.#l.maxBodyBytes)) return RefuseReason.TooLarge;
        if (bytes <= this.#l.smallBodyBytes || bytes <= large) return undefined;
        if (this.#largeBytes + bytes - large > this.#l.maxLargeBytesInFlight) return RefuseReason.Overloaded;
        this.#largeBytes += bytes - large;
        large = bytes;
        return undefined;
      },
      release: () => {
        if (released) return;
        released = true;
        this.#count--;
        this.#largeBytes -= large;
      },
    };
  }
}

/** The pod an admission request is about, as the observer needs it. */
export interface AdmittedPod {
  readonly pod: V1Pod;
  readonly namespace: string;
  /** metadata.name, else generateName (a pod made from generateName has no name yet). */
  readonly name: string;
  /** Dry-run requests have no side effects (sideEffects: NoneOnDryRun): no Events. */
  readonly dryRun: boolean;
}

/** Where the handler reports what happened; main.ts binds it to metrics, Events and the log (admission.ts). */
export interface AdmissionObserver {
  injected(pod: AdmittedPod, result: Extract<MutateResult, { kind: "patch" }>): void;
  /** `pod` is undefined when the request is not a Pod CREATE at all. */
  skipped(
    pod: AdmittedPod | undefined,
    result: Pick<Extract<MutateResult, { kind: "skip" }>, "reason" | "message" | "pusher">,
  ): void;
  /** An internal error: the pod was admitted unchanged. */
  failed(err: unknown, request: { readonly uid: string; readonly namespace?: string | undefined }): void;
  /** Answered with an HTTP error: the body could not be read (`read`) or is no AdmissionReview (`decode`). */
  malformed(err: Error, stage: "read" | "decode"): void;
  /** Refused before decoding, unread or cut off: 413 (too large) or 503 (over the in-flight bounds). */
  refused(reason: RefuseReason): void;
  /** A well-formed review was answered, `seconds` after its body was read. */
  answered(seconds: number): void;
}

export interface AdmissionDeps {
  observer: AdmissionObserver;
  /** Every MetricsPusher from the informer (mutate filters by namespace). */
  pushers(): readonly MetricsPusher[];
  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined;
  defaults(): SidecarDefaults;
  settings: MutateSettings;
  /** Replaceable in tests to provoke internal errors. */
  mutate?: (input: MutateInput) => MutateResult;
  /** Default DEFAULT_LIMITS. */
  limits?: AdmissionLimits;
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  dryRun?: boolean;
  object?: unknown;
}

class Refused extends Error {
  readonly reason: RefuseReason;
  constructor(reason: RefuseReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

const REFUSE_STATUS = {
  [RefuseReason.TooLarge]: 413,
  [RefuseReason.Overloaded]: 503,
  [RefuseReason.TooSlow]: 408,
} as const;

export function createAdmissionHandler(deps: AdmissionDeps): RequestListener {
  const { observer } = deps;
  const mutate = deps.mutate ?? pureMutate;
  const limits = deps.limits ?? DEFAULT_LIMITS;
  const gate = new InFlightGate(limits);
  const refuse = (req: IncomingMessage, res: ServerResponse, err: Refused) => {
    observer.refused(err.reason);
    sendAndClose(req, res, REFUSE_STATUS[err.reason], { error: err.message });
  };
  return (req, res) => {
    if (req.url?.split("?")[0] !== WEBHOOK_PATH) return void sendAndClose(req, res, 404, { error: "not found" });
    if (req.method !== "POST") return void sendAndClose(req, res, 405, { error: "POST only" });
    const declared = req.headers["content-length"] === undefined ? 0 : Number(req.headers["content-length"]);
    // Node's parser refuses a malformed Content-Length already; this keeps a NaN out of the gate's sums regardless.
    if (!Number.isSafeInteger(declared) || declared < 0)
      return void sendAndClose(req, res, 400, { error: "invalid content-length" });
    // Refused before a byte of the body is read: a declared size over the limit, or no room.
    if (declared > limits.maxBodyBytes)
      return refuse(req, res, new Refused(RefuseReason.TooLarge, `body larger than ${limits.maxBodyBytes} bytes`));
    const ticket = gate.enter();
    if (!ticket)
      return refuse(req, res, new Refused(RefuseReason.Overloaded, `${limits.maxInFlight} reviews in flight already`));
    res.once("close", ticket.release);
    const early = ticket.reserve(declared);
    if (early) return refuse(req, res, refusal(early, limits));
    readBody(req, ticket, limits)
      .then((body) => {
        const started = process.hrtime.bigint();
        let request: AdmissionRequest;
        try {
          request = decode(body);
        } catch (err) {
          observer.malformed(err as Error, "decode");
          return send(res, 400, { error: (err as Error).message });
        }
        const response = admit(request, deps, mutate);
        send(res, 200, { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response });
        observer.answered(Number(process.hrtime.bigint() - started) / 1e9);
      })
      .catch((err: unknown) => {
        if (err instanceof Refused) return refuse(req, res, err);
        observer.malformed(err as Error, "read");
        sendAndClose(req, res, 400, { error: (err as Error).message });
      })
      .finally(ticket.release);
  };
}

function refusal(reason: RefuseReason, limits: AdmissionLimits): Refused {
  switch (reason) {
    case RefuseReason.TooLarge:
      return new Refused(reason, `body larger than ${limits.maxBodyBytes} bytes`);
    case RefuseReason.Overloaded:
      return new Refused(reason, `more than ${limits.maxLargeBytesInFlight} bytes of large reviews in flight already`);
    case RefuseReason.TooSlow:
      return new Refused(reason, `body not complete within ${limits.bodyTimeoutMs} ms`);
  }
}

function admit(request: AdmissionRequest, deps: AdmissionDeps, mutate: (input: MutateInput) => MutateResult) {
  const base = { uid: request.uid, allowed: true };
  const { observer } = deps;
  try {
    const kind = request.kind;
    if (kind?.kind !== "Pod" || (kind.group ?? "") !== "" || request.operation !== "CREATE") {
      observer.skipped(undefined, { reason: SkipReason.NotPodCreate, message: "not a Pod CREATE" });
      return base;
    }
    const pod = request.object as V1Pod;
    if (typeof pod !== "object" || pod === null || Array.isArray(pod)) throw new Error("request.object is not a Pod");
    const namespace = request.namespace || pod.metadata?.namespace || "";
    const result = mutate({
      pod,
      namespace,
      namespaceLabels: deps.namespaceLabels(namespace),
      pushers: deps.pushers(),
      defaults: deps.defaults(),
      settings: deps.settings,
    });
    const admitted: AdmittedPod = {
      pod,
      namespace,
      name: pod.metadata?.name ?? pod.metadata?.generateName ?? "",
      dryRun: request.dryRun === true,
    };
    const warnings = result.warnings.map((w) => (w.length > 250 ? `${w.slice(0, 247)}...` : w));
    if (result.kind === "skip") {
      observer.skipped(admitted, result);
      return warnings.length > 0 ? { ...base, warnings } : base;
    }
    observer.injected(admitted, result);
    return {
      ...base,
      patchType: "JSONPatch",
      patch: Buffer.from(JSON.stringify(result.patch)).toString("base64"),
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  } catch (err) {
    observer.failed(err, { uid: request.uid, namespace: request.namespace });
    return base;
  }
}

function decode(body: Buffer): AdmissionRequest {
  let review: unknown;
  try {
    review = JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error("body is not JSON");
  }
  if (typeof review !== "object" || review === null || Array.isArray(review))
    throw new Error("body is not a JSON object");
  const r = review as { apiVersion?: unknown; kind?: unknown; request?: unknown };
  if (r.apiVersion !== "admission.k8s.io/v1" || r.kind !== "AdmissionReview")
    throw new Error("not an admission.k8s.io/v1 AdmissionReview");
  const request = r.request as { uid?: unknown } | null | undefined;
  if (typeof request !== "object" || request === null || Array.isArray(request))
    throw new Error("AdmissionReview has no request");
  if (typeof request.uid !== "string" || request.uid === "") throw new Error("request.uid is missing");
  return request as AdmissionRequest;
}

/** Reads the body, counting every chunk against the ticket as it arrives (a chunked body has no declared size). */
function readBody(req: IncomingMessage, ticket: InFlightTicket, limits: AdmissionLimits): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (reason: RefuseReason) => {
      // Answer at once and read no more: the socket is closed after the answer (sendAndClose).
      clearTimeout(timer);
      chunks.length = 0;
      req.off("data", onData);
      req.pause();
      reject(refusal(reason, limits));
    };
    const timer = setTimeout(() => stop(RefuseReason.TooSlow), limits.bodyTimeoutMs);
    const onData = (c: Buffer) => {
      size += c.length;
      const refused = ticket.reserve(size);
      if (refused) return stop(refused);
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks, size));
    });
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on("close", () => clearTimeout(timer));
  });
}

/**
 * Answers and, when the body was not read to its end, closes the connection instead of draining what the client
 * still sends: the answer is flushed, the socket half-closed, and destroyed shortly after at the latest.
 */
function sendAndClose(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  if (req.complete) return send(res, status, body);
  if (res.headersSent || res.destroyed) return;
  res.setHeader("connection", "close");
  res.once("finish", () => {
    const socket = req.socket;
    socket.pause();
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  send(res, status, body);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

/** The certificates of a PEM bundle, one string each: as one string, a bundle whose blocks are not separated by a
 * line break would silently trust only its first CA. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Open connections the webhook accepts; the apiserver keeps a few keep-alive connections per replica. */
export const MAX_CONNECTIONS = 256;

/**
 * The HTTPS server; certs.ts swaps its certificate with server.setSecureContext() (pass `ca` there too when set).
 * With `ca` (WEBHOOK_CLIENT_CA_FILE), only clients presenting a certificate signed by it complete the handshake: the
 * kube-apiserver does with an AdmissionConfiguration whose kubeConfigFile names the webhook.
 */
export function createWebhookServer(
  handler: RequestListener,
  tls: Pick<ServerOptions, "key" | "cert"> & { ca?: readonly string[] | undefined },
): Server {
  const clientAuth = tls.ca === undefined ? {} : { ca: [...tls.ca], requestCert: true, rejectUnauthorized: true };
  const server = createServer(
    // A connection that has not finished its handshake after 5 s is dropped (Node's default waits 120 s).
    { key: tls.key, cert: tls.cert, ...clientAuth, minVersion: "TLSv1.2", handshakeTimeout: 5_000 },
    handler,
  );
  // The apiserver gives up after timeoutSeconds (5); nothing legitimate holds a request longer, and a slow client
  // (slowloris) holds its share of the in-flight bounds no longer than this.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  // Each connection costs TLS buffers whatever it sends; beyond this many, new connections are refused and the
  // apiserver fails open.
  server.maxConnections = MAX_CONNECTIONS;
  return server;
}
