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

export const MAX_BODY_BYTES = 8 * 1024 * 1024;

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
  /** Answered with an HTTP error: the body could not be read (`read`, e.g. too large) or is no AdmissionReview. */
  malformed(err: Error, stage: "read" | "decode"): void;
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
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  dryRun?: boolean;
  object?: unknown;
}

class BadRequest extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

export function createAdmissionHandler(deps: AdmissionDeps): RequestListener {
  const { observer } = deps;
  const mutate = deps.mutate ?? pureMutate;
  return (req, res) => {
    if (req.url?.split("?")[0] !== WEBHOOK_PATH) return void send(res, 404, { error: "not found" });
    if (req.method !== "POST") return void send(res, 405, { error: "POST only" });
    readBody(req)
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
        observer.malformed(err as Error, "read");
        send(res, err instanceof BadRequest ? err.status : 400, { error: (err as Error).message });
      });
  };
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

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      if (size > MAX_BODY_BYTES) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        // Answer at once and drop the rest; requestTimeout bounds a client that keeps sending.
        chunks.length = 0;
        reject(new BadRequest(`body larger than ${MAX_BODY_BYTES} bytes`, 413));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

/** The HTTPS server; certs.ts swaps its certificate with server.setSecureContext(). */
export function createWebhookServer(handler: RequestListener, tls: Pick<ServerOptions, "key" | "cert">): Server {
  const server = createServer({ ...tls, minVersion: "TLSv1.2" }, handler);
  // The apiserver gives up after timeoutSeconds (≤ 10); nothing should hold a socket longer.
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  return server;
}
