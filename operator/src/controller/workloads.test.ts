import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1OwnerReference, V1Pod } from "@kubernetes/client-node";
import { owningWorkload, type Workload, WorkloadKind } from "./workloads.ts";

const cached: Workload[] = [
  {
    kind: WorkloadKind.Deployment,
    namespace: "builds",
    name: "builder",
    uid: "d1",
    selector: { matchLabels: { app: "builder" } },
    template: {},
    ownerReferences: [],
    deleting: false,
  },
  {
    kind: WorkloadKind.StatefulSet,
    namespace: "builds",
    name: "db",
    uid: "s1",
    selector: { matchLabels: { app: "db" } },
    template: {},
    ownerReferences: [],
    deleting: false,
  },
];
const find = (kind: WorkloadKind, name: string) => cached.find((w) => w.kind === kind && w.name === name);

function pod(owner: Partial<V1OwnerReference> | undefined, labels: Record<string, string>): V1Pod {
  return {
    metadata: {
      generateName: "x-",
      labels,
      ...(owner
        ? { ownerReferences: [{ apiVersion: "apps/v1", kind: "", name: "", uid: "", controller: true, ...owner }] }
        : {}),
    },
  };
}

// The owner reference of a review is the requester's word: only what the cache confirms is named in an Event.
const cases: Array<{ name: string; pod: V1Pod; want: string | undefined }> = [
  {
    name: "ReplicaSet of a cached Deployment",
    pod: pod({ kind: "ReplicaSet", name: "builder-7d9f" }, { app: "builder", "pod-template-hash": "7d9f" }),
    want: "Deployment/builder",
  },
  {
    name: "ReplicaSet whose name does not end in the pod's template hash",
    pod: pod({ kind: "ReplicaSet", name: "builder-7d9f" }, { app: "builder", "pod-template-hash": "zzzz" }),
    want: undefined,
  },
  {
    name: "ReplicaSet of a Deployment that does not exist",
    pod: pod({ kind: "ReplicaSet", name: "ghost-7d9f" }, { app: "builder", "pod-template-hash": "7d9f" }),
    want: undefined,
  },
  {
    name: "ReplicaSet of a Deployment whose selector does not match the pod",
    pod: pod({ kind: "ReplicaSet", name: "builder-7d9f" }, { app: "web", "pod-template-hash": "7d9f" }),
    want: undefined,
  },
  {
    name: "StatefulSet with its uid",
    pod: pod({ kind: "StatefulSet", name: "db", uid: "s1" }, {}),
    want: "StatefulSet/db",
  },
  {
    name: "StatefulSet with another uid",
    pod: pod({ kind: "StatefulSet", name: "db", uid: "forged" }, {}),
    want: undefined,
  },
  { name: "a Job (not cached)", pod: pod({ apiVersion: "batch/v1", kind: "Job", name: "j" }, {}), want: undefined },
  { name: "no owner", pod: pod(undefined, { app: "builder" }), want: undefined },
];

describe("owningWorkload", () => {
  for (const c of cases) {
    it(c.name, () => {
      const w = owningWorkload(c.pod, find);
      assert.equal(w ? `${w.kind}/${w.name}` : undefined, c.want);
    });
  }
});
