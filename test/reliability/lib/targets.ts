// Scrape targets for the reliability suites: a well-behaved one whose counter counts the scrapes it served (so a test
// knows exactly which samples were taken), and misbehaving ones (hang, huge garbage, invalid UTF-8).
import { randomBytes } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface Target {
  readonly url: string;
  /** host:port, the `instance` label the pusher gives its series. */
  readonly instance: string;
  /** Scrapes served (for the tick target: the last value exposed). */
  readonly hits: number;
  close(): Promise<void>;
}

async function serve(handler: (res: ServerResponse, hit: number) => void): Promise<Target> {
  let hits = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    req.resume();
    hits++;
    handler(res, hits);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  const port = typeof a === "object" && a ? a.port : 0;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    instance: `127.0.0.1:${port}`,
    get hits() {
      return hits;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}

export const TICK_METRIC = "reliability_tick_total";

/** Exposes `reliability_tick_total N`, N = the number of scrapes served so far: one known sample per scrape. */
export function tickTarget(): Promise<Target> {
  return serve((res, hit) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(`# HELP ${TICK_METRIC} Scrapes served.\n# TYPE ${TICK_METRIC} counter\n${TICK_METRIC} ${hit}\n`);
  });
}

/** Accepts the request and never answers. */
export function hangingTarget(): Promise<Target> {
  return serve(() => {
    /* never answer; close() destroys the socket */
  });
}

/** Answers 200 with `bytes` of random bytes (not an exposition), streamed in chunks. */
export function garbageTarget(bytes: number): Promise<Target> {
  const chunk = randomBytes(64 * 1024);
  return serve((res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    let left = bytes;
    const write = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once("drain", write);
      }
      res.end();
    };
    res.on("error", () => {});
    write();
  });
}

/** A well-formed exposition except for bytes that are not UTF-8 in a label value and a metric line. */
export function invalidUtf8Target(): Promise<Target> {
  return serve((res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(
      Buffer.concat([
        Buffer.from('# TYPE reliability_bad gauge\nreliability_bad{label="ok"} 1\nreliability_bad{label="'),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
        Buffer.from('"} 2\n'),
      ]),
    );
  });
}

/** Answers 200 with the same exposition body every time (for hostile but well-formed expositions). */
export function bodyTarget(body: Buffer): Promise<Target> {
  return serve((res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.on("error", () => {});
    res.end(body);
  });
}

/** Hostile expositions that are well-formed and within SCRAPE_MAX_BYTES' default (16 MiB). */
export const hostileBodies = {
  /** One series with 80,000 labels: the worst input for the label limit and the repeated-label check. */
  manyLabels: (): Buffer =>
    Buffer.from(`hostile_wide{${Array.from({ length: 80_000 }, (_, k) => `l${k}="v"`).join(",")}} 1\n`),
  /** 16 MiB of tiny series (about 950,000): the worst input for the sample limit. */
  tinySeries: (bytes = 16 * 1024 * 1024 - 64): Buffer => {
    const parts: string[] = [];
    for (let i = 0, size = 0; size < bytes - 32; i++) {
      const line = `s{l="${i}"} 1\n`;
      parts.push(line);
      size += line.length;
    }
    return Buffer.from(parts.join(""));
  },
  /**
   * The largest body the limits accept, at its costliest: `series` series (the sample limit) whose label values,
   * each at most `valueLength` characters and at most `labels` labels a series, fill the body to `maxBytes`.
   */
  longValues: (maxBytes: number, series: number, labels: number, valueLength: number): Buffer => {
    const parts: string[] = [];
    const perLine = Math.floor(maxBytes / series);
    for (let i = 0; i < series; i++) {
      let line = `long_values{id="${String(i).padStart(6, "0")}"`;
      // name, id and the values: `labels` in all; each value as long as the line's room and the limit allow.
      for (let v = 0; v < labels - 2; v++) {
        const room = perLine - line.length - `,v${v}=""} 1\n`.length;
        if (room <= 0) break;
        line += `,v${v}="${"x".repeat(Math.min(room, valueLength))}"`;
      }
      parts.push(`${line}} 1\n`);
    }
    return Buffer.from(parts.join(""));
  },
  /** One label value of almost 16 MiB. */
  hugeValue: (bytes = 16 * 1024 * 1024 - 64): Buffer => Buffer.from(`hostile_value{v="${"x".repeat(bytes - 40)}"} 1\n`),
};
