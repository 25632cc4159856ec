// HTTP only: decode the AdmissionReview, call the pure mutate(), answer. A malformed request gets HTTP 400; every
// well-formed one gets allowed: true — on an internal error the pod is admitted unchanged, logged and counted, so the
// webhook can never block a pod.
import { createServer } from "node:https";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Server, ServerOptions } from "node:https";
import type { V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { EventReason, EventType, SkipReason, WEBHOOK_PATH } from "../api/index.ts";
import type { MetricsPusher } from "../api/index.ts";
import { pusherRef } from "../events.ts";
import type { EventRecorder } from "../events.ts";
import { mutate as pureMutate } from "../inject/mutate.ts";
import type { MutateInput, MutateResult, MutateSettings } from "../inject/mutate.ts";
import type { OperatorMetrics } from "../metrics.ts";
import type { SidecarDefaults } from "../inject/sidecar.ts";

export const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface AdmissionDeps {
  log: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder | undefined;
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

// Reasons a person wants to hear about; NoMatchingPusher and the namespace gates apply to most pods of a cluster and
// would flood Events (they are still counted in metrics and logged at debug).
const EVENT_WORTHY_SKIPS: ReadonlySet<string> = new Set([
  SkipReason.ExplicitPusherNotFound,
  SkipReason.ImageNotAllowed,
  SkipReason.WouldBlockCompletion,
  SkipReason.ContainerNameTaken,
  SkipReason.PusherBeingDeleted,
]);

class BadRequest extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

export function createAdmissionHandler(deps: AdmissionDeps): RequestListener {
  const log = deps.log;
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
          deps.metrics.webhookRequests.inc({ result: "malformed" });
          log.warn({ err: (err as Error).message }, "Malformed admission request");
          return send(res, 400, { error: (err as Error).message });
        }
        const response = admit(request, deps, mutate);
        send(res, 200, { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response });
        deps.metrics.webhookDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      })
      .catch((err: unknown) => {
        const status = err instanceof BadRequest ? err.status : 400;
        deps.metrics.webhookRequests.inc({ result: "malformed" });
        log.warn({ err: (err as Error).message }, "Could not read admission request");
        send(res, status, { error: (err as Error).message });
      });
  };
}

function admit(request: AdmissionRequest, deps: AdmissionDeps, mutate: (input: MutateInput) => MutateResult) {
  const base = { uid: request.uid, allowed: true };
  try {
    const kind = request.kind;
    if (kind?.kind !== "Pod" || (kind.group ?? "") !== "" || request.operation !== "CREATE") {
      deps.metrics.webhookRequests.inc({ result: "skipped" });
      deps.metrics.webhookSkips.inc({ reason: SkipReason.NotPodCreate });
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
    const who = { namespace, pod: pod.metadata?.name ?? pod.metadata?.generateName ?? "" };
    const warnings = result.warnings.map((w) => (w.length > 250 ? `${w.slice(0, 247)}...` : w));
    const events = request.dryRun ? undefined : deps.events;
    if (result.kind === "skip") {
      deps.metrics.webhookRequests.inc({ result: "skipped" });
      deps.metrics.webhookSkips.inc({ reason: result.reason });
      deps.log.debug({ ...who, reason: result.reason, pusher: result.pusher }, result.message);
      if (events && EVENT_WORTHY_SKIPS.has(result.reason)) {
        events.emitForPod(
          pod,
          namespace,
          EventType.Warning,
          EventReason.InjectionSkipped,
          `${result.reason}: ${result.message}`,
        );
        const p = result.pusher
          ? deps.pushers().find((x) => x.metadata.namespace === namespace && x.metadata.name === result.pusher)
          : undefined;
        if (p)
          events.emit(
            pusherRef(p),
            EventType.Warning,
            EventReason.InjectionSkipped,
            `${result.reason}: ${result.message}`,
          );
      }
      return warnings.length > 0 ? { ...base, warnings } : base;
    }
    deps.metrics.webhookRequests.inc({ result: "injected" });
    deps.metrics.webhookInjections.inc({ mode: result.native ? "native" : "container" });
    deps.log.info(
      { ...who, pusher: result.pusher, hash: result.hash, native: result.native, dryRun: request.dryRun === true },
      "Injected sidecar into Pod",
    );
    if (events) {
      const owner = pod.metadata?.ownerReferences?.find((o) => o.controller);
      const what = owner ? `a Pod of ${owner.kind} ${owner.name}` : `Pod ${who.pod}`;
      events.emitForPod(
        pod,
        namespace,
        EventType.Normal,
        EventReason.Injected,
        `Injected metrics-pusher from MetricsPusher ${result.pusher} (config ${result.hash})`,
      );
      const p = deps.pushers().find((x) => x.metadata.namespace === namespace && x.metadata.name === result.pusher);
      if (p) {
        events.emit(
          pusherRef(p),
          EventType.Normal,
          EventReason.Injected,
          `Injected config ${result.hash} into ${what}`,
        );
        if (result.matched.length > 1) {
          for (const name of result.matched) {
            const q = deps.pushers().find((x) => x.metadata.namespace === namespace && x.metadata.name === name);
            if (q)
              events.emit(
                pusherRef(q),
                EventType.Warning,
                EventReason.MultipleMatches,
                `${result.matched.length} MetricsPushers (${result.matched.join(", ")}) select ${what}; ${result.pusher} was used`,
              );
          }
        }
      }
    }
    return {
      ...base,
      patchType: "JSONPatch",
      patch: Buffer.from(JSON.stringify(result.patch)).toString("base64"),
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  } catch (err) {
    deps.metrics.webhookRequests.inc({ result: "error" });
    deps.metrics.webhookErrors.inc();
    deps.metrics.webhookSkips.inc({ reason: SkipReason.InternalError });
    deps.log.error(
      { err, uid: request.uid, namespace: request.namespace },
      "Internal error in the webhook; admitting the Pod unchanged",
    );
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
