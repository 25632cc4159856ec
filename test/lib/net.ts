// Network helpers shared by the tests, the demo and the benchmarks.
import type { Server } from "node:http";
import { createServer, type Server as NetServer } from "node:net";

/** A free loopback port; the kernel picks it, we release it for the process we start next. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === "object" && address) resolve(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

/**
 * Listens on `host`:`port` (0 = any free port) and resolves with the port taken. The test proxies re-open on the same
 * port after a simulated outage; the node bed's receivers listen on its bridge address.
 */
export function listen(server: NetServer, port = 0, host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
}

/** Starts `server` on a loopback port; `close` also ends kept-alive connections, so it never waits for a client. */
export async function listenLoopback(server: Server): Promise<{ port: number; close: () => Promise<void> }> {
  const port = await listen(server);
  const close = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { port, close };
}
