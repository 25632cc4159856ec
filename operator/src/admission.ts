// The webhook's AdmissionObserver: what the admission handler decided, turned into metrics, Events and log lines.
// Kept out of webhook/server.ts so that the handler only reads, decodes and answers.
import type { Logger } from "pino";
import { EventReason, EventType, SkipReason } from "./api/index.ts";
import type { MetricsPusher } from "./api/index.ts";
import { pusherRef } from "./events.ts";
import type { EventRecorder } from "./events.ts";
import type { OperatorMetrics } from "./metrics.ts";
import type { AdmissionObserver } from "./webhook/server.ts";

// Reasons a person wants to hear about; NoMatchingPusher and the namespace gates apply to most pods of a cluster and
// would flood Events (they are still counted in metrics and logged at debug).
const EVENT_WORTHY_SKIPS: ReadonlySet<string> = new Set([
  SkipReason.ExplicitPusherNotFound,
  SkipReason.ImageNotAllowed,
  SkipReason.WouldBlockCompletion,
  SkipReason.ContainerNameTaken,
  SkipReason.PusherBeingDeleted,
  SkipReason.HostNetwork,
]);

export function createAdmissionObserver(deps: {
  log: Logger;
  metrics: Pick<
    OperatorMetrics,
    "webhookRequests" | "webhookInjections" | "webhookSkips" | "webhookErrors" | "webhookDuration" | "webhookRefused"
  >;
  /** undefined: no Events (benchmarks). */
  events: Pick<EventRecorder, "emit" | "emitForPod"> | undefined;
  /** The MetricsPushers the Events are attached to (the informer's, as the handler's). */
  pushers(): readonly MetricsPusher[];
}): AdmissionObserver {
  const { log, metrics } = deps;
  const find = (namespace: string, name: string | undefined) =>
    name === undefined
      ? undefined
      : deps.pushers().find((x) => x.metadata.namespace === namespace && x.metadata.name === name);

  return {
    injected(a, result) {
      metrics.webhookRequests.inc({ result: "injected" });
      metrics.webhookInjections.inc({ mode: result.native ? "native" : "container" });
      log.info(
        {
          namespace: a.namespace,
          pod: a.name,
          pusher: result.pusher,
          hash: result.hash,
          native: result.native,
          dryRun: a.dryRun,
        },
        "Injected sidecar into Pod",
      );
      const events = a.dryRun ? undefined : deps.events;
      if (!events) return;
      const owner = a.pod.metadata?.ownerReferences?.find((o) => o.controller);
      const what = owner ? `a Pod of ${owner.kind} ${owner.name}` : `Pod ${a.name}`;
      events.emitForPod(
        a.pod,
        a.namespace,
        EventType.Normal,
        EventReason.Injected,
        `Injected metrics-pusher from MetricsPusher ${result.pusher} (config ${result.hash})`,
      );
      const p = find(a.namespace, result.pusher);
      if (!p) return;
      events.emit(pusherRef(p), EventType.Normal, EventReason.Injected, `Injected config ${result.hash} into ${what}`);
      if (result.matched.length < 2) return;
      for (const name of result.matched) {
        const q = find(a.namespace, name);
        if (q)
          events.emit(
            pusherRef(q),
            EventType.Warning,
            EventReason.MultipleMatches,
            `${result.matched.length} MetricsPushers (${result.matched.join(", ")}) select ${what}; ${result.pusher} was used`,
          );
      }
    },

    skipped(a, result) {
      metrics.webhookRequests.inc({ result: "skipped" });
      metrics.webhookSkips.inc({ reason: result.reason });
      // Not a Pod CREATE: nothing a person would look for.
      if (!a) return;
      log.debug({ namespace: a.namespace, pod: a.name, reason: result.reason, pusher: result.pusher }, result.message);
      const events = a.dryRun ? undefined : deps.events;
      if (!events || !EVENT_WORTHY_SKIPS.has(result.reason)) return;
      const message = `${result.reason}: ${result.message}`;
      events.emitForPod(a.pod, a.namespace, EventType.Warning, EventReason.InjectionSkipped, message);
      const p = find(a.namespace, result.pusher);
      if (p) events.emit(pusherRef(p), EventType.Warning, EventReason.InjectionSkipped, message);
    },

    failed(err, request) {
      metrics.webhookRequests.inc({ result: "error" });
      metrics.webhookErrors.inc();
      metrics.webhookSkips.inc({ reason: SkipReason.InternalError });
      log.error(
        { err, uid: request.uid, namespace: request.namespace },
        "Internal error in the webhook; admitting the Pod unchanged",
      );
    },

    malformed(err, stage) {
      metrics.webhookRequests.inc({ result: "malformed" });
      log.warn(
        { err: err.message },
        stage === "decode" ? "Malformed admission request" : "Could not read admission request",
      );
    },

    refused(reason) {
      // Counted only: a flood of refusals must not become a flood of log lines.
      metrics.webhookRefused.inc({ reason });
    },

    answered(seconds) {
      metrics.webhookDuration.observe(seconds);
    },
  };
}
