// PURE: pod + its namespace + the MetricsPushers → a JSON patch, or a skip reason. No I/O, no clock: tested without
// a server (server.ts decodes the AdmissionReview and answers).
import fastJsonPatch from "fast-json-patch";
import type { Operation } from "fast-json-patch";
import type { V1Pod } from "@kubernetes/client-node";
import {
  Annotations,
  MAX_SCRAPE_TARGETS,
  InjectionLabelValues,
  InjectValues,
  Labels,
  SIDECAR_CONTAINER_NAME,
  SkipReason,
  formatInjected,
  parseInjected,
} from "../api/index.ts";
import type { MetricsPusher } from "../api/index.ts";
import { discover } from "./discovery.ts";
import { checkSidecar, isImageAllowed, renderSidecar } from "./sidecar.ts";
import type { RenderedSidecar, SidecarDefaults } from "./sidecar.ts";

const MAX_LABEL_VALUE_LENGTH = 63;

export interface MutateSettings {
  readonly systemNamespaces: readonly string[];
  /** Empty = every namespace. */
  readonly watchNamespaces: readonly string[];
  readonly imageAllowList: readonly string[];
}

export interface MutateInput {
  readonly pod: V1Pod;
  /** The request's namespace: a pod made from generateName may not carry metadata.namespace yet. */
  readonly namespace: string;
  /** Labels of that namespace, when known. */
  readonly namespaceLabels: Readonly<Record<string, string>> | undefined;
  /** MetricsPushers from the informer; mutate keeps only those of `namespace`. */
  readonly pushers: readonly MetricsPusher[];
  readonly defaults: SidecarDefaults;
  readonly settings: MutateSettings;
}

export type MutateResult =
  | {
      readonly kind: "patch";
      readonly patch: Operation[];
      readonly pusher: string;
      readonly hash: string;
      readonly native: boolean;
      /** Every MetricsPusher whose selector matched, in the order of the deterministic choice. */
      readonly matched: readonly string[];
      readonly warnings: readonly string[];
    }
  | {
      readonly kind: "skip";
      readonly reason: SkipReason;
      readonly message: string;
      /** The MetricsPusher concerned, when there is one (for its Event). */
      readonly pusher?: string;
      readonly warnings: readonly string[];
    };

type Choice =
  | { pusher: MetricsPusher; matched: string[]; warnings: string[] }
  | { skip: SkipReason; message: string; pusher?: string };

export function mutate(input: MutateInput): MutateResult {
  const gate = shouldInject(input);
  if (gate) return { kind: "skip", ...gate, warnings: [] };

  const choice = choosePusher(input);
  if ("skip" in choice) {
    return {
      kind: "skip",
      reason: choice.skip,
      message: choice.message,
      ...(choice.pusher ? { pusher: choice.pusher } : {}),
      warnings: [],
    };
  }
  const { pusher, matched, warnings } = choice;
  const name = pusher.metadata.name ?? "";
  // On the host's network 127.0.0.1 is the node's: the targets scraped would be the node's ports, not the pod's.
  if (
    input.pod.spec?.hostNetwork === true &&
    input.pod.metadata?.annotations?.[Annotations.allowHostNetwork] !== "true"
  ) {
    return {
      kind: "skip",
      reason: SkipReason.HostNetwork,
      message: `pod uses hostNetwork, where 127.0.0.1 is the node's own; annotate it ${Annotations.allowHostNetwork}: "true" to inject MetricsPusher ${name} anyway`,
      pusher: name,
      warnings,
    };
  }

  // Targets the pod declares itself (spec.scrape.discovery): unusable ones skip the pod with the reason, never a
  // sidecar that exits at start.
  const rendered = renderForPod(pusher, input.defaults, input.pod);
  if ("invalid" in rendered) {
    return {
      kind: "skip",
      reason: SkipReason.InvalidDiscovery,
      message: `MetricsPusher ${name} ${rendered.invalid}`,
      pusher: name,
      warnings,
    };
  }
  const sidecar = rendered.sidecar;
  const image = sidecar.container.image ?? "";
  if (!isImageAllowed(image, input.settings.imageAllowList, input.defaults.image)) {
    return {
      kind: "skip",
      reason: SkipReason.ImageNotAllowed,
      message: `MetricsPusher ${name} asks for image ${image}, which the operator's IMAGE_ALLOW_LIST does not allow`,
      pusher: name,
      warnings,
    };
  }
  // A sidecar that would exit 2 at start is worse than none: the pod would run with a crash-looping container.
  const invalid = checkSidecar(sidecar.container, input.namespace);
  if (invalid !== undefined) {
    return {
      kind: "skip",
      reason: SkipReason.InvalidSpec,
      message: `MetricsPusher ${name} renders a configuration the pusher refuses: ${invalid}`,
      pusher: name,
      warnings,
    };
  }
  const restartPolicy = input.pod.spec?.restartPolicy ?? "Always";
  if (!sidecar.native && restartPolicy !== "Always") {
    return {
      kind: "skip",
      reason: SkipReason.WouldBlockCompletion,
      message: `pod has restartPolicy ${restartPolicy} and MetricsPusher ${name} renders a regular container (sidecarMode ${pusher.spec.sidecarMode ?? "Auto"}), which would keep the pod from completing; a native sidecar needs Kubernetes >= 1.29`,
      pusher: name,
      warnings,
    };
  }

  const mutated = inject(input.pod, sidecar, name);
  const patch = fastJsonPatch.compare(input.pod, mutated);
  return { kind: "patch", patch, pusher: name, hash: sidecar.hash, native: sidecar.native, matched, warnings };
}

/**
 * The sidecar `pusher` renders for `pod`, with the targets the pod declares itself (spec.scrape.discovery), or why
 * the pod's declaration cannot be used. The webhook injects it; the controller compares each pod with its hash.
 */
export function renderForPod(
  pusher: MetricsPusher,
  defaults: SidecarDefaults,
  pod: V1Pod,
): { readonly sidecar: RenderedSidecar } | { readonly invalid: string } {
  const found = discover(pusher.spec.scrape?.discovery, pod);
  if (found.kind === "invalid") {
    return {
      invalid: `discovers scrape targets from the pod (spec.scrape.discovery ${pusher.spec.scrape?.discovery}) and cannot use what the pod declares: ${found.message}`,
    };
  }
  const sidecar = renderSidecar(pusher, defaults, found);
  if (sidecar.scrapeTargets.length > MAX_SCRAPE_TARGETS) {
    return {
      invalid: `lists and discovers ${sidecar.scrapeTargets.length} scrape targets for this pod; a sidecar scrapes at most ${MAX_SCRAPE_TARGETS}`,
    };
  }
  return { sidecar };
}

/** Step 1: may this pod get a sidecar at all? undefined = yes. */
function shouldInject(input: MutateInput): { reason: SkipReason; message: string } | undefined {
  const { namespace, settings, pod } = input;
  if (settings.systemNamespaces.includes(namespace)) {
    return { reason: SkipReason.SystemNamespace, message: `namespace ${namespace} is a system namespace` };
  }
  if (settings.watchNamespaces.length > 0 && !settings.watchNamespaces.includes(namespace)) {
    return {
      reason: SkipReason.NamespaceNotWatched,
      message: `namespace ${namespace} is not in the operator's WATCH_NAMESPACES`,
    };
  }
  if (input.namespaceLabels?.[Labels.injection] === InjectionLabelValues.disabled) {
    return {
      reason: SkipReason.NamespaceDisabled,
      message: `namespace ${namespace} is labelled ${Labels.injection}=${InjectionLabelValues.disabled}`,
    };
  }
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[Annotations.inject]?.trim().toLowerCase() === InjectValues.optOut) {
    return { reason: SkipReason.OptedOut, message: `pod is annotated ${Annotations.inject}=false` };
  }
  const existing = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some(
    (c) => c.name === SIDECAR_CONTAINER_NAME,
  );
  if (existing) {
    // A reinvocation (reinvocationPolicy IfNeeded) finds our own container and marker: nothing to do.
    return parseInjected(annotations[Annotations.injected])
      ? { reason: SkipReason.AlreadyInjected, message: `pod already carries ${annotations[Annotations.injected]}` }
      : {
          reason: SkipReason.ContainerNameTaken,
          message: `pod already has a container named ${SIDECAR_CONTAINER_NAME} that the operator did not inject`,
        };
  }
  return undefined;
}

/** Step 2: which MetricsPusher? The explicit annotation, else the oldest matching one (name breaks ties). */
function choosePusher(input: MutateInput): Choice {
  const { pod, namespace } = input;
  const candidates = input.pushers.filter((p) => p.metadata.namespace === namespace);
  const explicit = pod.metadata?.annotations?.[Annotations.inject]?.trim();
  if (explicit && explicit.toLowerCase() !== "true") {
    const found = candidates.find((p) => p.metadata.name === explicit);
    if (!found) {
      return {
        skip: SkipReason.ExplicitPusherNotFound,
        message: `pod asks for MetricsPusher ${explicit} (${Annotations.inject}), which does not exist in namespace ${namespace}`,
      };
    }
    if (found.metadata.deletionTimestamp) {
      return {
        skip: SkipReason.PusherBeingDeleted,
        message: `MetricsPusher ${explicit} is being deleted`,
        pusher: explicit,
      };
    }
    return { pusher: found, matched: [explicit], warnings: [] };
  }

  const labels = pod.metadata?.labels ?? {};
  const matching = candidates
    .filter((p) => !p.metadata.deletionTimestamp && selectorMatches(p.spec.selector, labels))
    .sort(byAgeThenName);
  const first = matching[0];
  if (!first) {
    return {
      skip: SkipReason.NoMatchingPusher,
      message: `no MetricsPusher in namespace ${namespace} selects this pod's labels`,
    };
  }
  const matched = matching.map((p) => p.metadata.name ?? "");
  const warnings =
    matching.length > 1
      ? [
          `metrics-pusher: ${matching.length} MetricsPushers select this pod (${matched.join(", ")}); using ${matched[0]}, the oldest. Set annotation ${Annotations.inject}: <name> to choose.`,
        ]
      : [];
  return { pusher: first, matched, warnings };
}

/** Steps 3-5 on a copy: add the container and volumes, then mark the pod. */
function inject(pod: V1Pod, rendered: RenderedSidecar, pusherName: string): V1Pod {
  const sidecar = withFreeVolumeNames(rendered, pod.spec?.volumes ?? []);
  const out = structuredClone(pod);
  out.metadata ??= {};
  out.spec ??= { containers: [] };
  if (sidecar.native)
    out.spec.initContainers = [...(out.spec.initContainers ?? []), structuredClone(sidecar.container)];
  else out.spec.containers = [...(out.spec.containers ?? []), structuredClone(sidecar.container)];
  if (sidecar.volumes.length > 0) out.spec.volumes = [...(out.spec.volumes ?? []), ...structuredClone(sidecar.volumes)];
  out.metadata.annotations = {
    ...(out.metadata.annotations ?? {}),
    [Annotations.injected]: formatInjected(pusherName, sidecar.hash),
  };
  // A label value holds at most 63 characters, a MetricsPusher name up to 253: a longer name gets the annotation
  // only, since an invalid label would make the apiserver refuse the pod.
  if (pusherName.length <= MAX_LABEL_VALUE_LENGTH)
    out.metadata.labels = { ...(out.metadata.labels ?? {}), [Labels.pusher]: pusherName };
  return out;
}

/**
 * A pod may already use a name the sidecar's volumes would take (found by the fuzz suite): two volumes of one name
 * make the apiserver refuse the pod. Ours get the next free numbered name instead; mount paths, and so the rendered
 * environment and the config hash, stay the same.
 */
function withFreeVolumeNames(sidecar: RenderedSidecar, podVolumes: readonly { name: string }[]): RenderedSidecar {
  const taken = new Set(podVolumes.map((v) => v.name));
  if (!sidecar.volumes.some((v) => taken.has(v.name))) return sidecar;
  const renamed = new Map<string, string>();
  for (const v of sidecar.volumes) taken.add(v.name);
  for (const v of sidecar.volumes) {
    if (!podVolumes.some((p) => p.name === v.name)) continue;
    let n = 2;
    while (taken.has(`${v.name}-${n}`)) n++;
    renamed.set(v.name, `${v.name}-${n}`);
    taken.add(`${v.name}-${n}`);
  }
  const rename = (name: string): string => renamed.get(name) ?? name;
  return {
    ...sidecar,
    volumes: sidecar.volumes.map((v) => ({ ...v, name: rename(v.name) })),
    container: {
      ...sidecar.container,
      ...(sidecar.container.volumeMounts
        ? { volumeMounts: sidecar.container.volumeMounts.map((m) => ({ ...m, name: rename(m.name) })) }
        : {}),
    },
  };
}

function byAgeThenName(a: MetricsPusher, b: MetricsPusher): number {
  const ta = timestamp(a.metadata.creationTimestamp);
  const tb = timestamp(b.metadata.creationTimestamp);
  if (ta !== tb) return ta - tb;
  const na = a.metadata.name ?? "";
  const nb = b.metadata.name ?? "";
  return na < nb ? -1 : na > nb ? 1 : 0;
}

function timestamp(t: Date | string | undefined): number {
  if (t === undefined) return Number.MAX_SAFE_INTEGER;
  const ms = new Date(t).getTime();
  return Number.isNaN(ms) ? Number.MAX_SAFE_INTEGER : ms;
}

export interface LabelSelectorLike {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] | undefined }> | undefined;
}

/** metav1.LabelSelector semantics. An empty selector matches everything; an unknown operator matches nothing. */
export function selectorMatches(
  selector: LabelSelectorLike | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
