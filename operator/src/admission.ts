// The webhook's AdmissionObserver: what the admission handler decided, turned into metrics, Events and log lines.
// Kept out of webhook/server.ts so that the handler only reads, decodes and answers.
//
// A review may be forged by anyone who reaches the webhook's port, so Events are written only about objects the
// operator's caches know (the MetricsPusher informer; the pod's workload from the controller's caches), never about
// the pod or an owner the request names; and text taken from the request is quoted and cut (quote()).
import type { V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Annotations, EventReason, EventType, SkipReason } from "./api/index.ts";
import type { MetricsPusher } from "./api/index.ts";
import { pusherRef, quote } from "./events.ts";
import type { EventRecorder, ObjectRef } from "./events.ts";
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
  SkipReason.InvalidSpec,
]);

export function createAdmissionObserver(deps: {
  log: Logger;
  metrics: Pick<
    OperatorMetrics,
    "webhookRequests" | "webhookInjections" | "webhookSkips" | "webhookErrors" | "webhookDuration" | "webhookRefused"
  >;
  /** undefined: no Events (benchmarks). */
  events: Pick<EventRecorder, "emit"> | undefined;
  /** The MetricsPushers the Events are attached to (the informer's, as the handler's). */
  pushers(): readonly MetricsPusher[];
  /** The cached workload the pod belongs to (controller/workloads.ts owningWorkload); never an API read. */
  workloadOf?: (namespace: string, pod: V1Pod) => ObjectRef | undefined;
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
      const workload = deps.workloadOf?.(a.namespace, a.pod);
      const what = workload ? `a Pod of ${workload.kind} ${workload.name}` : `Pod ${quote(a.name)}`;
      if (workload)
        events.emit(
          workload,
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
      const workload = deps.workloadOf?.(a.namespace, a.pod);
      const message = `${result.reason}: ${skipEventText(result.reason, result.message, a, workload)}`;
      if (workload) events.emit(workload, EventType.Warning, EventReason.InjectionSkipped, message);
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

/**
 * The Event text of a skip. mutate()'s message may hold text of the request (the inject annotation, restartPolicy):
 * for those reasons the text is rebuilt here with that part quoted; the others only hold the operator's and the
 * MetricsPusher's own words.
 */
function skipEventText(
  reason: SkipReason,
  message: string,
  a: { pod: V1Pod; name: string; namespace: string },
  workload: ObjectRef | undefined,
): string {
  const pod = workload ? `a Pod of ${workload.kind} ${workload.name}` : `Pod ${quote(a.name)}`;
  if (reason === SkipReason.ExplicitPusherNotFound)
    return `${pod} asks for MetricsPusher ${quote(a.pod.metadata?.annotations?.[Annotations.inject]?.trim() ?? "")} (${Annotations.inject}), which does not exist in namespace ${a.namespace}`;
  if (reason === SkipReason.WouldBlockCompletion)
    return `${pod} has restartPolicy ${quote(a.pod.spec?.restartPolicy ?? "")}; ${message.slice(message.lastIndexOf(" and MetricsPusher ") + 5)}`;
  return `${pod}: ${message}`;
}
