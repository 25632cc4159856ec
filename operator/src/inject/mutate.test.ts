import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fastJsonPatch from "fast-json-patch";
import type { V1Pod } from "@kubernetes/client-node";
import { Annotations, Labels, SIDECAR_CONTAINER_NAME, SkipReason } from "../api/index.ts";
import type { MetricsPusher } from "../api/index.ts";
import { mutate, selectorMatches } from "./mutate.ts";
import type { MutateInput } from "./mutate.ts";
import { renderSidecar } from "./sidecar.ts";
import { defaults, pod, pusher, settings } from "./testdata.test-fixtures.ts";

function input(over: Partial<MutateInput> = {}): MutateInput {
  return { pod: pod(), namespace: "builds", namespaceLabels: {}, pushers: [pusher("mp")], defaults, settings, ...over };
}

function apply(p: V1Pod, patch: fastJsonPatch.Operation[]): V1Pod {
  return fastJsonPatch.applyPatch(structuredClone(p), patch, true, false).newDocument;
}

const hash = renderSidecar(pusher("mp"), defaults).hash;

type Case = {
  name: string;
  in: MutateInput;
  skip?: SkipReason;
  pusher?: string;
  ops?: Array<{ op: string; path: string }>;
  warnings?: number;
};

const cases: Case[] = [
  { name: "kube-system namespace", in: input({ namespace: "kube-system" }), skip: SkipReason.SystemNamespace },
  {
    name: "the operator's own namespace",
    in: input({ namespace: "metrics-pusher-system" }),
    skip: SkipReason.SystemNamespace,
  },
  {
    name: "namespace labelled injection=disabled",
    in: input({ namespaceLabels: { "metricspusher.dev/injection": "disabled" } }),
    skip: SkipReason.NamespaceDisabled,
  },
  {
    name: "namespace not watched",
    in: input({ settings: { ...settings, watchNamespaces: ["other"] } }),
    skip: SkipReason.NamespaceNotWatched,
  },
  {
    name: "opt-out annotation",
    in: input({ pod: pod({ annotations: { [Annotations.inject]: "false" } }) }),
    skip: SkipReason.OptedOut,
  },
  {
    name: "opt-out annotation, any case",
    in: input({ pod: pod({ annotations: { [Annotations.inject]: " False" } }) }),
    skip: SkipReason.OptedOut,
  },
  {
    name: "no matching MetricsPusher",
    in: input({ pod: pod({ labels: { app: "web" } }) }),
    skip: SkipReason.NoMatchingPusher,
  },
  {
    name: "pod without labels",
    in: input({ pod: { metadata: {}, spec: { containers: [{ name: "c" }] } } }),
    skip: SkipReason.NoMatchingPusher,
  },
  {
    name: "MetricsPusher in another namespace never applies",
    in: input({ pushers: [pusher("mp", {}, { namespace: "other" })] }),
    skip: SkipReason.NoMatchingPusher,
  },
  {
    name: "MetricsPusher being deleted",
    in: input({ pushers: [pusher("mp", {}, { deletionTimestamp: new Date() })] }),
    skip: SkipReason.NoMatchingPusher,
  },
  {
    name: "explicit pick of a missing MetricsPusher",
    in: input({ pod: pod({ annotations: { [Annotations.inject]: "nope" } }) }),
    skip: SkipReason.ExplicitPusherNotFound,
  },
  {
    name: "explicit pick across namespaces is refused",
    in: input({
      pod: pod({ annotations: { [Annotations.inject]: "mp" } }),
      pushers: [pusher("mp", {}, { namespace: "other" })],
    }),
    skip: SkipReason.ExplicitPusherNotFound,
  },
  {
    name: "image outside the allow-list",
    in: input({ pushers: [pusher("mp", { image: "docker.io/evil/pusher:1" })] }),
    skip: SkipReason.ImageNotAllowed,
    pusher: "mp",
  },
  {
    name: "Job pod with a regular container would never complete",
    in: input({ pod: pod({ restartPolicy: "Never" }), defaults: { ...defaults, nativeSidecarsSupported: false } }),
    skip: SkipReason.WouldBlockCompletion,
    pusher: "mp",
  },
  {
    name: "hostNetwork pod",
    in: input({ pod: { ...pod(), spec: { hostNetwork: true, containers: [{ name: "c" }] } } }),
    skip: SkipReason.HostNetwork,
    pusher: "mp",
  },
  {
    name: "hostNetwork pod, allow annotation not exactly true",
    in: input({
      pod: {
        ...pod({ annotations: { [Annotations.allowHostNetwork]: "yes" } }),
        spec: { hostNetwork: true, containers: [{ name: "c" }] },
      },
    }),
    skip: SkipReason.HostNetwork,
    pusher: "mp",
  },
  {
    name: "hostNetwork pod that opts in",
    in: input({
      pod: {
        ...pod({ annotations: { [Annotations.allowHostNetwork]: "true" } }),
        spec: { hostNetwork: true, containers: [{ name: "c" }] },
      },
    }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations/metricspusher.dev~1injected" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "hostNetwork: false is an ordinary pod",
    in: input({ pod: { ...pod(), spec: { hostNetwork: false, containers: [{ name: "c" }] } } }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "container name taken by someone else",
    in: input({ pod: { ...pod(), spec: { containers: [{ name: SIDECAR_CONTAINER_NAME, image: "x" }] } } }),
    skip: SkipReason.ContainerNameTaken,
  },
  {
    name: "native sidecar (default on >= 1.29)",
    in: input(),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "regular container (sidecarMode Container)",
    in: input({ pushers: [pusher("mp", { sidecarMode: "Container" })], pod: pod({ annotations: { keep: "me" } }) }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/containers/1" },
      { op: "add", path: "/metadata/annotations/metricspusher.dev~1injected" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "Job pod with a native sidecar",
    in: input({ pod: pod({ restartPolicy: "Never" }) }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "pod from generateName, no name and no namespace yet (ReplicaSet)",
    in: input({ pod: pod({ generateName: true }) }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "explicit pick wins over selectors",
    in: input({
      pod: pod({ labels: { app: "other" }, annotations: { [Annotations.inject]: "special" } }),
      pushers: [pusher("mp"), pusher("special", { selector: { matchLabels: { nothing: "x" } } })],
    }),
    pusher: "special",
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations/metricspusher.dev~1injected" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "several match: the oldest wins, with a warning",
    in: input({
      pushers: [
        pusher("zeta", {}, { creationTimestamp: new Date("2026-01-01T00:00:00Z") }),
        pusher("young", {}, { creationTimestamp: new Date("2026-02-01T00:00:00Z") }),
        pusher("alpha", {}, { creationTimestamp: new Date("2026-01-01T00:00:00Z") }),
      ],
    }),
    pusher: "alpha",
    warnings: 1,
    ops: [
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "Secrets add volumes",
    in: input({
      pushers: [
        pusher("mp", { remoteWrite: { url: "https://rw/api/v1/write", bearerTokenSecret: { name: "s", key: "t" } } }),
      ],
    }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/volumes" },
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
  {
    name: "a configuration the pusher refuses (buffer.maxSamples below its batch size)",
    in: input({ pushers: [pusher("mp", { buffer: { maxSamples: 1000 } })] }),
    skip: SkipReason.InvalidSpec,
    pusher: "mp",
  },
  {
    name: "a scrape path holding a comma and a second URL",
    in: input({
      pushers: [
        pusher("mp", { scrape: { targets: [{ port: 8080, path: "/metrics,http://10.96.0.1:9100/metrics" }] } }),
      ],
    }),
    skip: SkipReason.InvalidSpec,
    pusher: "mp",
  },
  {
    name: "an integer disk sizeLimit (int-or-string) is injected",
    in: input({ pushers: [pusher("mp", { buffer: { disk: { sizeLimit: 268435456 } } })] }),
    pusher: "mp",
    ops: [
      { op: "add", path: "/spec/volumes" },
      { op: "add", path: "/spec/initContainers" },
      { op: "add", path: "/metadata/annotations" },
      { op: "add", path: "/metadata/labels/metricspusher.dev~1pusher" },
    ],
  },
];

describe("mutate", () => {
  for (const c of cases) {
    it(c.name, () => {
      const r = mutate(c.in);
      if (c.skip) {
        assert.equal(r.kind, "skip", JSON.stringify(r));
        assert.equal(r.reason, c.skip);
        assert.ok(r.message.length > 10, "a message a person can act on");
        assert.equal(r.pusher, c.pusher);
        return;
      }
      assert.equal(r.kind, "patch", JSON.stringify(r));
      assert.equal(r.pusher, c.pusher);
      assert.equal(r.warnings.length, c.warnings ?? 0);
      assert.deepEqual(
        r.patch.map((o) => ({ op: o.op, path: o.path })).sort((a, b) => a.path.localeCompare(b.path)),
        (c.ops ?? []).slice().sort((a, b) => a.path.localeCompare(b.path)),
      );
      const out = apply(c.in.pod, r.patch);
      const sidecars = [...(out.spec?.initContainers ?? []), ...(out.spec?.containers ?? [])].filter(
        (x) => x.name === SIDECAR_CONTAINER_NAME,
      );
      assert.equal(sidecars.length, 1);
      assert.equal(out.metadata?.annotations?.[Annotations.injected], `${r.pusher}@${r.hash}`);
      assert.equal(out.metadata?.labels?.[Labels.pusher], r.pusher, "labelled with the MetricsPusher's name");
      for (const [k, v] of Object.entries(c.in.pod.metadata?.annotations ?? {}))
        assert.equal(out.metadata?.annotations?.[k], v, "keeps existing annotations");
    });
  }

  it("labels the pod with the MetricsPusher's name, keeping its labels; also a pod without labels", () => {
    const labelled = apply(pod(), (mutate(input()) as { patch: fastJsonPatch.Operation[] }).patch);
    assert.deepEqual(labelled.metadata?.labels, { ...pod().metadata?.labels, [Labels.pusher]: "mp" });
    const bare = pod({ annotations: { [Annotations.inject]: "mp" } });
    delete bare.metadata!.labels;
    const r = mutate(input({ pod: bare }));
    assert.equal(r.kind, "patch");
    assert.deepEqual(apply(bare, r.patch).metadata?.labels, { [Labels.pusher]: "mp" });
  });

  it("a MetricsPusher name too long for a label value gets the annotation only, not an invalid label", () => {
    const long = `mp-${"x".repeat(61)}`; // 64 characters: a valid object name, not a valid label value
    const p = pod({ annotations: { [Annotations.inject]: long } });
    const r = mutate(input({ pushers: [pusher(long)], pod: p }));
    assert.equal(r.kind, "patch");
    const out = apply(p, r.patch);
    assert.equal(out.metadata?.labels?.[Labels.pusher], undefined);
    assert.equal(out.metadata?.annotations?.[Annotations.injected], `${long}@${r.hash}`);
    const at63 = "m".repeat(63);
    const p63 = pod({ annotations: { [Annotations.inject]: at63 } });
    const r63 = mutate(input({ pushers: [pusher(at63)], pod: p63 }));
    assert.equal(r63.kind, "patch");
    assert.equal(apply(p63, r63.patch).metadata?.labels?.[Labels.pusher], at63);
  });

  it("is idempotent: a reinvocation on the patched pod changes nothing", () => {
    for (const p of [pusher("mp"), pusher("mp", { sidecarMode: "Container" })]) {
      const first = mutate(input({ pushers: [p] }));
      assert.equal(first.kind, "patch");
      const injected = apply(pod(), first.patch);
      const second = mutate(input({ pod: injected, pushers: [p] }));
      assert.equal(second.kind, "skip");
      assert.equal(second.reason, SkipReason.AlreadyInjected);
    }
  });

  it("writes <name>@<hash> with the shared hash", () => {
    const r = mutate(input());
    assert.equal(r.kind, "patch");
    assert.equal(r.hash, hash);
  });

  it("does not modify its input", () => {
    const i = input({ pod: pod({ annotations: { a: "b" } }) });
    const before = structuredClone(i.pod);
    mutate(i);
    assert.deepEqual(i.pod, before);
  });

  it("chooses the same MetricsPusher whatever the informer's order", () => {
    const ps: MetricsPusher[] = ["c", "a", "b"].map((n) => pusher(n));
    const picks = new Set(
      [ps, [...ps].reverse(), [ps[1]!, ps[2]!, ps[0]!]].map((l) => {
        const r = mutate(input({ pushers: l }));
        return r.kind === "patch" ? r.pusher : "skip";
      }),
    );
    assert.deepEqual([...picks], ["a"]);
  });

  it("renames its volumes when the pod already uses their names, keeping mounts and hash consistent", () => {
    const mp = pusher("mp", {
      remoteWrite: { url: "http://rw:9090/api/v1/write", bearerTokenSecret: { name: "tok", key: "token" } },
    });
    const rendered = renderSidecar(mp, defaults);
    const ours = rendered.volumes.map((v) => v.name);
    assert.ok(ours.length > 0, "the MetricsPusher renders a Secret volume");
    const p = pod();
    p.spec!.volumes = [...ours, `${ours[0]}-2`].map((name) => ({ name, emptyDir: {} }));
    const r = mutate(input({ pod: p, pushers: [mp] }));
    assert.equal(r.kind, "patch");
    if (r.kind !== "patch") return;
    assert.equal(r.hash, rendered.hash);
    const out = apply(p, r.patch);
    const names = (out.spec?.volumes ?? []).map((v) => v.name);
    assert.equal(new Set(names).size, names.length, `duplicate volume names: ${names.join(", ")}`);
    const sidecar = [...(out.spec?.initContainers ?? []), ...(out.spec?.containers ?? [])].find(
      (c) => c.name === SIDECAR_CONTAINER_NAME,
    )!;
    const added = names.slice(p.spec!.volumes.length);
    assert.deepEqual(added, [`${ours[0]}-3`, ...ours.slice(1).map((n) => `${n}-2`)]);
    assert.deepEqual((sidecar.volumeMounts ?? []).map((m) => m.name).sort(), [...added].sort());
    assert.deepEqual(
      (sidecar.volumeMounts ?? []).map((m) => m.mountPath),
      (rendered.container.volumeMounts ?? []).map((m) => m.mountPath),
      "mount paths (and so the env pointing at them) are unchanged",
    );
  });

  it("InvalidSpec carries the pusher's own message", () => {
    const r = mutate(input({ pushers: [pusher("mp", { buffer: { maxSamples: 1000 } })] }));
    assert.equal(r.kind, "skip");
    assert.match(
      r.message,
      /MetricsPusher mp .*BUFFER_MAX_SAMPLES="1000": must be at least MAX_SAMPLES_PER_SEND \(2000\)/,
    );
  });

  it("renders scrape targets as one JSON array on 127.0.0.1 only", () => {
    const r = mutate(
      input({ pushers: [pusher("mp", { scrape: { targets: [{ port: 8080 }, { port: 9100, path: "/m" }] } })] }),
    );
    assert.equal(r.kind, "patch");
    const out = apply(pod(), r.kind === "patch" ? r.patch : []);
    const c = out.spec?.initContainers?.find((x) => x.name === SIDECAR_CONTAINER_NAME);
    const targets = JSON.parse(c?.env?.find((e) => e.name === "SCRAPE_TARGETS")?.value ?? "null") as string[];
    assert.deepEqual(targets, ["http://127.0.0.1:8080/metrics", "http://127.0.0.1:9100/m"]);
  });

  describe("spec.scrape.discovery", () => {
    const targetsOf = (p: V1Pod, r: ReturnType<typeof mutate>): string[] => {
      const out = apply(p, r.kind === "patch" ? r.patch : []);
      const c = out.spec?.initContainers?.find((x) => x.name === SIDECAR_CONTAINER_NAME);
      return JSON.parse(c?.env?.find((e) => e.name === "SCRAPE_TARGETS")?.value ?? "[]") as string[];
    };
    const annotated = (annotations: Record<string, string>): V1Pod => {
      const p = pod({ annotations });
      p.spec!.containers[0]!.ports = [
        { name: "http", containerPort: 8080 },
        { name: "metrics", containerPort: 9090 },
      ];
      return p;
    };
    const auto = (targets?: Array<{ port: number; path?: string }>) =>
      pusher("mp", { scrape: { discovery: "Auto", ...(targets ? { targets } : {}) } });

    it("resolves the pod's annotations and named ports into the sidecar's targets", () => {
      const p = annotated({ "prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/m" });
      const r = mutate(input({ pod: p, pushers: [auto()] }));
      assert.equal(r.kind, "patch");
      assert.deepEqual(targetsOf(p, r), ["http://127.0.0.1:8080/m", "http://127.0.0.1:9090/metrics"]);
    });

    it("listed targets first; on a port both name, the listed path wins", () => {
      const p = annotated({ "prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/m" });
      const r = mutate(input({ pod: p, pushers: [auto([{ port: 8080, path: "/listed" }, { port: 7000 }])] }));
      assert.deepEqual(targetsOf(p, r), [
        "http://127.0.0.1:8080/listed",
        "http://127.0.0.1:7000/metrics",
        "http://127.0.0.1:9090/metrics",
      ]);
    });

    it("pods declaring the same targets get the same hash; other targets, another one", () => {
      const a = mutate(input({ pod: annotated({ "prometheus.io/scrape": "true" }), pushers: [auto()] }));
      const b = mutate(input({ pod: annotated({ "prometheus.io/scrape": "true", other: "x" }), pushers: [auto()] }));
      const off = annotated({ "prometheus.io/scrape": "false" });
      const c = mutate(input({ pod: off, pushers: [auto()] }));
      assert.ok(a.kind === "patch" && b.kind === "patch" && c.kind === "patch");
      assert.equal(a.hash, b.hash);
      assert.notEqual(a.hash, c.hash);
      assert.deepEqual(targetsOf(off, c), [], "scrape false: the sidecar pushes its own metrics only");
    });

    it("None keeps today's sidecar and hash, whatever the pod declares", () => {
      const p = annotated({ "prometheus.io/scrape": "true", "prometheus.io/port": "1234" });
      const listed = { targets: [{ port: 8080 }] };
      const none = mutate(input({ pod: p, pushers: [pusher("mp", { scrape: { ...listed, discovery: "None" } })] }));
      const unset = mutate(input({ pod: p, pushers: [pusher("mp", { scrape: listed })] }));
      assert.ok(none.kind === "patch" && unset.kind === "patch");
      assert.equal(none.hash, unset.hash);
      assert.deepEqual(targetsOf(p, none), ["http://127.0.0.1:8080/metrics"]);
    });

    it("an unusable annotation skips the pod with InvalidDiscovery and names it, never a sidecar that exits", () => {
      const r = mutate(
        input({ pod: annotated({ "prometheus.io/scrape": "true", "prometheus.io/port": "70000" }), pushers: [auto()] }),
      );
      assert.equal(r.kind, "skip");
      assert.equal(r.reason, SkipReason.InvalidDiscovery);
      assert.equal(r.kind === "skip" && r.pusher, "mp");
      assert.match(
        r.message,
        /MetricsPusher mp .*Auto.*annotation prometheus.io\/port "70000" holds 70000, outside 1-65535/,
      );
    });

    it("more than 16 targets listed and discovered together: InvalidDiscovery", () => {
      const listed = Array.from({ length: 16 }, (_, i) => ({ port: 7000 + i }));
      const r = mutate(input({ pod: annotated({}), pushers: [auto(listed)] }));
      assert.equal(r.kind === "skip" && r.reason, SkipReason.InvalidDiscovery);
      assert.match(r.kind === "skip" ? r.message : "", /17 scrape targets/);
    });
  });

  it("accepts creationTimestamp as a string (watch events carry plain JSON)", () => {
    const older = pusher("z", {}, { creationTimestamp: "2025-01-01T00:00:00Z" as unknown as Date });
    const r = mutate(input({ pushers: [pusher("a"), older] }));
    assert.equal(r.kind === "patch" && r.pusher, "z");
  });
});

describe("selectorMatches", () => {
  const labels = { app: "builder", tier: "ci" };
  const cases = [
    { sel: { matchLabels: { app: "builder" } }, ok: true },
    { sel: { matchLabels: { app: "web" } }, ok: false },
    { sel: {}, ok: true },
    { sel: undefined, ok: false },
    { sel: { matchExpressions: [{ key: "tier", operator: "In", values: ["ci", "cd"] }] }, ok: true },
    { sel: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["ci"] }] }, ok: false },
    { sel: { matchExpressions: [{ key: "gpu", operator: "DoesNotExist" }] }, ok: true },
    { sel: { matchExpressions: [{ key: "gpu", operator: "Exists" }] }, ok: false },
    { sel: { matchExpressions: [{ key: "app", operator: "Bogus" }] }, ok: false },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c.sel)} → ${c.ok}`, () => assert.equal(selectorMatches(c.sel, labels), c.ok));
  }
});
