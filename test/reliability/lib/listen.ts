// Listening on loopback for the test proxies, which also re-open on the same port after a simulated outage.
import type { Server } from "node:net";

/** Listens on `host`:`port` (0 = any free port; host 127.0.0.1 unless given) and resolves with the port taken. */
export function listenLoopback(server: Server, port: number, host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
}
