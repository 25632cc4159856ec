import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1OwnerReference, V1Pod } from "@kubernetes/client-node";
import { Annotations, ConditionReason, RolloutStrategy, SkipReason } from "../api/index.ts";
import type { MetricsPusher, MetricsPusherSpec } from "../api/index.ts";
import { defaults, pusher as makePusher, settings } from "../inject/testdata.test-fixtures.ts";
import { renderSidecar } from "../inject/sidecar.ts";
import {
  excludedNamespace,
  computeStatus,
  type Decision,
  decideFor,
  type Outcome,
  planDeletion,
  planPusher,
  podHashFor,
  readiness,
  REMOVED_STAMP,
  StampReason,
  statusChanged,
  WorkloadState,
} from "./plan.ts";
import { type Workload, WorkloadKind } from "./workloads.ts";

const NOW = Date.parse("2026-11-27T04:00:00Z");
const HASH = "aaaaaaaaaaaaaaaa";
const OLD = "bbbbbbbbbbbbbbbb";

function pusher(spec: Partial<MetricsPusherSpec> = {}, meta: Partial<MetricsPusher["metadata"]> = {}): MetricsPusher {
  return makePusher("mp", spec, meta);
}

function workload(
  opts: {
    name?: string;
    kind?: Workload["kind"];
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    owner?: V1OwnerReference;
    deleting?: boolean;
  } = {},
): Workload {
  return {
    kind: opts.kind ?? WorkloadKind.Deployment,
    namespace: "builds",
    name: opts.name ?? "builder",
    uid: "uid-w",
    selector: { matchLabels: { app: "builder" } },
    template: {
      metadata: {
        labels: opts.labels ?? { app: "builder" },
        ...(opts.annotations ? { annotations: opts.annotations } : {}),
      },
      spec: { containers: [{ name: "main", image: "busybox" }] },
    },
    ownerReferences: opts.owner ? [opts.owner] : [],
    deleting: opts.deleting ?? false,
  };
}

function pod(annotations: Record<string, string> = {}): V1Pod {
  return { metadata: { name: `p-${Math.random()}`, labels: { app: "builder" }, annotations } };
}
const injected = (hash = HASH, name = "mp") => pod({ [Annotations.injected]: `${name}@${hash}` });
const injectedFromTemplate = (stamp: string, hash = HASH) =>
  pod({ [Annotations.injected]: `mp@${hash}`, [Annotations.configHash]: stamp });
const bare = (stamp?: string) => pod(stamp ? { [Annotations.configHash]: stamp } : {});

const injectMp: Decision = { kind: "inject", pusher: "mp", hash: HASH };
const knative: V1OwnerReference = {
  apiVersion: "serving.knative.dev/v1",
  kind: "Revision",
  name: "fn-00001",
  uid: "r",
  controller: true,
};

describe("planPusher", () => {
  const cases: {
    name: string;
    w: Workload;
    pods?: V1Pod[];
    decision?: Decision;
    spec?: Partial<MetricsPusherSpec>;
    driftRepair?: boolean;
    want: {
      state?: WorkloadState;
      actions: Array<{ type: string; reason?: string; hash?: string }>;
      notInjected?: boolean;
    };
  }[] = [
    {
      name: "new workload whose pods already run the current config: no restart",
      w: workload(),
      pods: [injected()],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "workload with no pods: nothing to roll",
      w: workload(),
      pods: [],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "unstamped workload whose pods lack the sidecar (made while the webhook was down): stamped as drift",
      w: workload(),
      pods: [bare(), injected()],
      want: {
        state: WorkloadState.NeedsRollout,
        actions: [{ type: "stamp", reason: StampReason.MissingSidecar, hash: HASH }],
      },
    },
    {
      name: "unstamped workload whose pods run an older config: stamped",
      w: workload(),
      pods: [injected(OLD)],
      want: {
        state: WorkloadState.NeedsRollout,
        actions: [{ type: "stamp", reason: StampReason.ConfigChanged, hash: HASH }],
      },
    },
    {
      name: "stamp of an older config: re-stamped (config or default image changed)",
      w: workload({ annotations: { [Annotations.configHash]: OLD } }),
      pods: [injectedFromTemplate(OLD, OLD)],
      want: {
        state: WorkloadState.NeedsRollout,
        actions: [{ type: "stamp", reason: StampReason.ConfigChanged, hash: HASH }],
      },
    },
    {
      name: "stamp of a removed sidecar: stamped again when a MetricsPusher matches",
      w: workload({ annotations: { [Annotations.configHash]: REMOVED_STAMP } }),
      pods: [bare(REMOVED_STAMP)],
      want: { state: WorkloadState.NeedsRollout, actions: [{ type: "stamp", reason: StampReason.ConfigChanged }] },
    },
    {
      name: "current stamp, pods fine",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [injectedFromTemplate(HASH)],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "current stamp but a pod of the current template lacks the sidecar: repaired",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [bare(HASH)],
      want: { state: WorkloadState.Updated, actions: [{ type: "repair" }] },
    },
    {
      name: "current stamp but a pod of the current template got another config (an older operator admitted it): repaired",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [injectedFromTemplate(HASH, OLD)],
      want: { state: WorkloadState.Updated, actions: [{ type: "repair" }] },
    },
    {
      name: "current stamp, a pod of the current template with another MetricsPusher's sidecar: not this one's to repair",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [pod({ [Annotations.injected]: `other@${OLD}`, [Annotations.configHash]: HASH })],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "drift repaired 5 minutes ago: not again (bounded)",
      w: workload({
        annotations: {
          [Annotations.configHash]: HASH,
          [Annotations.driftRepairedAt]: new Date(NOW - 5 * 60_000).toISOString(),
        },
      }),
      pods: [bare(HASH)],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "drift repaired an hour ago: once more",
      w: workload({
        annotations: {
          [Annotations.configHash]: HASH,
          [Annotations.driftRepairedAt]: new Date(NOW - 3600_000).toISOString(),
        },
      }),
      pods: [bare(HASH)],
      want: { state: WorkloadState.Updated, actions: [{ type: "repair" }] },
    },
    {
      name: "bare pod of the previous template during a rollout: not drift",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [bare(OLD), injectedFromTemplate(HASH)],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "pod opted out by annotation is not drift",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [pod({ [Annotations.configHash]: HASH, [Annotations.inject]: "false" })],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "owned by another controller (Knative Revision): never stamped",
      w: workload({ owner: knative }),
      pods: [injected(OLD)],
      want: { state: WorkloadState.OwnedByAnotherController, actions: [] },
    },
    {
      name: "owned by another controller but already current: counted as updated",
      w: workload({ owner: knative }),
      pods: [injected()],
      want: { state: WorkloadState.Updated, actions: [] },
    },
    {
      name: "rolloutStrategy None: never stamped",
      w: workload(),
      pods: [injected(OLD)],
      spec: { rolloutStrategy: RolloutStrategy.None },
      want: { state: WorkloadState.RolloutDisabled, actions: [] },
    },
    {
      name: "template labels not selected: not matched",
      w: workload({ labels: { app: "web" } }),
      pods: [],
      want: { actions: [] },
    },
    {
      name: "no longer selected (selector changed) while every pod carries its sidecar: rolled without it",
      w: workload({ labels: { app: "web" } }),
      pods: [injected()],
      decision: { kind: "skip", reason: SkipReason.NoMatchingPusher, message: "none" },
      want: { actions: [{ type: "unstamp" }] },
    },
    {
      name: "no longer selected, but the user's own rollout already made pods without it: left alone",
      w: workload({ labels: { app: "web" } }),
      pods: [injected(), bare()],
      decision: { kind: "skip", reason: SkipReason.NoMatchingPusher, message: "none" },
      want: { actions: [] },
    },
    {
      name: "no longer selected, another MetricsPusher takes over: left to it",
      w: workload({ labels: { app: "web" } }),
      pods: [injected()],
      decision: { kind: "inject", pusher: "web", hash: OLD },
      want: { actions: [] },
    },
    {
      name: "the webhook would choose another MetricsPusher: reported, not stamped",
      w: workload(),
      pods: [injected(OLD, "older")],
      decision: { kind: "inject", pusher: "older", hash: OLD },
      want: { actions: [], notInjected: true },
    },
    {
      name: "the webhook would skip (template opted out): reported, not stamped",
      w: workload(),
      pods: [bare()],
      decision: {
        kind: "skip",
        reason: SkipReason.OptedOut,
        message: "pod is annotated metricspusher.dev/inject=false",
      },
      want: { actions: [], notInjected: true },
    },
    {
      name: "drift repair disabled: bare pods left alone",
      w: workload(),
      pods: [bare()],
      driftRepair: false,
      want: { state: WorkloadState.NeedsRollout, actions: [] },
    },
    { name: "workload being deleted: ignored", w: workload({ deleting: true }), pods: [bare()], want: { actions: [] } },
    {
      name: "StatefulSet is rolled like a Deployment",
      w: workload({ kind: WorkloadKind.StatefulSet, annotations: { [Annotations.configHash]: OLD } }),
      pods: [],
      want: { state: WorkloadState.NeedsRollout, actions: [{ type: "stamp", hash: HASH }] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planPusher({
        pusher: pusher(c.spec),
        workloads: [c.w],
        podsOf: () => c.pods ?? [],
        decide: () => c.decision ?? injectMp,
        now: NOW,
        driftRepair: c.driftRepair ?? true,
        driftRepairBackoffMs: 10 * 60_000,
      });
      assert.deepEqual(
        plan.actions.map((a) => ({
          type: a.type,
          ...(c.want.actions.find((x) => x.type === a.type)?.reason
            ? { reason: (a as { reason?: string }).reason }
            : {}),
          ...(c.want.actions.find((x) => x.type === a.type)?.hash ? { hash: (a as { hash?: string }).hash } : {}),
        })),
        c.want.actions,
      );
      assert.equal(plan.matched[0]?.state, c.want.state);
      assert.equal(plan.notInjected.length > 0, c.want.notInjected ?? false);
    });
  }

  it("a drift stamp also records the repair time, so bare pods from it are not restarted again before the backoff", () => {
    const first = planPusher({
      pusher: pusher(),
      workloads: [workload()],
      podsOf: () => [bare()],
      decide: () => injectMp,
      now: NOW,
      driftRepair: true,
      driftRepairBackoffMs: 10 * 60_000,
    });
    const stamp = first.actions[0]!;
    assert.ok(stamp.type === "stamp" && stamp.repairedAt === new Date(NOW).toISOString());
    // The webhook is still unreachable: the pods of the stamped template come back bare.
    const after = workload({
      annotations: { [Annotations.configHash]: HASH, [Annotations.driftRepairedAt]: stamp.repairedAt },
    });
    const second = planPusher({
      pusher: pusher(),
      workloads: [after],
      podsOf: () => [bare(HASH)],
      decide: () => injectMp,
      now: NOW + 60_000,
      driftRepair: true,
      driftRepairBackoffMs: 10 * 60_000,
    });
    assert.deepEqual(second.actions, []);
  });

  it("says why in the action message", () => {
    const plan = planPusher({
      pusher: pusher(),
      workloads: [workload()],
      podsOf: () => [bare(), bare()],
      decide: () => injectMp,
      now: NOW,
      driftRepair: true,
      driftRepairBackoffMs: 1,
    });
    assert.match(plan.actions[0]!.message, /2 pod\(s\) of Deployment\/builder run without the metrics-pusher sidecar/);
  });
});

describe("planDeletion", () => {
  const gone: Decision = { kind: "skip", reason: SkipReason.NoMatchingPusher, message: "none" };
  const cases: {
    name: string;
    w: Workload;
    pods: V1Pod[];
    decision?: Decision;
    want: Array<{ type: string; mark: boolean }>;
  }[] = [
    {
      name: "stamped workload: stamp removed",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [injectedFromTemplate(HASH)],
      want: [{ type: "unstamp", mark: false }],
    },
    {
      name: "unstamped workload whose pods carry the sidecar: marked so it rolls",
      w: workload(),
      pods: [injected()],
      want: [{ type: "unstamp", mark: true }],
    },
    { name: "unstamped workload without the sidecar: untouched", w: workload(), pods: [bare()], want: [] },
    {
      name: "another MetricsPusher takes over: left to it",
      w: workload({ annotations: { [Annotations.configHash]: HASH } }),
      pods: [injected()],
      decision: { kind: "inject", pusher: "other", hash: OLD },
      want: [],
    },
    { name: "owned by another controller: untouched", w: workload({ owner: knative }), pods: [injected()], want: [] },
    {
      name: "already marked removed: untouched",
      w: workload({ annotations: { [Annotations.configHash]: REMOVED_STAMP } }),
      pods: [injected()],
      want: [],
    },
    {
      name: "only a drift-repair mark left: removed",
      w: workload({ annotations: { [Annotations.driftRepairedAt]: "2026-01-01T00:00:00Z" } }),
      pods: [],
      want: [{ type: "unstamp", mark: false }],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const actions = planDeletion({
        pusher: pusher({}, { deletionTimestamp: new Date(NOW) }),
        workloads: [c.w],
        podsOf: () => c.pods,
        decide: () => c.decision ?? gone,
      });
      assert.deepEqual(
        actions.map((a) => ({ type: a.type, mark: a.type === "unstamp" && a.mark })),
        c.want,
      );
    });
  }
});

describe("computeStatus", () => {
  const none: Outcome = { applied: [], rateLimited: [], failed: [] };
  const rollout = { maxPerInterval: 5, intervalMs: 60_000 };
  const planFor = (w: Workload, pods: V1Pod[], spec: Partial<MetricsPusherSpec> = {}) =>
    planPusher({
      pusher: pusher(spec),
      workloads: [w],
      podsOf: () => pods,
      decide: () => injectMp,
      now: NOW,
      driftRepair: true,
      driftRepairBackoffMs: 1,
    });
  const cond = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

  it("one matching Deployment, current: Ready/Valid, UpToDate/AllUpdated, counts and observedGeneration", () => {
    const s = computeStatus({
      pusher: pusher({}, { generation: 3 }),
      hash: HASH,
      plan: planFor(workload(), [injected()]),
      outcome: none,
      rollout,
      now: NOW,
    });
    assert.equal(s.observedGeneration, 3);
    assert.equal(s.matchedWorkloads, 1);
    assert.equal(s.updatedWorkloads, 1);
    assert.equal(s.configHash, HASH);
    assert.deepEqual([cond(s, "Ready")?.status, cond(s, "Ready")?.reason], ["True", ConditionReason.Valid]);
    assert.deepEqual([cond(s, "UpToDate")?.status, cond(s, "UpToDate")?.reason], ["True", ConditionReason.AllUpdated]);
    assert.match(cond(s, "Ready")!.message, /Deployment\/builder/);
  });

  const table: {
    name: string;
    w: Workload;
    pods: V1Pod[];
    spec?: Partial<MetricsPusherSpec>;
    outcome?: (p: ReturnType<typeof planFor>) => Outcome;
    meta?: Partial<MetricsPusher["metadata"]>;
    notReady?: boolean;
    want: [string, string, string, string];
    counts: [number, number];
  }[] = [
    {
      name: "no matching workload",
      w: workload({ labels: { app: "web" } }),
      pods: [],
      want: ["True", ConditionReason.NoMatchingWorkloads, "True", ConditionReason.AllUpdated],
      counts: [0, 0],
    },
    {
      name: "stamp applied now counts as updated",
      w: workload(),
      pods: [injected(OLD)],
      outcome: (p) => ({ applied: p.actions, rateLimited: [], failed: [] }),
      want: ["True", ConditionReason.Valid, "True", ConditionReason.AllUpdated],
      counts: [1, 1],
    },
    {
      name: "stamp deferred by the rate limit",
      w: workload(),
      pods: [injected(OLD)],
      outcome: (p) => ({ applied: [], rateLimited: p.actions, failed: [] }),
      want: ["True", ConditionReason.Valid, "False", ConditionReason.RolloutRateLimited],
      counts: [1, 0],
    },
    {
      name: "stamp held back until the webhook's Service has settled endpoints",
      w: workload(),
      pods: [injected(OLD)],
      outcome: (p) => ({
        applied: [],
        rateLimited: [],
        failed: [],
        waitingForWebhook: { actions: p.actions, why: "no ready endpoint yet" },
      }),
      want: ["True", ConditionReason.Valid, "False", ConditionReason.WaitingForWebhook],
      counts: [1, 0],
    },
    {
      name: "stamp failed",
      w: workload(),
      pods: [injected(OLD)],
      outcome: (p) => ({
        applied: [],
        rateLimited: [],
        failed: p.actions.map((action) => ({ action, error: "HTTP 403" })),
      }),
      want: ["True", ConditionReason.Valid, "False", ConditionReason.RollingOut],
      counts: [1, 0],
    },
    {
      name: "owned by another controller",
      w: workload({ owner: knative }),
      pods: [injected(OLD)],
      want: ["True", ConditionReason.Valid, "False", ConditionReason.OwnedByAnotherController],
      counts: [1, 0],
    },
    {
      name: "rolloutStrategy None",
      w: workload(),
      pods: [injected(OLD)],
      spec: { rolloutStrategy: RolloutStrategy.None },
      want: ["True", ConditionReason.Valid, "True", ConditionReason.RolloutDisabled],
      counts: [1, 0],
    },
    {
      name: "being deleted",
      w: workload(),
      pods: [injected()],
      meta: { deletionTimestamp: new Date(NOW) },
      want: ["True", ConditionReason.Valid, "False", ConditionReason.Deleting],
      counts: [1, 1],
    },
    {
      name: "image not allowed",
      w: workload(),
      pods: [],
      notReady: true,
      want: ["False", ConditionReason.ImageNotAllowed, "False", ConditionReason.ImageNotAllowed],
      counts: [1, 1],
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      const plan = planFor(c.w, c.pods, c.spec);
      const s = computeStatus({
        pusher: pusher(c.spec, c.meta),
        hash: HASH,
        plan,
        outcome: c.outcome?.(plan) ?? none,
        rollout,
        now: NOW,
        ...(c.notReady ? { notReady: { reason: ConditionReason.ImageNotAllowed, message: "not allowed" } } : {}),
      });
      assert.deepEqual(
        [cond(s, "Ready")?.status, cond(s, "Ready")?.reason, cond(s, "UpToDate")?.status, cond(s, "UpToDate")?.reason],
        c.want,
      );
      assert.deepEqual([s.matchedWorkloads, s.updatedWorkloads], c.counts);
      for (const k of s.conditions ?? [])
        assert.ok(k.message && k.message.length > 10, `${k.type} has a message a person can act on`);
    });
  }

  it("keeps lastTransitionTime while a condition's status is unchanged, moves it when the status flips", () => {
    const first = computeStatus({
      pusher: pusher(),
      hash: HASH,
      plan: planFor(workload(), [injected()]),
      outcome: none,
      rollout,
      now: NOW,
    });
    const withStatus = pusher({}, {});
    withStatus.status = first;
    const same = computeStatus({
      pusher: withStatus,
      hash: HASH,
      plan: planFor(workload(), [injected()]),
      outcome: none,
      rollout,
      now: NOW + 60_000,
    });
    assert.equal(statusChanged(first, same), false);
    const plan = planFor(workload(), [injected(OLD)]);
    const flipped = computeStatus({
      pusher: withStatus,
      hash: HASH,
      plan,
      outcome: { applied: [], rateLimited: plan.actions, failed: [] },
      rollout,
      now: NOW + 60_000,
    });
    assert.equal(statusChanged(first, flipped), true);
    const upToDate = (s: typeof first) => s.conditions!.find((c) => c.type === "UpToDate")!.lastTransitionTime;
    const ready = (s: typeof first) => s.conditions!.find((c) => c.type === "Ready")!.lastTransitionTime;
    assert.equal(ready(flipped), ready(first));
    assert.notEqual(upToDate(flipped), upToDate(first));
  });

  it("statusChanged treats a Date and its ISO string as the same instant (list vs watch objects)", () => {
    const s = computeStatus({
      pusher: pusher(),
      hash: HASH,
      plan: planFor(workload(), []),
      outcome: none,
      rollout,
      now: NOW,
    });
    const asDates = {
      ...s,
      conditions: s.conditions!.map((c) => ({
        ...c,
        lastTransitionTime: new Date(c.lastTransitionTime as unknown as string),
      })),
    };
    assert.equal(statusChanged(asDates, s), false);
    assert.equal(statusChanged(undefined, s), true);
    assert.equal(statusChanged({ ...s, matchedWorkloads: 2 }, s), true);
  });
});

describe("readiness: what the webhook will not inject, the status says (issue 11, item 3)", () => {
  const check = (spec: Partial<MetricsPusherSpec>) => {
    const p = pusher(spec);
    return readiness(p, renderSidecar(p, defaults), defaults, settings);
  };
  it("a valid MetricsPusher is ready", () => assert.equal(check({}), undefined));
  it("an image outside IMAGE_ALLOW_LIST: ImageNotAllowed", () =>
    assert.equal(check({ image: "docker.io/evil:1" })?.reason, ConditionReason.ImageNotAllowed));
  it("a spec the pusher's parse refuses: InvalidSpec with the pusher's message", () => {
    const r = check({ buffer: { maxSamples: 1000 } });
    assert.equal(r?.reason, ConditionReason.InvalidSpec);
    assert.match(r?.message ?? "", /BUFFER_MAX_SAMPLES="1000": must be at least MAX_SAMPLES_PER_SEND \(2000\)/);
  });
  it("credentials are file paths: the check never needs the Secret", () =>
    assert.equal(
      check({ remoteWrite: { url: "https://rw/w", bearerTokenSecret: { name: "missing", key: "t" } } }),
      undefined,
    ));
  it("computeStatus turns InvalidSpec into Ready=False and UpToDate=False, nothing rolled", () => {
    const notReady = check({ scrape: { targets: [{ port: 8080, path: "/a,http://10.0.0.1:1/m" }] } })!;
    const p = pusher({ scrape: { targets: [{ port: 8080, path: "/a,http://10.0.0.1:1/m" }] } });
    const hash = renderSidecar(p, defaults).hash;
    const plan = planPusher({
      pusher: p,
      workloads: [workload()],
      podsOf: () => [],
      decide: (w) => decideFor(w, "builds", [p], {}, defaults, settings),
      now: NOW,
      driftRepair: true,
      driftRepairBackoffMs: 1,
    });
    assert.deepEqual(plan.actions, [], "the webhook skips the template, so nothing is stamped");
    assert.match(plan.notInjected[0]?.why ?? "", /InvalidSpec|refuses/);
    const s = computeStatus({
      pusher: p,
      hash,
      plan,
      outcome: { applied: [], rateLimited: [], failed: [] },
      notReady,
      rollout: { maxPerInterval: 5, intervalMs: 60_000 },
      now: NOW,
    });
    const ready = s.conditions?.find((c) => c.type === "Ready");
    assert.deepEqual([ready?.status, ready?.reason], ["False", ConditionReason.InvalidSpec]);
    assert.match(ready?.message ?? "", /SCRAPE_TARGETS=.*without commas/);
    assert.equal(s.conditions?.find((c) => c.type === "UpToDate")?.status, "False");
  });
});

describe("decideFor (the webhook's own choice, on the pod template)", () => {
  const older = makePusher("older", {}, { creationTimestamp: new Date("2025-01-01T00:00:00Z") });
  const newer = makePusher("newer", {}, { creationTimestamp: new Date("2026-06-01T00:00:00Z") });
  const w = workload();
  it("several MetricsPushers select the template: the oldest wins, with the hash the webhook writes", () => {
    const d = decideFor(w, "builds", [newer, older], undefined, defaults, settings);
    assert.deepEqual(d, { kind: "inject", pusher: "older", hash: renderSidecar(older, defaults).hash });
  });
  it("a MetricsPusher being deleted is not chosen", () => {
    const deleting = makePusher(
      "older",
      {},
      { creationTimestamp: new Date("2025-01-01T00:00:00Z"), deletionTimestamp: new Date() },
    );
    assert.equal(
      (decideFor(w, "builds", [deleting, newer], undefined, defaults, settings) as { pusher: string }).pusher,
      "newer",
    );
  });
  it("an opted-out template is skipped", () => {
    const d = decideFor(
      workload({ annotations: { [Annotations.inject]: "false" } }),
      "builds",
      [older],
      undefined,
      defaults,
      settings,
    );
    assert.equal(d.kind, "skip");
  });
  it("a namespace labelled disabled is skipped", () => {
    const d = decideFor(w, "builds", [older], { "metricspusher.dev/injection": "disabled" }, defaults, settings);
    assert.equal(d.kind === "skip" && d.reason, SkipReason.NamespaceDisabled);
  });
});

describe("planPusher with spec.scrape.discovery: each workload's own config", () => {
  const mp = pusher({ scrape: { discovery: "Auto" } });
  const annotated = (port: string, stamp?: string): Workload => {
    const w = workload({
      annotations: {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": port,
        ...(stamp ? { [Annotations.configHash]: stamp } : {}),
      },
    });
    return w;
  };
  const decide = (p: MetricsPusher) => (w: Workload) => decideFor(w, "builds", [p], {}, defaults, settings);
  const hashOf = (p: MetricsPusher, w: Workload): string => {
    const d = decide(p)(w);
    assert.equal(d.kind, "inject");
    return (d as { hash: string }).hash;
  };
  /** A live pod made from `w`'s template, injected with `hash`. */
  const podOf = (w: Workload, hash: string): V1Pod => ({
    metadata: {
      name: `p-${Math.random()}`,
      labels: { app: "builder" },
      annotations: { ...w.template.metadata?.annotations, [Annotations.injected]: `mp@${hash}` },
    },
    spec: w.template.spec!,
  });
  const plan = (p: MetricsPusher, w: Workload, pods: V1Pod[]) =>
    planPusher({
      pusher: p,
      workloads: [w],
      podsOf: () => pods,
      decide: decide(p),
      podHash: podHashFor(p, defaults),
      now: NOW,
      driftRepair: true,
      driftRepairBackoffMs: 60_000,
    });

  it("templates declaring other targets get other hashes, and the stamp carries the workload's own", () => {
    const a = annotated("8080");
    const b = annotated("9090");
    assert.notEqual(hashOf(mp, a), hashOf(mp, b));
    const stamped = plan(mp, a, [podOf(a, OLD)]);
    assert.deepEqual(
      stamped.actions.map((x) => x.type === "stamp" && x.hash),
      [hashOf(mp, a)],
    );
  });

  it("a template whose declared targets changed is rolled by Kubernetes alone: no second roll of ours", () => {
    const before = annotated("8080");
    const oldHash = hashOf(mp, before);
    // The user changed the port: the template still carries the stamp of the old targets.
    const after = annotated("9090", oldHash);
    const newHash = hashOf(mp, after);
    const mid = plan(mp, after, [podOf(before, oldHash), podOf(after, newHash)]);
    assert.deepEqual(mid.actions, [], "mid-rollout: the old template's pods are being replaced already");
    assert.equal(mid.matched[0]?.state, WorkloadState.Updated);
    const done = plan(mp, after, [podOf(after, newHash)]);
    assert.deepEqual(done.actions, []);
  });

  it("a spec change still rolls a discovering workload", () => {
    const w = annotated("8080");
    const oldHash = hashOf(mp, w);
    const changed = pusher({ scrape: { discovery: "Auto" }, pushInterval: "10s" });
    const stamped = annotated("8080", oldHash);
    const r = plan(changed, stamped, [podOf(stamped, oldHash)]);
    assert.deepEqual(
      r.actions.map((x) => x.type === "stamp" && x.reason),
      [StampReason.ConfigChanged],
    );
  });

  it("a pod whose annotations another webhook rewrote is current with its own targets: no roll, no drift repair", () => {
    const w = annotated("8080");
    const stamped = annotated("8080", hashOf(mp, w));
    // As a service mesh's injector does: the pod's port annotation points at the mesh's merged metrics.
    const rewritten = (hash?: string): V1Pod => {
      const p = podOf(stamped, "");
      p.metadata!.annotations!["prometheus.io/port"] = "15020";
      p.metadata!.annotations![Annotations.injected] = `mp@${hash ?? podHashFor(mp, defaults)(p)}`;
      return p;
    };
    const current = plan(mp, stamped, [rewritten()]);
    assert.deepEqual(current.actions, []);
    assert.equal(current.matched[0]?.state, WorkloadState.Updated);
    // A spec change still rolls it: its own expected config changed too.
    const changed = pusher({ scrape: { discovery: "Auto" }, pushInterval: "10s" });
    assert.deepEqual(
      plan(changed, stamped, [rewritten()]).actions.map((x) => x.type),
      ["stamp"],
    );
  });

  it("an unusable annotation on the template: reported as not injected, never stamped", () => {
    const w = annotated("0");
    const r = plan(mp, w, [podOf(w, OLD)]);
    assert.deepEqual(r.actions, []);
    assert.match(r.notInjected[0]?.why ?? "", /prometheus.io\/port "0"/);
  });
});

describe("excludedNamespace: the controller never patches there", () => {
  const system = { systemNamespaces: ["kube-system", "kube-node-lease", "kube-public", "metrics-pusher-system"] };
  const cases: Array<{ name: string; ns: string; labels: Record<string, string> | undefined; excluded: boolean }> = [
    { name: "kube-system", ns: "kube-system", labels: {}, excluded: true },
    { name: "kube-public", ns: "kube-public", labels: {}, excluded: true },
    { name: "the operator's namespace", ns: "metrics-pusher-system", labels: {}, excluded: true },
    {
      name: "labelled injection=disabled",
      ns: "team-a",
      labels: { "metricspusher.dev/injection": "disabled" },
      excluded: true,
    },
    { name: "labelled otherwise", ns: "team-a", labels: { "metricspusher.dev/injection": "enabled" }, excluded: false },
    { name: "an ordinary namespace, labels unknown", ns: "team-a", labels: undefined, excluded: false },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(excludedNamespace(c.ns, c.labels, system) !== undefined, c.excluded));
  }
});
