// A TCP pass-through proxy whose listener can be closed and reopened on the same port: put in front of the
// kube-apiserver (TLS passes through untouched), it makes the API unreachable for a while without stopping it.
import { connect, createServer, type Socket } from "node:net";
import { listen as listenOn } from "../../lib/net.ts";

export interface TcpProxy {
  readonly port: number;
  readonly isUp: boolean;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Refuse new connections and cut every open one. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listen = (port: number): Promise<number> => listenOn(server, port);
  const port = await listen(0);
  let isUp = true;
  const cut = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  return {
    port,
    get isUp() {
      return isUp;
    },
    get connections() {
      return connections;
    },
    async down() {
      if (!isUp) return;
      isUp = false;
      await cut();
    },
    async up() {
      if (isUp) return;
      await listen(port);
      isUp = true;
    },
    async close() {
      if (isUp) await cut();
      isUp = false;
    },
  };
}
