// node:http for the pusher's ES modules, loaded through require rather than `import`. Node 24's `http` has lazy getters
// (WebSocket, CloseEvent, MessageEvent) that load Node's bundled undici, and an ES module import of a built-in reads
// every export to build its namespace: that alone pulls in undici, http2, zlib, worker_threads, crypto and tls, +16 MiB
// peak RSS and +7 MiB private at start (docs/benchmarks.md, "Idle sidecar"). require() reads no export.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const http = require("node:http") as typeof import("node:http");
// The types the pusher names as http.X; a namespace of types only merges with the value and emits nothing.
// eslint-disable-next-line @typescript-eslint/no-namespace
declare namespace http {
  export type Agent = import("node:http").Agent;
}

export default http;
export const { validateHeaderValue } = http;
