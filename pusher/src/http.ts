// The optional HTTP server (HTTP_PORT): /health (the process answers), /ready (the collection loop runs — never
// "the receiver is reachable", so that a probe cannot take the pod down during a receiver outage) and /metrics (the
// pusher's own registry, in the exposition format).
import http from "./node-http.ts";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface StatusServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startStatusServer(opts: {
  port: number;
  host?: string | undefined;
  registry: Registry;
  ready: () => boolean;
}): Promise<StatusServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/health" || path === "/healthz") {
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
    } else if (path === "/ready" || path === "/readyz") {
      const ok = opts.ready();
      res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain" }).end(ok ? "ready\n" : "not ready\n");
    } else if (path === "/metrics") {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { "Content-Type": opts.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { "Content-Type": "text/plain" }).end(`${err.message}\n`),
      );
    } else {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    }
  });
  // Probes come every few seconds; idle keep-alive sockets must not hold shutdown up.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
