// Speaks HTTP to the Remote-Write receiver and nothing else: one POST per call, the protocol's headers, credentials
// from files (re-read when they change), TLS settings, a per-request timeout, and the proxy from the environment.
// What to make of the answer is retry.ts' business.
import http from "../node-http.ts";
import https from "node:https";
import tls from "node:tls";
import { RESERVED_HEADERS, bearerAuthorization, unsendableHeaderValue } from "../config.ts";
import { redactUrl, redactUserInfo } from "../redact.ts";
import { WatchedFile, type FileLog } from "./watched-file.ts";

export const BODY_LOG_LIMIT = 1024;

export interface ClientOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly userAgent: string;
  /** Extra headers; reserved names are ignored (config.ts already refuses them). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly bearerTokenFile?: string | undefined;
  readonly basicAuthUsername?: string | undefined;
  readonly basicAuthUsernameFile?: string | undefined;
  readonly basicAuthPasswordFile?: string | undefined;
  readonly tlsCaFile?: string | undefined;
  readonly tlsInsecureSkipVerify?: boolean;
  /** Where HTTP(S)_PROXY / NO_PROXY are read from; default process.env. */
  readonly proxyEnv?: NodeJS.ProcessEnv;
  readonly log: FileLog;
}

export type SendResult =
  | {
      readonly kind: "response";
      readonly status: number;
      readonly retryAfter: string | undefined;
      /** At most BODY_LOG_LIMIT bytes of the answer, for the log. */
      readonly body: string;
    }
  | {
      readonly kind: "error";
      /** "internal": never from this client; the queue's name for a send that threw. */
      readonly reason: "network" | "timeout" | "credentials" | "internal";
      readonly message: string;
    };

export class RemoteWriteClient {
  readonly #url: URL;
  readonly #opts: ClientOptions;
  readonly #fixedHeaders: Record<string, string>;
  readonly #urlAuth: string | undefined;
  readonly #bearer: WatchedFile | undefined;
  readonly #user: WatchedFile | undefined;
  readonly #password: WatchedFile | undefined;
  readonly #ca: WatchedFile | undefined;
  #agent: http.Agent | undefined;
  #agentCa: string | undefined;

  constructor(opts: ClientOptions) {
    this.#opts = opts;
    const url = new URL(opts.url);
    if (url.username !== "" || url.password !== "") {
      // Credentials in the URL are basic auth, as Prometheus' and Go's clients treat them; never sent in the URL.
      this.#urlAuth = basic(decodeURIComponent(url.username), decodeURIComponent(url.password));
      url.username = "";
      url.password = "";
    }
    this.#url = url;
    const user: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {}))
      if (!RESERVED_HEADERS.includes(k.toLowerCase())) user[k] = v;
    this.#fixedHeaders = {
      ...user,
      "Content-Encoding": "snappy",
      "Content-Type": "application/x-protobuf",
      "X-Prometheus-Remote-Write-Version": "0.1.0",
      "User-Agent": opts.userAgent,
    };
    // A rotated token HTTP cannot send (an inner line feed, a non-Latin-1 character) would make http.request throw:
    // it is refused on read instead, logged once, and the batch retried (reason credentials) until the file is fixed.
    if (opts.bearerTokenFile)
      this.#bearer = new WatchedFile(opts.bearerTokenFile, "bearer token", opts.log, (token) =>
        unsendableHeaderValue("Authorization", bearerAuthorization(token)),
      );
    if (opts.basicAuthUsernameFile)
      this.#user = new WatchedFile(opts.basicAuthUsernameFile, "basic-auth user name", opts.log);
    if (opts.basicAuthPasswordFile)
      this.#password = new WatchedFile(opts.basicAuthPasswordFile, "basic-auth password", opts.log);
    if (opts.tlsCaFile) this.#ca = new WatchedFile(opts.tlsCaFile, "TLS CA", opts.log);
  }

  /** The receiver URL with credentials hidden, for logs. */
  get displayUrl(): string {
    return redactUrl(this.#opts.url);
  }

  #authorization(): string | undefined {
    if (this.#bearer) return bearerAuthorization(this.#bearer.read());
    if (this.#password) {
      const user = this.#user ? this.#user.read() : (this.#opts.basicAuthUsername ?? "");
      return basic(user, this.#password.read());
    }
    return this.#urlAuth;
  }

  #agentFor(): http.Agent {
    const ca = this.#ca?.read();
    if (this.#agent === undefined || ca !== this.#agentCa) {
      this.#agent?.destroy();
      const common = { keepAlive: true, maxSockets: 1, proxyEnv: this.#opts.proxyEnv ?? process.env };
      this.#agent =
        this.#url.protocol === "https:"
          ? new https.Agent({
              ...common,
              // TLS_CA_FILE adds to the trusted roots (Node's bundle plus NODE_EXTRA_CA_CERTS), as users expect.
              ...(ca !== undefined ? { ca: [...tls.getCACertificates("default"), ca] } : {}),
              rejectUnauthorized: !this.#opts.tlsInsecureSkipVerify,
            })
          : new http.Agent(common);
      this.#agentCa = ca;
    }
    return this.#agent;
  }

  /** POSTs one request body. Never throws; `signal` aborts (shutdown). */
  send(body: Uint8Array, signal?: AbortSignal): Promise<SendResult> {
    let headers: Record<string, string>;
    let agent: http.Agent;
    try {
      const auth = this.#authorization();
      agent = this.#agentFor();
      headers = { ...this.#fixedHeaders, "Content-Length": String(body.byteLength) };
      if (auth !== undefined) headers.Authorization = auth;
      // The last line of defence: config.ts and the file checks refuse such values already, but http.request would
      // throw on one, and a send must never throw.
      for (const [name, value] of Object.entries(headers)) {
        const why = unsendableHeaderValue(name, value);
        if (why !== undefined) throw new Error(`header ${name}: ${why}`);
      }
    } catch (e) {
      return Promise.resolve({ kind: "error", reason: "credentials", message: (e as Error).message });
    }
    const timeout = AbortSignal.timeout(this.#opts.timeoutMs);
    const combined = signal ? AbortSignal.any([timeout, signal]) : timeout;
    const mod = this.#url.protocol === "https:" ? https : http;
    return new Promise<SendResult>((resolve) => {
      let done = false;
      const finish = (r: SendResult): void => {
        if (!done) {
          done = true;
          resolve(r);
        }
      };
      const fail = (err: Error): void => {
        if (timeout.aborted)
          finish({ kind: "error", reason: "timeout", message: `no answer within ${this.#opts.timeoutMs} ms` });
        else finish({ kind: "error", reason: "network", message: describe(err) });
      };
      const req = mod.request(this.#url, { method: "POST", headers, agent, signal: combined }, (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (chunk: Buffer) => {
          if (kept < BODY_LOG_LIMIT) {
            const part = chunk.subarray(0, BODY_LOG_LIMIT - kept);
            chunks.push(part);
            kept += part.length;
          }
        });
        res.on("end", () => {
          finish({
            kind: "response",
            status: res.statusCode ?? 0,
            // Always one string: node keeps the first of duplicate Retry-After headers and discards the others.
            retryAfter: res.headers["retry-after"],
            body: Buffer.concat(chunks).toString("utf8"),
          });
        });
        res.on("error", fail);
        res.on("aborted", () => fail(new Error("response aborted")));
      });
      req.on("error", fail);
      req.end(body);
    });
  }

  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const text = code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  // The receiver URL lost its credentials in the constructor, but a proxy URL (HTTPS_PROXY) may carry some.
  return redactUserInfo(text);
}
