import { describe, it } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { Registry } from "prom-client";
import type { CoreV1Event } from "@kubernetes/client-node";
import { EventReason, EventType } from "./api/index.ts";
import { createEventRecorder, pusherRef } from "./events.ts";
import type { EventSink } from "./events.ts";
import { createOperatorMetrics } from "./metrics.ts";
import { pod, pusher } from "./inject/testdata.test-fixtures.ts";

function fakeSink(opts: { failCreate?: boolean } = {}) {
  const created: CoreV1Event[] = [];
  const bumps: Array<{ name: string; count: number }> = [];
  const sink: EventSink = {
    async create(_ns, e) {
      if (opts.failCreate) throw new Error("apiserver down");
      created.push(e);
    },
    async bump(_ns, name, count) {
      bumps.push({ name, count });
    },
    async replicaSetOwner(_ns, name) {
      return name === "builder-7d9f"
        ? { apiVersion: "apps/v1", kind: "Deployment", name: "builder", uid: "d1", controller: true }
        : undefined;
    },
  };
  return { sink, created, bumps };
}

const log = pino({ level: "silent" });

describe("event recorder", () => {
  it("returns before any I/O and writes later", async () => {
    const f = fakeSink();
    const r = createEventRecorder({ sink: f.sink, log, instance: "op-0" });
    r.emit(pusherRef(pusher("mp")), EventType.Normal, EventReason.Injected, "Injected into pod x");
    assert.equal(f.created.length, 0);
    await r.flush();
    assert.equal(f.created.length, 1);
    const e = f.created[0]!;
    assert.deepEqual(e.involvedObject, {
      apiVersion: "metricspusher.dev/v1alpha1",
      kind: "MetricsPusher",
      namespace: "builds",
      name: "mp",
      uid: "uid-mp",
    });
    assert.equal(e.metadata.namespace, "builds");
    assert.equal(e.reportingInstance, "op-0");
    assert.equal(e.source?.component, "metrics-pusher-operator");
    assert.equal(e.reportingComponent, e.source?.component, "one component name");
  });

  it("aggregates repeats into count, bumping at most every 10 s", async () => {
    const f = fakeSink();
    let now = Date.parse("2026-01-01T00:00:00Z");
    const r = createEventRecorder({ sink: f.sink, log, instance: "op-0", now: () => new Date(now) });
    const emit = () => r.emit(pusherRef(pusher("mp")), EventType.Warning, EventReason.MultipleMatches, "same");
    emit(); // created
    emit(); // bumped to 2
    emit(); // within 10 s: counted, not sent
    emit();
    await r.flush();
    now += 11_000;
    emit(); // carries the 5th
    await r.flush();
    now += 11 * 60_000;
    emit(); // a new Event after the dedup window
    await r.flush();
    assert.equal(f.created.length, 2);
    assert.deepEqual(
      f.bumps.map((b) => b.count),
      [2, 5],
    );
    assert.equal(f.bumps[0]!.name, f.created[0]!.metadata.name);
  });

  const owners = [
    {
      name: "ReplicaSet → its Deployment",
      owner: { apiVersion: "apps/v1", kind: "ReplicaSet", name: "builder-7d9f", uid: "r", controller: true },
      kind: "Deployment",
      target: "builder",
    },
    {
      name: "ReplicaSet without a Deployment",
      owner: { apiVersion: "apps/v1", kind: "ReplicaSet", name: "lonely", uid: "r", controller: true },
      kind: "ReplicaSet",
      target: "lonely",
    },
    {
      name: "Job",
      owner: { apiVersion: "batch/v1", kind: "Job", name: "build-1", uid: "j", controller: true },
      kind: "Job",
      target: "build-1",
    },
  ];
  for (const c of owners) {
    it(`pod events go to the owning workload: ${c.name}`, async () => {
      const f = fakeSink();
      const r = createEventRecorder({ sink: f.sink, log, instance: "op-0" });
      const p = pod({ generateName: true });
      p.metadata!.ownerReferences = [c.owner];
      r.emitForPod(p, "builds", EventType.Normal, EventReason.Injected, "x");
      await r.flush();
      assert.equal(f.created[0]?.involvedObject.kind, c.kind);
      assert.equal(f.created[0]?.involvedObject.name, c.target);
    });
  }

  it("a bare pod without a name gets no event; one with a name does", async () => {
    const f = fakeSink();
    const r = createEventRecorder({ sink: f.sink, log, instance: "op-0" });
    r.emitForPod(pod({ generateName: true }), "builds", EventType.Normal, EventReason.Injected, "x");
    r.emitForPod(pod(), "builds", EventType.Normal, EventReason.Injected, "x");
    await r.flush();
    assert.deepEqual(
      f.created.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}`),
      ["Pod/builder"],
    );
  });

  it("counts failures and never throws", async () => {
    const f = fakeSink({ failCreate: true });
    const registry = new Registry();
    const metrics = createOperatorMetrics(registry);
    const r = createEventRecorder({ sink: f.sink, log, metrics, instance: "op-0" });
    r.emit(pusherRef(pusher("mp")), EventType.Normal, EventReason.Injected, "x");
    await r.flush();
    assert.equal((await metrics.eventsFailed.get()).values[0]?.value, 1);
  });
});
