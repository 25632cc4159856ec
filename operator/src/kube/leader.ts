/**
 * Leader election with a coordination.k8s.io/v1 Lease, following client-go's leaderelection package (client-node has
 * none):
 * - a candidate takes the Lease when nobody holds it or when the holder has not renewed it for leaseDuration, as
 *   measured on OUR clock from the moment we last saw the record change (never by comparing the holder's renewTime
 *   with our clock: clocks of two nodes differ);
 * - every write is an update carrying the read resourceVersion, so two candidates can never both win (409 Conflict);
 * - the leader renews every retryPeriod and steps down when it could not renew for renewDeadline, which is shorter
 *   than leaseDuration, so it stops acting before anyone else may take over;
 * - stop() ends the leader's work first, then releases the Lease (holderIdentity "") so a successor need not wait.
 *
 *   const elector = new LeaderElector({ kc, log, namespace, name, identity, leaseDurationMs: 15_000,
 *     renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
 *     onStartedLeading: async (signal) => { ... until signal aborts ... },  // signal aborts when leadership ends
 *     onStoppedLeading: async () => { ... stop controllers ... } });
 *   elector.start(); ... await elector.stop();
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiMessage, apiStatus } from "./errors.ts";

export interface LeaderElectorOptions {
  kc: KubeConfig;
  log: Logger;
  namespace: string;
  name: string;
  /** Unique per process (e.g. pod name plus a random suffix). */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Awaited before the Lease is released or another acquire attempt starts. */
  onStoppedLeading: () => void | Promise<void>;
}

/** Lease times are metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #api: CoordinationV1Api;
  readonly #log: Logger;
  #stopped = false;
  #leader = false;
  #wake = new AbortController();
  #loop: Promise<void> | undefined;
  #observedKey = "";
  #observedAt = 0;
  #observedHolder = "";

  constructor(opts: LeaderElectorOptions) {
    this.#o = opts;
    this.#api = opts.kc.makeApiClient(CoordinationV1Api);
    this.#log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  isLeader(): boolean {
    return this.#leader;
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      this.#log.info("Waiting to acquire the leader Lease");
      while (!this.#stopped && !(await this.#tryAcquireOrRenew())) await this.#sleep(jittered(this.#o.retryPeriodMs));
      if (this.#stopped) break;

      this.#leader = true;
      this.#log.info("Became leader");
      const leading = new AbortController();
      const work = (async () => this.#o.onStartedLeading(leading.signal))().catch((err: unknown) =>
        this.#log.error({ err }, "Leader work failed"),
      );
      let lastRenew = Date.now();
      while (!this.#stopped) {
        await this.#sleep(this.#o.retryPeriodMs);
        if (this.#stopped) break;
        if (await this.#tryAcquireOrRenew()) {
          lastRenew = Date.now();
        } else if (Date.now() - lastRenew >= this.#o.renewDeadlineMs) {
          this.#log.warn(
            { sinceRenewMs: Date.now() - lastRenew },
            "Lost leadership: could not renew the Lease within the renew deadline",
          );
          break;
        }
      }
      leading.abort();
      this.#leader = false;
      await work;
      try {
        await this.#o.onStoppedLeading();
      } catch (err) {
        this.#log.error({ err }, "Stopping leader work failed");
      }
      if (this.#stopped) await this.#release();
    }
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#stopped) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      const signal = this.#wake.signal;
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** One acquire-or-renew attempt; false on any failure (the caller retries). Bounded by renewDeadline. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        this.#log.warn("Lease request timed out");
        resolve(false);
      }, this.#o.renewDeadlineMs);
    });
    try {
      return await Promise.race([this.#attempt(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #attempt(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const now = Date.now();
    const durationSeconds = Math.max(1, Math.ceil(this.#o.leaseDurationMs / 1000));
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (apiStatus(err) !== 404) {
        this.#log.warn({ err: errMessage(err) }, "Cannot read the leader Lease");
        return false;
      }
      try {
        await this.#api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: microTime(now) as unknown as Date,
              renewTime: microTime(now) as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
        this.#noteHolder(identity);
        return true;
      } catch (createErr) {
        if (apiStatus(createErr) !== 409)
          this.#log.warn({ err: errMessage(createErr) }, "Cannot create the leader Lease");
        return false;
      }
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const key = JSON.stringify([
      holder,
      String(spec.renewTime ?? ""),
      spec.leaseTransitions ?? 0,
      spec.leaseDurationSeconds,
    ]);
    if (key !== this.#observedKey) {
      this.#observedKey = key;
      this.#observedAt = now;
    }
    this.#noteHolder(holder);
    const heldMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder !== "" && holder !== identity && this.#observedAt + heldMs > now) return false;

    const mine = holder === identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: microTime(now) as unknown as Date,
        acquireTime: (mine && spec.acquireTime ? spec.acquireTime : microTime(now)) as unknown as Date,
        leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      await this.#api.replaceNamespacedLease({ name, namespace, body });
      this.#noteHolder(identity);
      return true;
    } catch (err) {
      if (apiStatus(err) !== 409) this.#log.warn({ err: errMessage(err) }, "Cannot update the leader Lease");
      return false;
    }
  }

  #noteHolder(holder: string): void {
    if (holder === this.#observedHolder) return;
    this.#observedHolder = holder;
    if (holder) {
      this.#log.info({ leader: holder }, "New leader observed");
    }
  }

  /** Gives the Lease up so a successor takes over at once instead of after leaseDuration. */
  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#o;
    try {
      const lease = await this.#api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = microTime(Date.now()) as unknown as Date;
      await this.#api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
        },
      });
      this.#log.info("Released the leader Lease");
    } catch (err) {
      this.#log.warn(
        { err: errMessage(err) },
        "Cannot release the leader Lease; a successor takes over after the lease duration",
      );
    }
  }
}

function jittered(ms: number): number {
  // client-go's JitterUntil factor 1.2: spreads candidates that started together.
  return Math.round(ms * (1 + Math.random() * 1.2));
}

function errMessage(err: unknown): string {
  const code = apiStatus(err);
  const msg = apiMessage(err);
  return code ? `${code}: ${msg}` : msg;
}
