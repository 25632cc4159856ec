// PURE: what the controller should do for one MetricsPusher, and the status that describes it. No I/O and no clock
// (the caller passes `now`), so every rule is tested table-style without an apiserver (plan.test.ts).
import type { V1Condition, V1Pod } from "@kubernetes/client-node";
import {
  Annotations,
  ConditionReason,
  ConditionType,
  DiscoveryMode,
  InjectionLabelValues,
  InjectValues,
  Labels,
  RolloutStrategy,
  parseInjected,
} from "../api/index.ts";
import type { MetricsPusher, MetricsPusherStatus, SkipReason } from "../api/index.ts";
import { mutate, renderForPod, selectorMatches, type MutateSettings } from "../inject/mutate.ts";
import { checkSidecar, isImageAllowed } from "../inject/sidecar.ts";
import type { RenderedSidecar, SidecarDefaults } from "../inject/sidecar.ts";
import { controllingOwner, type Workload, workloadRef } from "./workloads.ts";

/** What the webhook would do with a pod made from a workload's template (mutate() on the template). */
export type Decision =
  | { readonly kind: "inject"; readonly pusher: string; readonly hash: string }
  | { readonly kind: "skip"; readonly reason: SkipReason; readonly message: string };

/** The webhook's own decision (mutate()) for a pod made from the workload's template. */
export function decideFor(
  w: Workload,
  namespace: string,
  pushers: readonly MetricsPusher[],
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  defaults: SidecarDefaults,
  settings: MutateSettings,
): Decision {
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      namespace,
      labels: w.template.metadata?.labels ?? {},
      annotations: w.template.metadata?.annotations ?? {},
    },
    spec: w.template.spec ?? { containers: [] },
  };
  const result = mutate({ pod, namespace, namespaceLabels, pushers, defaults, settings });
  if (result.kind === "patch") return { kind: "inject", pusher: result.pusher, hash: result.hash };
  return { kind: "skip", reason: result.reason, message: result.message };
}

/**
 * Why the controller must never patch a workload of `namespace`, or undefined when it may: the namespaces the webhook
 * never injects into (system ones, the operator's, those labelled metricspusher.dev/injection: disabled). Its
 * ServiceAccount could patch there (a cluster-wide role, unless bound per namespace: README, Security model); this is
 * what keeps it from doing so, whatever a MetricsPusher there says.
 */
export function excludedNamespace(
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  settings: Pick<MutateSettings, "systemNamespaces">,
): string | undefined {
  if (settings.systemNamespaces.includes(namespace)) return `namespace ${namespace} is a system namespace`;
  if (namespaceLabels?.[Labels.injection] === InjectionLabelValues.disabled)
    return `namespace ${namespace} is labelled ${Labels.injection}=${InjectionLabelValues.disabled}`;
  return undefined;
}

/** The config-hash stamp that says "rolled to remove the sidecar": set when a workload has to roll but carries no
 * stamp to remove. */
export const REMOVED_STAMP = "none";

export const StampReason = {
  /** The template carries another MetricsPusher config (or none) than the current one. */
  ConfigChanged: "ConfigChanged",
  /** Pods run without the sidecar although the webhook would inject it (made while the webhook was down, or
   * before the MetricsPusher existed). */
  MissingSidecar: "MissingSidecar",
} as const;
export type StampReason = (typeof StampReason)[keyof typeof StampReason];

export type Action =
  /** Set the config-hash stamp on the pod template: Kubernetes rolls the pods, the webhook injects `hash`. */
  | {
      readonly type: "stamp";
      readonly workload: Workload;
      readonly hash: string;
      readonly reason: StampReason;
      readonly message: string;
      readonly repairedAt?: string;
    }
  /** The template already carries the current stamp but pods made from it lack the sidecar: restart once. */
  | { readonly type: "repair"; readonly workload: Workload; readonly at: string; readonly message: string }
  /** On deletion: remove the stamp (or mark REMOVED_STAMP) so the pods roll back without the sidecar. */
  | { readonly type: "unstamp"; readonly workload: Workload; readonly mark: boolean; readonly message: string };

export const WorkloadState = {
  /** The template (or, before any stamp, every live pod) carries the current config. */
  Updated: "Updated",
  NeedsRollout: "NeedsRollout",
  OwnedByAnotherController: "OwnedByAnotherController",
  RolloutDisabled: "RolloutDisabled",
} as const;
export type WorkloadState = (typeof WorkloadState)[keyof typeof WorkloadState];

export interface WorkloadReport {
  readonly workload: Workload;
  readonly state: WorkloadState;
  readonly detail?: string;
}

export interface Plan {
  /** Workloads whose pods get this MetricsPusher. */
  readonly matched: readonly WorkloadReport[];
  /** Workloads whose template labels the selector matches but whose pods get no sidecar from it, and why. */
  readonly notInjected: readonly { readonly workload: Workload; readonly why: string }[];
  readonly actions: readonly Action[];
}

export interface PlanInput {
  readonly pusher: MetricsPusher;
  /** Workloads of the MetricsPusher's namespace. */
  readonly workloads: readonly Workload[];
  /** Live pods of a workload (isLivePod, labels matching its selector). */
  readonly podsOf: (w: Workload) => readonly V1Pod[];
  readonly decide: (w: Workload) => Decision;
  /** podHashFor(pusher, defaults): with discovery, each pod's config is compared with its own expected hash; without
   * it (or without discovery), with the workload's. */
  readonly podHash?: (p: V1Pod) => string | undefined;
  readonly now: number;
  readonly driftRepair: boolean;
  /** A workload restarted for drift is not restarted again for drift within this time. */
  readonly driftRepairBackoffMs: number;
}

function templateAnnotation(w: Workload, key: string): string | undefined {
  return w.template.metadata?.annotations?.[key];
}

function podInjection(p: V1Pod): { name: string; hash: string } | undefined {
  return parseInjected(p.metadata?.annotations?.[Annotations.injected]);
}

function podOptedOut(p: V1Pod): boolean {
  return p.metadata?.annotations?.[Annotations.inject]?.trim().toLowerCase() === InjectValues.optOut;
}

/**
 * With spec.scrape.discovery, the hash the webhook would give `pod` now, from the targets the pod itself declares
 * (another mutating webhook may have changed its annotations after the template's), or undefined when it would give
 * none (the pod's declaration is unusable).
 */
export function podHashFor(pusher: MetricsPusher, defaults: SidecarDefaults): (pod: V1Pod) => string | undefined {
  return (pod) => {
    const rendered = renderForPod(pusher, defaults, pod);
    return "invalid" in rendered ? undefined : rendered.sidecar.hash;
  };
}

/** Whether the selector (or the explicit inject annotation) of `pusher` points at this workload's pods. */
export function selects(pusher: MetricsPusher, w: Workload): boolean {
  const explicit = templateAnnotation(w, Annotations.inject)?.trim();
  if (explicit && explicit.toLowerCase() !== "true" && explicit.toLowerCase() !== InjectValues.optOut) {
    return explicit === pusher.metadata.name;
  }
  return selectorMatches(pusher.spec.selector, w.template.metadata?.labels ?? {});
}

export function planPusher(input: PlanInput): Plan {
  const { pusher } = input;
  const name = pusher.metadata.name ?? "";
  const strategy = pusher.spec.rolloutStrategy ?? RolloutStrategy.Workload;
  const discovery = pusher.spec.scrape?.discovery ?? DiscoveryMode.None;
  const matched: WorkloadReport[] = [];
  const notInjected: { workload: Workload; why: string }[] = [];
  const actions: Action[] = [];

  for (const w of sortWorkloads(input.workloads)) {
    if (w.deleting) continue;
    if (!selects(pusher, w)) {
      const release = planRelease(input, w, strategy);
      if (release) actions.push(release);
      continue;
    }
    const decision = input.decide(w);
    if (decision.kind === "skip") {
      notInjected.push({ workload: w, why: decision.message });
      continue;
    }
    if (decision.pusher !== name) {
      notInjected.push({
        workload: w,
        why: `its pods get MetricsPusher ${decision.pusher} (the oldest matching one, or named by ${Annotations.inject})`,
      });
      continue;
    }

    // The config of this workload's pods: with discovery it covers the targets its template declares.
    const hash = decision.hash;
    const pods = input.podsOf(w);
    const stamp = templateAnnotation(w, Annotations.configHash);
    // With discovery a pod's config covers the targets it declares itself: one of an older template (being replaced
    // by the workload's own rollout) is current with its own declaration, and so is one whose annotations another
    // webhook changed. undefined: the webhook would give it no sidecar, which no roll changes.
    const expected = (p: V1Pod): string | undefined =>
      discovery === DiscoveryMode.None || input.podHash === undefined ? hash : input.podHash(p);
    const podsCurrent = pods.every((p) => {
      const want = expected(p);
      const inj = podInjection(p);
      return podOptedOut(p) || want === undefined || (inj?.name === name && inj.hash === want);
    });
    // Unstamped, or stamped with the config of an older template (its declared targets changed and Kubernetes
    // rolled it): nothing to roll while every pod runs the config it should.
    const updated = stamp === hash || ((stamp === undefined || discovery !== DiscoveryMode.None) && podsCurrent);

    const owner = controllingOwner(w);
    if (owner) {
      matched.push({
        workload: w,
        state: updated ? WorkloadState.Updated : WorkloadState.OwnedByAnotherController,
        detail: `controlled by ${owner.kind}/${owner.name}`,
      });
      continue;
    }
    if (strategy === RolloutStrategy.None) {
      matched.push({ workload: w, state: updated ? WorkloadState.Updated : WorkloadState.RolloutDisabled });
      continue;
    }

    if (stamp === hash) {
      matched.push({ workload: w, state: WorkloadState.Updated });
      // Pods made from the current template carry the stamp (template annotations are copied to pods); one of them
      // without the sidecar was admitted while the webhook was unavailable (it fails open), and one with this
      // MetricsPusher's sidecar of another config by a replica of another operator version (during an upgrade).
      const bare = pods.filter((p) => {
        if (p.metadata?.annotations?.[Annotations.configHash] !== hash || podOptedOut(p)) return false;
        const want = expected(p);
        const inj = podInjection(p);
        return want !== undefined && (inj === undefined || (inj.name === name && inj.hash !== want));
      });
      if (bare.length > 0 && input.driftRepair) {
        const last = Date.parse(templateAnnotation(w, Annotations.driftRepairedAt) ?? "");
        if (Number.isNaN(last) || input.now - last >= input.driftRepairBackoffMs) {
          actions.push({
            type: "repair",
            workload: w,
            at: new Date(input.now).toISOString(),
            message: `${bare.length} pod(s) of ${workloadRef(w)} run without the metrics-pusher sidecar or with another config than ${hash} (admitted while the webhook was unavailable, or by another operator version); restarting ${workloadRef(w)} once so MetricsPusher ${name} is injected`,
          });
        }
      }
      continue;
    }
    if (updated) {
      // No stamp yet and every pod already runs the current config (created after the MetricsPusher): stamping now
      // would only restart healthy pods.
      matched.push({ workload: w, state: WorkloadState.Updated });
      continue;
    }

    const bare = pods.filter((p) => !podInjection(p) && !podOptedOut(p));
    if (stamp === undefined && bare.length > 0 && !input.driftRepair) {
      matched.push({ workload: w, state: WorkloadState.NeedsRollout, detail: "drift repair is disabled" });
      continue;
    }
    matched.push({ workload: w, state: WorkloadState.NeedsRollout });
    actions.push(
      bare.length > 0 && stamp === undefined
        ? {
            type: "stamp",
            workload: w,
            hash,
            reason: StampReason.MissingSidecar,
            // Also marks the repair, so that pods which come back bare again (webhook still unreachable) are not
            // restarted a second time before the backoff.
            repairedAt: new Date(input.now).toISOString(),
            message: `${bare.length} pod(s) of ${workloadRef(w)} run without the metrics-pusher sidecar; rolling ${workloadRef(w)} so MetricsPusher ${name} (config ${hash}) is injected`,
          }
        : {
            type: "stamp",
            workload: w,
            hash,
            reason: StampReason.ConfigChanged,
            message: `MetricsPusher ${name} config changed to ${hash}${stamp && stamp !== REMOVED_STAMP ? ` (was ${stamp})` : ""}; rolling ${workloadRef(w)}`,
          },
    );
  }
  return { matched, notInjected, actions };
}

/** A workload this MetricsPusher no longer selects (its selector changed) whose pods all still carry its sidecar, and
 * which no other MetricsPusher takes over: roll it so the sidecar goes. "All" pods, so that a rollout the user
 * started by changing the template's labels (new pods already without the sidecar) is not restarted again. */
function planRelease(input: PlanInput, w: Workload, strategy: string): Action | undefined {
  const name = input.pusher.metadata.name ?? "";
  if (strategy !== RolloutStrategy.Workload || controllingOwner(w)) return undefined;
  const pods = input.podsOf(w);
  if (pods.length === 0 || !pods.every((p) => podInjection(p)?.name === name)) return undefined;
  if (input.decide(w).kind !== "skip") return undefined; // another MetricsPusher's reconcile stamps its own config
  const stamp = templateAnnotation(w, Annotations.configHash);
  return {
    type: "unstamp",
    workload: w,
    mark: stamp === undefined || stamp === REMOVED_STAMP,
    message: `MetricsPusher ${name} no longer selects ${workloadRef(w)} (spec.selector changed); rolling it without the metrics-pusher sidecar`,
  };
}

export interface DeletionInput {
  readonly pusher: MetricsPusher;
  readonly workloads: readonly Workload[];
  readonly podsOf: (w: Workload) => readonly V1Pod[];
  /** The webhook's decision with this MetricsPusher already gone (it skips pushers being deleted). */
  readonly decide: (w: Workload) => Decision;
}

/** Deletion: roll the sidecar away from every workload this MetricsPusher stamped or injected, unless another
 * MetricsPusher takes over (its own reconcile then stamps its config). */
export function planDeletion(input: DeletionInput): Action[] {
  const name = input.pusher.metadata.name ?? "";
  const actions: Action[] = [];
  for (const w of sortWorkloads(input.workloads)) {
    if (w.deleting || controllingOwner(w)) continue;
    const decision = input.decide(w);
    if (decision.kind === "inject" && decision.pusher !== name) continue;
    const carries = input.podsOf(w).some((p) => podInjection(p)?.name === name);
    const stamp = templateAnnotation(w, Annotations.configHash);
    const hasStamp =
      (stamp !== undefined && stamp !== REMOVED_STAMP) ||
      templateAnnotation(w, Annotations.driftRepairedAt) !== undefined;
    if (hasStamp && (selects(input.pusher, w) || carries)) {
      actions.push({
        type: "unstamp",
        workload: w,
        mark: false,
        message: `MetricsPusher ${name} deleted; rolling ${workloadRef(w)} without the metrics-pusher sidecar`,
      });
    } else if (carries && stamp !== REMOVED_STAMP) {
      actions.push({
        type: "unstamp",
        workload: w,
        mark: true,
        message: `MetricsPusher ${name} deleted; rolling ${workloadRef(w)} without the metrics-pusher sidecar`,
      });
    }
  }
  return actions;
}

export interface Outcome {
  /** Actions the API accepted. */
  readonly applied: readonly Action[];
  /** Actions left for later by the rollout rate limit. */
  readonly rateLimited: readonly Action[];
  /** Actions the API refused, with the error. */
  readonly failed: readonly { readonly action: Action; readonly error: string }[];
  /** Rolls held back until the webhook's Service has settled endpoints (webhook-endpoints.ts), and why. */
  readonly waitingForWebhook?: { readonly actions: readonly Action[]; readonly why: string };
}

export interface NotReady {
  readonly reason: ConditionReason;
  readonly message: string;
}

/**
 * Can this MetricsPusher be injected at all? The image against IMAGE_ALLOW_LIST, then the rendered environment
 * through the pusher's own parse (checkSidecar): a spec the CRD lets through but the sidecar would exit 2 on (stored
 * under an older, laxer CRD, or a rule no schema can express) is InvalidSpec with the pusher's message. The webhook
 * skips such pods for the same reasons (mutate), so nothing is rolled for them either.
 */
export function readiness(
  pusher: MetricsPusher,
  rendered: RenderedSidecar,
  defaults: SidecarDefaults,
  settings: Pick<MutateSettings, "imageAllowList">,
): NotReady | undefined {
  const image = rendered.container.image ?? "";
  if (!isImageAllowed(image, settings.imageAllowList, defaults.image)) {
    return {
      reason: ConditionReason.ImageNotAllowed,
      message: `spec.image ${image} is not allowed by the operator's IMAGE_ALLOW_LIST (${settings.imageAllowList.join(", ") || "empty"}); pods are admitted without the sidecar. Use an allowed image or remove spec.image.`,
    };
  }
  const problem = checkSidecar(rendered.container, pusher.metadata.namespace ?? "");
  if (problem !== undefined) {
    return {
      reason: ConditionReason.InvalidSpec,
      message: `The pusher would refuse this configuration and exit at start: ${problem}. Pods are admitted without the sidecar until the spec is fixed.`,
    };
  }
  return undefined;
}

export interface StatusInput {
  readonly pusher: MetricsPusher;
  readonly hash: string;
  readonly plan: Plan;
  readonly outcome: Outcome;
  /** Set when the MetricsPusher cannot be injected at all (e.g. its image is not allowed). */
  readonly notReady?: NotReady;
  readonly rollout: { readonly maxPerInterval: number; readonly intervalMs: number };
  readonly now: number;
}

export function computeStatus(input: StatusInput): MetricsPusherStatus {
  const { pusher, plan, outcome, hash } = input;
  const name = pusher.metadata.name ?? "";
  const discovery = pusher.spec.scrape?.discovery ?? DiscoveryMode.None;
  // With discovery, each workload's pods carry a hash of their own, which covers their discovered targets too.
  const config =
    discovery === DiscoveryMode.None ? `config ${hash}` : `config ${hash} plus each pod's discovered targets`;
  const previous = pusher.status?.conditions ?? [];
  const stampedNow = new Set(outcome.applied.filter((a) => a.type === "stamp").map((a) => a.workload));
  const updated = plan.matched.filter((m) => m.state === WorkloadState.Updated || stampedNow.has(m.workload));
  const refs = (ws: readonly { workload: Workload }[]) => list(ws.map((m) => workloadRef(m.workload)));
  const skippedNote =
    plan.notInjected.length > 0
      ? ` Selected but not injected: ${plan.notInjected.map((n) => `${workloadRef(n.workload)} (${n.why})`).join("; ")}.`
      : "";

  let ready: Omit<V1Condition, "lastTransitionTime">;
  if (input.notReady) {
    ready = {
      type: ConditionType.Ready,
      status: "False",
      reason: input.notReady.reason,
      message: input.notReady.message,
    };
  } else if (plan.matched.length === 0) {
    ready = {
      type: ConditionType.Ready,
      status: "True",
      reason: ConditionReason.NoMatchingWorkloads,
      message: `No Deployment, StatefulSet or DaemonSet in namespace ${pusher.metadata.namespace} has pod template labels matching spec.selector; new pods with matching labels are still injected. Check the selector against the pod template labels (kubectl get deploy --show-labels shows the Deployment's own labels, not the template's).${skippedNote}`,
    };
  } else {
    ready = {
      type: ConditionType.Ready,
      status: "True",
      reason: ConditionReason.Valid,
      message: `Injecting ${config} into pods of ${refs(plan.matched)}.${skippedNote}`,
    };
  }

  const strategy = pusher.spec.rolloutStrategy ?? RolloutStrategy.Workload;
  const owned = plan.matched.filter((m) => m.state === WorkloadState.OwnedByAnotherController);
  // Workloads left as they are on purpose (drift repair off) carry a detail and do not wait for anything.
  const pending = plan.matched.filter(
    (m) => m.state === WorkloadState.NeedsRollout && m.detail === undefined && !stampedNow.has(m.workload),
  );
  const limited = outcome.rateLimited.filter((a) => a.type === "stamp");
  let upToDate: Omit<V1Condition, "lastTransitionTime">;
  if (pusher.metadata.deletionTimestamp) {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "False",
      reason: ConditionReason.Deleting,
      message: `MetricsPusher ${name} is being deleted; its workloads roll back without the sidecar.`,
    };
  } else if (input.notReady) {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "False",
      reason: input.notReady.reason,
      message: `No workload is rolled while the MetricsPusher is not Ready: ${input.notReady.message}`,
    };
  } else if (strategy === RolloutStrategy.None) {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "True",
      reason: ConditionReason.RolloutDisabled,
      message: `rolloutStrategy is None: running pods keep their config until they are recreated; ${updated.length} of ${plan.matched.length} matching workloads run ${config}.`,
    };
  } else if (outcome.failed.length > 0) {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "False",
      reason: ConditionReason.RollingOut,
      message: `${updated.length} of ${plan.matched.length} matching workloads updated; retrying: ${outcome.failed.map((f) => `${workloadRef(f.action.workload)}: ${f.error}`).join("; ")}.`,
    };
  } else if ((outcome.waitingForWebhook?.actions.length ?? 0) > 0) {
    const waiting = outcome.waitingForWebhook!;
    upToDate = {
      type: ConditionType.UpToDate,
      status: "False",
      reason: ConditionReason.WaitingForWebhook,
      message: `${updated.length} of ${plan.matched.length} matching workloads updated; ${waiting.actions.map((a) => workloadRef(a.workload)).join(", ")} roll once the webhook's Service has settled endpoints (${waiting.why}), so that their new pods get the sidecar.`,
    };
  } else if (limited.length > 0 || pending.length > 0) {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "False",
      reason: ConditionReason.RolloutRateLimited,
      message: `${updated.length} of ${plan.matched.length} matching workloads updated; ${refs(pending)} wait for the rollout rate limit (${input.rollout.maxPerInterval} per ${Math.round(input.rollout.intervalMs / 1000)}s, ROLLOUT_MAX_PER_INTERVAL/ROLLOUT_INTERVAL).`,
    };
  } else if (owned.length > 0) {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "False",
      reason: ConditionReason.OwnedByAnotherController,
      message: `${owned.map((m) => `${workloadRef(m.workload)} (${m.detail})`).join(", ")} not restarted: restarting would fight the owning controller. Its pods get ${config} when the owner recreates them.`,
    };
  } else {
    upToDate = {
      type: ConditionType.UpToDate,
      status: "True",
      reason: ConditionReason.AllUpdated,
      message:
        plan.matched.length === 0
          ? "No matching workloads to update."
          : `All ${plan.matched.length} matching workloads carry ${config}.`,
    };
  }

  return {
    ...(pusher.metadata.generation !== undefined ? { observedGeneration: pusher.metadata.generation } : {}),
    conditions: [withTransition(ready, previous, input.now), withTransition(upToDate, previous, input.now)],
    matchedWorkloads: plan.matched.length,
    updatedWorkloads: updated.length,
    configHash: hash,
  };
}

/** Keeps lastTransitionTime unless the condition's status changed (Kubernetes API conventions). */
function withTransition(
  c: Omit<V1Condition, "lastTransitionTime">,
  previous: readonly V1Condition[],
  now: number,
): V1Condition {
  const old = previous.find((p) => p.type === c.type);
  const at =
    old && old.status === c.status && old.lastTransitionTime
      ? old.lastTransitionTime
      : (new Date(Math.floor(now / 1000) * 1000).toISOString().replace(".000Z", "Z") as unknown as Date);
  return { ...c, lastTransitionTime: at };
}

/** Whether writing `next` would change what the object's status says (lastTransitionTime compared as instants). */
export function statusChanged(current: MetricsPusherStatus | undefined, next: MetricsPusherStatus): boolean {
  return canonical(current ?? {}) !== canonical(next);
}

function canonical(s: MetricsPusherStatus): string {
  const conditions = [...(s.conditions ?? [])]
    .map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: c.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : undefined,
      observedGeneration: c.observedGeneration,
    }))
    .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  return JSON.stringify([s.observedGeneration, s.matchedWorkloads, s.updatedWorkloads, s.configHash, conditions]);
}

function sortWorkloads(ws: readonly Workload[]): Workload[] {
  return [...ws].sort((a, b) => (a.kind + "/" + a.name < b.kind + "/" + b.name ? -1 : 1));
}

function list(items: string[]): string {
  if (items.length <= 5) return items.join(", ");
  return `${items.slice(0, 5).join(", ")} and ${items.length - 5} more`;
}
