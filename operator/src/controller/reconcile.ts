// One MetricsPusher reconcile: read the caches, let plan.ts decide, apply the actions through the API (rate-limited),
// write status only when it changed. Level-based: it looks at the world as it is, never at what changed, so running
// it twice in a row does nothing the second time.
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import {
  Annotations,
  ConditionReason,
  ConditionType,
  CRD_NAME,
  EventReason,
  EventType,
  FIELD_MANAGER,
  FINALIZER,
  GROUP,
  PLURAL,
  VERSION,
} from "../api/index.ts";
import type { MetricsPusher } from "../api/index.ts";
import type { OperatorConfig } from "../config.ts";
import { pusherRef, type EventRecorder, type ObjectRef } from "../events.ts";
import type { MutateSettings } from "../inject/mutate.ts";
import { renderSidecar, type SidecarDefaults } from "../inject/sidecar.ts";
import { apiMessage, apiStatus } from "../kube/errors.ts";
import type { Informer } from "../kube/informer.ts";
import type { OperatorMetrics } from "../metrics.ts";
import type { NamespaceCache } from "./caches.ts";
import {
  type Action,
  type Outcome,
  computeStatus,
  type Decision,
  decideFor,
  excludedNamespace,
  planDeletion,
  planPusher,
  podHashFor,
  readiness,
  REMOVED_STAMP,
  StampReason,
  statusChanged,
} from "./plan.ts";
import type { TokenBucket } from "./ratelimit.ts";
import type { WebhookGate } from "./webhook-endpoints.ts";
import { type Workload, workloadRef, WorkloadKind } from "./workloads.ts";

/** A workload restarted for drift is not restarted for drift again within this time. */
export const DRIFT_REPAIR_BACKOFF_MS = 10 * 60_000;
/** After this many failed deletion attempts the finalizer is removed anyway: deletion must never hang forever. */
export const MAX_DELETE_ATTEMPTS = 5;

/** What the reconciler reads and writes through; nothing of the queue that calls it. */
export interface ReconcilerDeps {
  kc: KubeConfig;
  log: Logger;
  config: Pick<OperatorConfig, "driftRepair" | "rolloutMaxPerInterval" | "rolloutIntervalMs">;
  metrics: Pick<OperatorMetrics, "rollouts" | "rolloutsDeferred">;
  events: Pick<EventRecorder, "emit">;
  pushers: Pick<Informer<MetricsPusher>, "get" | "list">;
  namespaceLabels: (namespace: string) => Readonly<Record<string, string>> | undefined;
  defaults: () => SidecarDefaults;
  settings: MutateSettings;
  cacheFor: (namespace: string) => NamespaceCache;
  bucket: TokenBucket;
  /** Rolls that need the webhook wait for it (webhook-endpoints.ts); none when absent. */
  webhook?: WebhookGate;
  /** Aborted when the controller stops (leadership lost, shutdown): ends waits for caches. */
  signal?: AbortSignal;
  now?: () => number;
}

export interface ReconcileResult {
  /** Whether the status subresource was written. */
  statusWritten: boolean;
  applied: readonly Action[];
  /** Run this key again after this long (the rollout rate limit held actions back); the caller requeues. */
  requeueAfterMs?: number;
}

export class Reconciler {
  readonly #d: ReconcilerDeps;
  readonly #apps: AppsV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #ext: ApiextensionsV1Api;
  readonly #log: Logger;
  readonly #deleteAttempts = new Map<string, number>();

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#apps = deps.kc.makeApiClient(AppsV1Api);
    this.#custom = deps.kc.makeApiClient(CustomObjectsApi);
    this.#core = deps.kc.makeApiClient(CoreV1Api);
    this.#ext = deps.kc.makeApiClient(ApiextensionsV1Api);
    this.#log = deps.log;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = "", name = ""] = key.split("/");
    const pusher = this.#d.pushers.get(namespace, name);
    if (!pusher) return { statusWritten: false, applied: [] };
    const log = this.#log.child({ metricspusher: key });
    const cache = this.#d.cacheFor(namespace);
    if (!cache.hasSynced()) {
      const timeout = AbortSignal.timeout(60_000);
      await cache.waitForSync(this.#d.signal ? AbortSignal.any([this.#d.signal, timeout]) : timeout);
    }

    const now = this.#d.now?.() ?? Date.now();
    const defaults = this.#d.defaults();
    const decide = (w: Workload): Decision =>
      decideFor(
        w,
        namespace,
        this.#d.pushers.list(namespace),
        this.#d.namespaceLabels(namespace),
        defaults,
        this.#d.settings,
      );

    if (pusher.metadata.deletionTimestamp) return this.#finalize(key, pusher, cache, decide, log);

    if (!(pusher.metadata.finalizers ?? []).includes(FINALIZER)) await this.#addFinalizer(pusher);

    const rendered = renderSidecar(pusher, defaults);
    const notReady = readiness(pusher, rendered, defaults, this.#d.settings);
    const plan = planPusher({
      pusher,
      workloads: cache.workloads(),
      podsOf: (w) => cache.podsOf(w),
      decide,
      podHash: podHashFor(pusher, defaults),
      now,
      driftRepair: this.#d.config.driftRepair,
      driftRepairBackoffMs: DRIFT_REPAIR_BACKOFF_MS,
    });
    // Rolls that expect the webhook to inject wait until its Service's endpoints have settled; removals do not.
    const webhookWaitMs = this.#d.webhook?.waitMs(now) ?? 0;
    const needsWebhook = (a: Action): boolean => a.type === "stamp" || a.type === "repair";
    const held = webhookWaitMs > 0 ? plan.actions.filter(needsWebhook) : [];
    const toApply = held.length > 0 ? plan.actions.filter((a) => !needsWebhook(a)) : plan.actions;
    // A MetricsPusher the webhook refuses to inject (image, invalid spec): rolling workloads would only restart them.
    const applied = notReady ? { applied: [], rateLimited: [], failed: [] } : await this.#apply(toApply, pusher, log);
    const waiting = !notReady && held.length > 0 ? { actions: held, why: this.#d.webhook!.describe(now) } : undefined;
    const outcome: Outcome = waiting ? { ...applied, waitingForWebhook: waiting } : applied;
    if (waiting) {
      log.info(
        { workloads: held.map((a) => workloadRef(a.workload)), webhook: waiting.why },
        "Waiting for the webhook before rolling",
      );
    }
    // Until the endpoints change (Infinity) the gate's own change listener requeues; the 5 s is a safety net.
    const retryMs = [
      ...(outcome.rateLimited.length > 0 ? [this.#requeueMs()] : []),
      ...(outcome.waitingForWebhook ? [Math.max(200, Math.min(webhookWaitMs, 5_000))] : []),
    ];
    const requeue = retryMs.length > 0 ? { requeueAfterMs: Math.min(...retryMs) } : {};

    const status = computeStatus({
      pusher,
      hash: rendered.hash,
      plan,
      outcome,
      ...(notReady ? { notReady } : {}),
      rollout: { maxPerInterval: this.#d.config.rolloutMaxPerInterval, intervalMs: this.#d.config.rolloutIntervalMs },
      now,
    });
    let statusWritten = false;
    if (statusChanged(pusher.status, status)) {
      await this.#custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          body: { status },
          fieldManager: FIELD_MANAGER,
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      statusWritten = true;
      // Once per transition into InvalidSpec (the status write above is what changed): kubectl describe shows it.
      const wasInvalid = pusher.status?.conditions?.some(
        (c) => c.type === ConditionType.Ready && c.reason === ConditionReason.InvalidSpec,
      );
      if (notReady?.reason === ConditionReason.InvalidSpec && !wasInvalid)
        this.#d.events.emit(pusherRef(pusher), EventType.Warning, EventReason.InvalidSpec, notReady.message);
      log.info(
        {
          matched: status.matchedWorkloads,
          updated: status.updatedWorkloads,
          conditions: status.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`),
        },
        "Status updated",
      );
    }
    if (outcome.failed.length > 0) {
      throw new Error(
        `could not update ${outcome.failed.map((f) => `${workloadRef(f.action.workload)} (${f.error})`).join(", ")}`,
      );
    }
    return { statusWritten, applied: outcome.applied, ...requeue };
  }

  #requeueMs(): number {
    return Math.max(100, this.#d.bucket.waitMs());
  }

  async #finalize(
    key: string,
    pusher: MetricsPusher,
    cache: NamespaceCache,
    decide: (w: Workload) => Decision,
    log: Logger,
  ): Promise<ReconcileResult> {
    if (!(pusher.metadata.finalizers ?? []).includes(FINALIZER)) return { statusWritten: false, applied: [] };
    if (await this.#namespaceTerminating(pusher.metadata.namespace ?? "")) {
      // Its workloads go with the namespace: rolling them would only delay the namespace's deletion.
      await this.#removeFinalizer(pusher);
      log.info("Finalizer removed (namespace terminating)");
      return { statusWritten: false, applied: [] };
    }
    const actions = planDeletion({ pusher, workloads: cache.workloads(), podsOf: (w) => cache.podsOf(w), decide });
    const outcome = await this.#apply(actions, pusher, log);
    if (outcome.rateLimited.length > 0) {
      return { statusWritten: false, applied: outcome.applied, requeueAfterMs: this.#requeueMs() };
    }
    if (outcome.failed.length > 0) {
      const attempts = (this.#deleteAttempts.get(key) ?? 0) + 1;
      this.#deleteAttempts.set(key, attempts);
      if (attempts < MAX_DELETE_ATTEMPTS) {
        throw new Error(
          `could not roll back ${outcome.failed.map((f) => `${workloadRef(f.action.workload)} (${f.error})`).join(", ")}`,
        );
      }
      const message = `Removing finalizer after ${attempts} failed attempts; these workloads may keep the sidecar until restarted: ${outcome.failed.map((f) => workloadRef(f.action.workload)).join(", ")}`;
      log.warn({ failed: outcome.failed.map((f) => f.error) }, message);
      this.#d.events.emit(pusherRef(pusher), EventType.Warning, EventReason.SidecarRemoved, message);
    }
    this.#deleteAttempts.delete(key);
    await this.#removeFinalizer(pusher);
    log.info({ rolledBack: outcome.applied.length }, "Finalizer removed");
    return { statusWritten: false, applied: outcome.applied };
  }

  async #namespaceTerminating(namespace: string): Promise<boolean> {
    try {
      const ns = await this.#core.readNamespace({ name: namespace });
      return ns.metadata?.deletionTimestamp != null || ns.status?.phase === "Terminating";
    } catch (err) {
      return apiStatus(err) === 404;
    }
  }

  /**
   * Uninstall: when the CRD itself is being deleted, the apiserver deletes every MetricsPusher and waits for their
   * finalizers while the operator is usually being removed in the same breath. Dropping the finalizers at once (no
   * rollouts) is the only way the CRD deletion cannot hang. Returns how many finalizers were removed.
   */
  async releaseAllIfUninstalling(): Promise<number> {
    let crd;
    try {
      crd = await this.#ext.readCustomResourceDefinition({ name: CRD_NAME });
    } catch {
      return 0;
    }
    if (crd.metadata?.deletionTimestamp == null) return 0;
    const list = (await this.#custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as {
      items: MetricsPusher[];
    };
    let removed = 0;
    for (const p of list.items) {
      if (!(p.metadata.finalizers ?? []).includes(FINALIZER)) continue;
      try {
        await this.#removeFinalizer(p);
        removed++;
      } catch (err) {
        this.#log.warn(
          { metricspusher: `${p.metadata.namespace}/${p.metadata.name}`, err: apiMessage(err) },
          "Could not remove finalizer during uninstall",
        );
      }
    }
    this.#log.info({ removed }, "CRD is being deleted: removed finalizers so the uninstall cannot hang");
    return removed;
  }

  /** Applies actions in order while the rollout rate limit allows; keeps going past failures. */
  async #apply(actions: readonly Action[], pusher: MetricsPusher, log: Logger) {
    const applied: Action[] = [];
    const rateLimited: Action[] = [];
    const failed: { action: Action; error: string }[] = [];
    for (const action of actions) {
      const excluded = excludedNamespace(
        action.workload.namespace,
        this.#d.namespaceLabels(action.workload.namespace),
        this.#d.settings,
      );
      if (excluded) {
        // Never patched, whatever the plan says (a MetricsPusher in kube-system, a stamp left from before the label).
        log.info({ workload: workloadRef(action.workload), action: action.type }, `Not patching: ${excluded}`);
        continue;
      }
      if (!this.#d.bucket.tryTake()) {
        rateLimited.push(action);
        this.#d.metrics.rolloutsDeferred.inc();
        continue;
      }
      const w = action.workload;
      try {
        await this.#patchTemplateAnnotations(w, annotationsFor(action));
      } catch (err) {
        const code = apiStatus(err);
        if (code === 404 && action.type === "unstamp") {
          applied.push(action); // gone already: nothing left to roll back
          continue;
        }
        failed.push({ action, error: code ? `HTTP ${code}` : apiMessage(err) });
        log.warn({ workload: workloadRef(w), err: apiMessage(err) }, "Could not patch workload");
        continue;
      }
      applied.push(action);
      const reason =
        action.type === "unstamp"
          ? "removal"
          : action.type === "repair" || (action.type === "stamp" && action.reason === StampReason.MissingSidecar)
            ? "drift_repair"
            : "config_change";
      this.#d.metrics.rollouts.inc({ reason, kind: w.kind });
      const [type, eventReason] =
        reason === "removal"
          ? [EventType.Normal, EventReason.SidecarRemoved]
          : reason === "drift_repair"
            ? [EventType.Warning, EventReason.DriftRepaired]
            : [EventType.Normal, EventReason.RolloutTriggered];
      this.#d.events.emit(workloadObjectRef(w), type, eventReason, action.message);
      this.#d.events.emit(pusherRef(pusher), type, eventReason, action.message);
      log.info({ workload: workloadRef(w), action: action.type, reason }, action.message);
    }
    return { applied, rateLimited, failed };
  }

  async #patchTemplateAnnotations(w: Workload, annotations: Record<string, string | null>): Promise<void> {
    const body = { spec: { template: { metadata: { annotations } } } };
    const params = { name: w.name, namespace: w.namespace, body, fieldManager: FIELD_MANAGER };
    const opts = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
    switch (w.kind) {
      case WorkloadKind.Deployment:
        await this.#apps.patchNamespacedDeployment(params, opts);
        break;
      case WorkloadKind.StatefulSet:
        await this.#apps.patchNamespacedStatefulSet(params, opts);
        break;
      case WorkloadKind.DaemonSet:
        await this.#apps.patchNamespacedDaemonSet(params, opts);
        break;
    }
  }

  async #addFinalizer(pusher: MetricsPusher): Promise<void> {
    const finalizers = pusher.metadata.finalizers;
    // Appending keeps other controllers' finalizers; the test op makes the patch fail (and the reconcile retry) if
    // the object changed since the cache saw it, so "add the whole list" can never replace a list we did not see.
    const body = [
      { op: "test", path: "/metadata/resourceVersion", value: pusher.metadata.resourceVersion },
      finalizers === undefined
        ? { op: "add", path: "/metadata/finalizers", value: [FINALIZER] }
        : { op: "add", path: "/metadata/finalizers/-", value: FINALIZER },
    ];
    await this.#custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: pusher.metadata.namespace ?? "",
        plural: PLURAL,
        name: pusher.metadata.name ?? "",
        body,
        fieldManager: FIELD_MANAGER,
      },
      setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
    );
  }

  async #removeFinalizer(pusher: MetricsPusher): Promise<void> {
    const index = (pusher.metadata.finalizers ?? []).indexOf(FINALIZER);
    if (index < 0) return;
    // The test op makes the patch fail (and the reconcile retry) if the list changed since the cache saw it.
    const body = [
      { op: "test", path: `/metadata/finalizers/${index}`, value: FINALIZER },
      { op: "remove", path: `/metadata/finalizers/${index}` },
    ];
    try {
      await this.#custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: pusher.metadata.namespace ?? "",
          plural: PLURAL,
          name: pusher.metadata.name ?? "",
          body,
        },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      );
    } catch (err) {
      if (apiStatus(err) === 404) return;
      throw err;
    }
  }
}

function annotationsFor(action: Action): Record<string, string | null> {
  switch (action.type) {
    case "stamp":
      return {
        [Annotations.configHash]: action.hash,
        ...(action.repairedAt ? { [Annotations.driftRepairedAt]: action.repairedAt } : {}),
      };
    case "repair":
      return { [Annotations.driftRepairedAt]: action.at };
    case "unstamp":
      return { [Annotations.configHash]: action.mark ? REMOVED_STAMP : null, [Annotations.driftRepairedAt]: null };
  }
}

function workloadObjectRef(w: Workload): ObjectRef {
  return { apiVersion: "apps/v1", kind: w.kind, namespace: w.namespace, name: w.name, uid: w.uid };
}
