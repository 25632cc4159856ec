// Listening on loopback for the test proxies, which also re-open on the same port after a simulated outage.
import type { Server } from "node:net";

/** Listens on 127.0.0.1:`port` (0 = any free port) and resolves with the port taken. */
export function listenLoopback(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
}
