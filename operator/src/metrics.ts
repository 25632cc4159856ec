// The operator's own metrics, registered into the Registry main.ts passes in (never prom-client's global one).
// Names: metrics_pusher_operator_<subsystem>_<name>_<unit>, except the controller's work queue, reconciles and
// leader election, which carry the names controller-runtime and client-go give them (workqueue_*,
// controller_runtime_reconcile_*, leader_election_master_status) so that generic operator dashboards and alerts work.
import { Counter, Gauge, Histogram } from "prom-client";
import type { Registry } from "prom-client";

const P = "metrics_pusher_operator";

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;

export function createOperatorMetrics(registry: Registry) {
  const registers = [registry];
  return {
    webhookRequests: new Counter({
      name: `${P}_webhook_requests_total`,
      help: "Admission requests answered, by result: injected, skipped, error (admitted unchanged) or malformed (HTTP 400).",
      labelNames: ["result"] as const,
      registers,
    }),
    webhookInjections: new Counter({
      name: `${P}_webhook_injections_total`,
      help: "Pods the webhook injected the pusher into, by placement (native or container).",
      labelNames: ["mode"] as const,
      registers,
    }),
    webhookSkips: new Counter({
      name: `${P}_webhook_skips_total`,
      help: "Pods the webhook left alone, by reason (see SkipReason in the README).",
      labelNames: ["reason"] as const,
      registers,
    }),
    webhookErrors: new Counter({
      name: `${P}_webhook_errors_total`,
      help: "Internal errors while handling an admission request; the pod was admitted unchanged.",
      registers,
    }),
    webhookRefused: new Counter({
      name: `${P}_webhook_refused_total`,
      help: "Requests refused before decoding, by reason: TooLarge (HTTP 413, unread or cut off), Overloaded (HTTP 503, over the in-flight bounds; the apiserver fails open) or TooSlow (HTTP 408, body not complete in time).",
      labelNames: ["reason"] as const,
      registers,
    }),
    webhookDuration: new Histogram({
      name: `${P}_webhook_request_duration_seconds`,
      help: "Time from the end of the request body to the answer.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    eventsSent: new Counter({
      name: `${P}_events_sent_total`,
      help: "Kubernetes Events written, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    eventsSuppressed: new Counter({
      name: `${P}_events_suppressed_total`,
      help: "Kubernetes Events not written because their namespace and reason were over the rate limit, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    eventsFailed: new Counter({
      name: `${P}_events_failed_total`,
      help: "Kubernetes Events that could not be written or were dropped because the queue was full.",
      registers,
    }),
    certificateExpiry: new Gauge({
      name: `${P}_certificate_expiry_timestamp_seconds`,
      help: "Expiry (Unix time) of the serving certificate in use.",
      registers,
    }),
    certificateRotations: new Counter({
      name: `${P}_certificate_rotations_total`,
      help: "Serving certificates issued (leader) or loaded into the TLS server (every replica), by kind.",
      labelNames: ["kind"] as const,
      registers,
    }),
    caBundlePatches: new Counter({
      name: `${P}_cabundle_patches_total`,
      help: "Times the MutatingWebhookConfiguration's caBundle (or URL) was patched because it differed.",
      registers,
    }),
    // For the controller (operator/src/controller), so that names stay in one place.
    leader: new Gauge({
      name: "leader_election_master_status",
      help: "1 while this replica holds the leader Lease `name`, else 0.",
      labelNames: ["name"] as const,
      registers,
    }),
    reconciles: new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Reconciles, by controller and result (success, error).",
      labelNames: ["controller", "result"] as const,
      registers,
    }),
    reconcileErrors: new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Reconciles that failed and are retried with backoff, by controller.",
      labelNames: ["controller"] as const,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Time of one reconcile, by controller.",
      labelNames: ["controller"] as const,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: "workqueue_depth",
      help: "Keys waiting in the work queue `name` (not those being processed).",
      labelNames: ["name"] as const,
      registers,
    }),
    workqueueAdds: new Counter({
      name: "workqueue_adds_total",
      help: "Keys added to the work queue `name` (an add of a key already waiting is not counted).",
      labelNames: ["name"] as const,
      registers,
    }),
    workqueueRetries: new Counter({
      name: "workqueue_retries_total",
      help: "Keys of the work queue `name` retried with backoff after a failure.",
      labelNames: ["name"] as const,
      registers,
    }),
    workqueueQueueDuration: new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "Time a key waited in the work queue `name` before it was processed.",
      labelNames: ["name"] as const,
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    }),
    workqueueWorkDuration: new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "Time processing one key of the work queue `name` took.",
      labelNames: ["name"] as const,
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    }),
    rollouts: new Counter({
      name: `${P}_rollouts_total`,
      help: "Workloads whose pod template was stamped, by reason (config_change, drift_repair, removal).",
      labelNames: ["reason", "kind"] as const,
      registers,
    }),
    rolloutsDeferred: new Counter({
      name: `${P}_rollouts_deferred_total`,
      help: "Rollouts postponed by the rate limit (ROLLOUT_MAX_PER_INTERVAL).",
      registers,
    }),
    informerRestarts: new Counter({
      name: `${P}_informer_restarts_total`,
      help: "Informer restarts after an error, by informer.",
      labelNames: ["informer"] as const,
      registers,
    }),
    nativeSidecarsSupported: new Gauge({
      name: `${P}_native_sidecars_supported`,
      help: "1 when the apiserver and every node's kubelet are >= 1.29 (sidecarMode Auto renders native sidecars).",
      registers,
    }),
  };
}
