// A local scrape target exposing a fixed number of series whose values change every second.
import { createServer, type Server } from "node:http";
import { listenLoopback } from "../../lib/net.ts";
import { exposition, metricSeries } from "./workload.ts";

export interface Target {
  /** http://127.0.0.1:PORT/metrics */
  readonly url: string;
  /** host:port, for scrape configs. */
  readonly address: string;
  readonly series: number;
  /** Scrapes served so far. */
  scrapes(): number;
  close(): Promise<void>;
}

export async function startTarget(series: number): Promise<Target> {
  const text = exposition(metricSeries(series));
  let cachedTick = -1;
  let cached = Buffer.alloc(0);
  let scrapes = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    scrapes++;
    // One rendering per second whoever scrapes: the target's own cost stays small and equal for every peer.
    const tick = Math.floor(Date.now() / 1000);
    if (tick !== cachedTick) {
      cached = Buffer.from(text.render(tick));
      cachedTick = tick;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": cached.length });
    res.end(cached);
  });
  const { port, close } = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    address: `127.0.0.1:${port}`,
    series,
    scrapes: () => scrapes,
    close,
  };
}
