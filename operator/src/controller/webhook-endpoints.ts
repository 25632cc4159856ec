// Whether a pod created now would reach this operator's webhook through its Service, as far as the controller can
// tell: a roll that expects the webhook to inject the sidecar must not run before that. The webhook fails open
// (failurePolicy Ignore), so a pod the ReplicaSet creates while no endpoint serves is admitted bare, and a pod admitted
// by a replica of the previous operator version gets that version's sidecar; either way the roll was spent for nothing
// and the drift-repair backoff holds the next one back for minutes. Both happen right after the operator starts or is
// upgraded, when the leader reconciles at once but its Service's endpoints are still changing.
//
// The rule: at least one endpoint is ready, and the set of endpoints (address and conditions) has not changed for
// SETTLE_MS, which covers kube-proxy's sync of the Service's rules after the EndpointSlice changed and the old
// replicas' termination during a rolling update. With WEBHOOK_URL (an operator outside the cluster) there is no
// Service, and nothing to wait for.
import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { createInformer, type Informer } from "../kube/informer.ts";

/** How long the webhook Service's endpoints must stay as they are before rolls that need the webhook run. */
export const WEBHOOK_SETTLE_MS = 10_000;

/** The state of the Service's endpoints, one string for comparison: each endpoint's addresses and conditions. */
export function endpointsSignature(slices: readonly V1EndpointSlice[]): { signature: string; ready: number } {
  const entries: string[] = [];
  let ready = 0;
  for (const slice of slices) {
    for (const e of slice.endpoints ?? []) {
      const c = e.conditions ?? {};
      // EndpointSlice: an unset `ready` means ready.
      const isReady = c.ready !== false && c.terminating !== true;
      if (isReady) ready++;
      entries.push(
        `${[...(e.addresses ?? [])].sort().join(",")}|${isReady}|${c.serving !== false}|${c.terminating === true}`,
      );
    }
  }
  return { signature: entries.sort().join(";"), ready };
}

/**
 * Tracks the signature over time. `waitMs(now)` is 0 when a roll may run, the time left until the endpoints have been
 * still for SETTLE_MS otherwise, and Infinity while no endpoint is ready (the next change calls `onChange`).
 */
export class SettledEndpoints {
  #signature: string | undefined;
  #ready = 0;
  #changedAt = 0;
  readonly #settleMs: number;

  constructor(settleMs = WEBHOOK_SETTLE_MS) {
    this.#settleMs = settleMs;
  }

  observe(slices: readonly V1EndpointSlice[], now: number): void {
    const { signature, ready } = endpointsSignature(slices);
    if (signature !== this.#signature) {
      this.#signature = signature;
      this.#changedAt = now;
    }
    this.#ready = ready;
  }

  waitMs(now: number): number {
    if (this.#signature === undefined || this.#ready === 0) return Infinity;
    return Math.max(0, this.#changedAt + this.#settleMs - now);
  }

  describe(now: number): string {
    const wait = this.waitMs(now);
    if (wait === Infinity) return "no ready endpoint yet";
    return `${this.#ready} ready endpoint(s), unchanged for ${Math.round((now - this.#changedAt) / 1000)}s of ${this.#settleMs / 1000}s`;
  }
}

export interface WebhookGate {
  /** 0: rolls that need the webhook may run; otherwise how long to wait (Infinity: until a change). */
  waitMs(now: number): number;
  describe(now: number): string;
  stop(): Promise<void>;
}

/** Always open: the operator runs outside the cluster (WEBHOOK_URL), or a test drives the controller alone. */
export const OPEN_GATE: WebhookGate = { waitMs: () => 0, describe: () => "no webhook Service", stop: async () => {} };

/** A gate on the EndpointSlices of the webhook's Service, from an informer on the operator's own namespace. */
export function watchWebhookEndpoints(o: {
  kc: KubeConfig;
  log: Logger;
  namespace: string;
  service: string;
  onChange: () => void;
  onInformerError?: (informer: string) => void;
  now?: () => number;
}): WebhookGate {
  const now = o.now ?? Date.now;
  const discovery = o.kc.makeApiClient(DiscoveryV1Api);
  const labelSelector = `kubernetes.io/service-name=${o.service}`;
  const settled = new SettledEndpoints();
  const informer: Informer<V1EndpointSlice> = createInformer<V1EndpointSlice>({
    kc: o.kc,
    log: o.log,
    name: "endpointslices",
    path: `/apis/discovery.k8s.io/v1/namespaces/${o.namespace}/endpointslices`,
    labelSelector,
    list: () => discovery.listNamespacedEndpointSlice({ namespace: o.namespace, labelSelector }),
    onError: () => o.onInformerError?.("endpointslices"),
  });
  const update = (): void => {
    settled.observe(informer.list(o.namespace), now());
    o.onChange();
  };
  informer.on("add", update);
  informer.on("update", update);
  informer.on("delete", update);
  informer.start();
  return {
    waitMs: (t) => settled.waitMs(t),
    describe: (t) => settled.describe(t),
    stop: () => informer.stop(),
  };
}
