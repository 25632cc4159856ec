// A fault-injecting HTTP(S) proxy for the reliability suites: it sits between the pusher and a real receiver and,
// request by request, forwards, answers with a chosen status and headers, resets the connection, hangs, or refuses
// connections altogether (listener closed). Every request is recorded with the samples it carried, decoded with the
// pusher's own prompb schema, so a test can check what was offered, what the receiver got and in which order.
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Server } from "node:net";
import type { Socket } from "node:net";
import { decodeWriteRequest, type DecodedSeries } from "../../../pusher/src/remote-write/prompb.ts";
import { listen as listenOn } from "../../lib/net.ts";

export type FaultAction =
  /** Pass the request to the upstream receiver and its answer back. */
  | { readonly kind: "forward" }
  /** Answer without asking upstream. */
  | {
      readonly kind: "respond";
      readonly status: number;
      readonly headers?: Readonly<Record<string, string>>;
      readonly body?: string;
    }
  /** Destroy the connection once the request has been read (the client sees ECONNRESET / socket hang up). */
  | { readonly kind: "reset" }
  /** Read the request and never answer (the client's timeout must fire). */
  | { readonly kind: "hang" }
  /** Wait, then do `then`. */
  | { readonly kind: "delay"; readonly ms: number; readonly then: FaultAction };

export const forward: FaultAction = { kind: "forward" };
export const respond = (status: number, headers?: Record<string, string>, body?: string): FaultAction =>
  headers === undefined
    ? { kind: "respond", status, ...(body === undefined ? {} : { body }) }
    : { kind: "respond", status, headers, ...(body === undefined ? {} : { body }) };
export const reset: FaultAction = { kind: "reset" };
export const hang: FaultAction = { kind: "hang" };

export interface RecordedRequest {
  readonly seq: number;
  readonly atMs: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly bytes: number;
  /** Decoded Remote-Write payload; undefined when the body was not one (the error is in decodeError). */
  readonly series: DecodedSeries[] | undefined;
  readonly decodeError?: string;
  /** What the proxy did, and the status the client got (0 when none: reset, hang, refused). */
  readonly action: FaultAction["kind"];
  status: number;
}

export interface FaultProxy {
  /** Base URL, e.g. http://127.0.0.1:PORT */
  readonly url: string;
  /** `${url}/api/v1/write` */
  readonly remoteWriteUrl: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** The action for requests when no scripted one is queued (default: forward, or 204 when there is no upstream). */
  setDefault(action: FaultAction | ((req: RecordedRequest) => FaultAction)): void;
  /** One-shot actions for the next requests, in order, before the default applies again. */
  script(...actions: FaultAction[]): void;
  /** Close the listener and every open connection: new connections are refused until up(). */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  readonly isUp: boolean;
  /** Samples carried by requests that got a 2xx answer, in the order they were sent. */
  delivered(): { labels: string; timestampMs: number; value: number; stale: boolean }[];
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Receiver to forward to, e.g. Prometheus' base URL; without it `forward` answers 204. */
  upstream?: string;
  /** Serve HTTPS with this certificate (for TLS-error tests). */
  tls?: { certPem: string; keyPem: string };
  /** The address to listen on (default 127.0.0.1; the node bed's tests give its bridge address, which pods reach). */
  host?: string;
}

export function labelKey(labels: readonly { name: string; value: string }[]): string {
  return labels.map((l) => `${l.name}=${JSON.stringify(l.value)}`).join(",");
}

export async function startFaultProxy(options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const upstream = options.upstream ? new URL(options.upstream) : undefined;
  const requests: RecordedRequest[] = [];
  const queue: FaultAction[] = [];
  let fallback: FaultAction | ((req: RecordedRequest) => FaultAction) = upstream ? forward : respond(204);
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let seq = 0;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => res.destroy());
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let series: DecodedSeries[] | undefined;
      let decodeError: string | undefined;
      try {
        series = decodeWriteRequest(body);
      } catch (e) {
        decodeError = (e as Error).message;
      }
      const base = {
        seq: seq++,
        atMs: Date.now(),
        method: req.method ?? "",
        path: req.url ?? "",
        headers: { ...req.headers },
        bytes: body.length,
        series,
        ...(decodeError === undefined ? {} : { decodeError }),
        status: 0,
      };
      const provisional = { ...base, action: "forward" as FaultAction["kind"] };
      const chosen = queue.shift() ?? (typeof fallback === "function" ? fallback(provisional) : fallback);
      const rec: RecordedRequest = { ...base, action: leaf(chosen).kind };
      requests.push(rec);
      void perform(chosen, rec, req, res, body);
    });
  };

  const perform = async (
    action: FaultAction,
    rec: RecordedRequest,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
  ): Promise<void> => {
    switch (action.kind) {
      case "delay":
        await new Promise((r) => setTimeout(r, action.ms));
        return perform(action.then, rec, req, res, body);
      case "respond":
        rec.status = action.status;
        res.writeHead(action.status, { "content-type": "text/plain", ...(action.headers ?? {}) });
        res.end(action.body ?? "");
        return;
      case "reset":
        req.socket.destroy();
        return;
      case "hang":
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      case "forward": {
        if (!upstream) {
          rec.status = 204;
          res.writeHead(204).end();
          return;
        }
        const headers = { ...req.headers, host: upstream.host };
        const up = httpRequest(
          { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
          (ur) => {
            rec.status = ur.statusCode ?? 0;
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            ur.pipe(res);
          },
        );
        up.on("error", (e) => {
          rec.status = 502;
          if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
          res.end(`proxy: upstream error: ${e.message}`);
        });
        up.end(body);
        return;
      }
    }
  };

  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handler)
    : createHttpServer(handler);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  // A TLS handshake the client aborts (bad certificate) is the expected outcome in TLS tests, not a proxy failure.
  server.on("tlsClientError", () => {});
  server.on("clientError", (_e, s: Socket) => s.destroy());

  const listen = (port: number): Promise<number> => listenOn(server, port, options.host);
  const port = await listen(0);
  let isUp = true;
  const scheme = options.tls ? "https" : "http";
  const url = `${scheme}://${options.host ?? "127.0.0.1"}:${port}`;

  const closeAll = async (): Promise<void> => {
    for (const res of hanging) res.destroy();
    hanging.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  };

  return {
    url,
    remoteWriteUrl: `${url}/api/v1/write`,
    port,
    requests,
    setDefault(action) {
      fallback = action;
    },
    script(...actions) {
      queue.push(...actions);
    },
    async down() {
      if (!isUp) return;
      isUp = false;
      await closeAll();
    },
    async up() {
      if (isUp) return;
      await listen(port);
      isUp = true;
    },
    get isUp() {
      return isUp;
    },
    delivered() {
      const out: { labels: string; timestampMs: number; value: number; stale: boolean }[] = [];
      for (const r of requests) {
        if (r.status < 200 || r.status > 299 || !r.series) continue;
        for (const s of r.series) {
          const key = labelKey(s.labels);
          for (const x of s.samples)
            out.push({ labels: key, timestampMs: x.timestampMs, value: x.value, stale: x.stale });
        }
      }
      return out;
    },
    async close() {
      if (isUp) await closeAll();
      isUp = false;
    },
  };
}

function leaf(a: FaultAction): FaultAction {
  return a.kind === "delay" ? leaf(a.then) : a;
}
