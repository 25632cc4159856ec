import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RemoteWriteClient, type ClientOptions } from "./client.ts";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function listen(server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function recorder(seen: Seen[], handler: Handler): Handler {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) });
      handler(req, res);
    });
  };
}

const logs: { level: string; obj: object; msg: string }[] = [];
const log = {
  info: (obj: object, msg: string) => void logs.push({ level: "info", obj, msg }),
  warn: (obj: object, msg: string) => void logs.push({ level: "warn", obj, msg }),
};

const dir = mkdtempSync(join(tmpdir(), "client-test-"));
const servers: (http.Server | https.Server)[] = [];
const clients: RemoteWriteClient[] = [];
after(() => {
  for (const c of clients) c.close();
  for (const s of servers) {
    s.closeAllConnections?.();
    s.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

let handler: Handler = (_req, res) => res.writeHead(204).end();
const seen: Seen[] = [];
let base = "";

function client(opts: Partial<ClientOptions> = {}): RemoteWriteClient {
  const c = new RemoteWriteClient({
    url: `${base}/api/v1/write`,
    timeoutMs: 2000,
    userAgent: "metrics-pusher/test",
    log,
    proxyEnv: {},
    ...opts,
  });
  clients.push(c);
  return c;
}

before(async () => {
  const server = http.createServer(recorder(seen, (req, res) => handler(req, res)));
  servers.push(server);
  base = `http://127.0.0.1:${await listen(server)}`;
});

describe("RemoteWriteClient", () => {
  it("POSTs the body with the four protocol headers; user headers cannot override them", async () => {
    seen.length = 0;
    handler = (_req, res) => res.writeHead(204).end();
    const c = client({
      headers: {
        "X-Scope-OrgID": "team-a",
        "User-Agent": "evil",
        "content-type": "text/plain",
        Authorization: "Bearer no",
      },
    });
    const r = await c.send(Uint8Array.from([1, 2, 3]));
    assert.deepEqual(r, { kind: "response", status: 204, retryAfter: undefined, body: "" });
    const req = seen[0]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/api/v1/write");
    assert.deepEqual([...req.body], [1, 2, 3]);
    assert.equal(req.headers["content-encoding"], "snappy");
    assert.equal(req.headers["content-type"], "application/x-protobuf");
    assert.equal(req.headers["x-prometheus-remote-write-version"], "0.1.0");
    assert.equal(req.headers["user-agent"], "metrics-pusher/test");
    assert.equal(req.headers["x-scope-orgid"], "team-a");
    assert.equal(req.headers.authorization, undefined);
  });

  it("returns status, Retry-After and at most 1 KiB of the body", async () => {
    handler = (_req, res) => res.writeHead(429, { "Retry-After": "7" }).end("x".repeat(5000));
    const r = await client().send(new Uint8Array(1));
    assert.equal(r.kind, "response");
    assert.equal(r.kind === "response" && r.status, 429);
    assert.equal(r.kind === "response" && r.retryAfter, "7");
    assert.equal(r.kind === "response" && r.body.length, 1024);
  });

  it("uses credentials from the URL as basic auth, never in the request line", async () => {
    seen.length = 0;
    handler = (_req, res) => res.writeHead(200).end();
    const c = client({ url: `${base.replace("//", "//al%40ice:p%3Ass@")}/w` });
    assert.ok(!c.displayUrl.includes("p%3Ass"), c.displayUrl);
    await c.send(new Uint8Array(1));
    assert.equal(seen[0]!.headers.authorization, `Basic ${Buffer.from("al@ice:p:ss").toString("base64")}`);
    assert.equal(seen[0]!.url, "/w");
  });

  it("re-reads the bearer token file when it changes; a missing file is an error for that request only", async () => {
    seen.length = 0;
    handler = (_req, res) => res.writeHead(200).end();
    const file = join(dir, "token");
    const c = client({ bearerTokenFile: file });
    const missing = await c.send(new Uint8Array(1));
    assert.equal(missing.kind, "error");
    assert.equal(missing.kind === "error" && missing.reason, "credentials");
    assert.equal(seen.length, 0, "nothing is sent without the credential");
    assert.ok(logs.some((l) => l.level === "warn" && JSON.stringify(l.obj).includes(file)));
    writeFileSync(file, "tok-1\n");
    await c.send(new Uint8Array(1));
    assert.equal(seen.at(-1)!.headers.authorization, "Bearer tok-1");
    // Kubernetes swaps the file atomically.
    writeFileSync(`${file}.new`, "tok-2-longer");
    renameSync(`${file}.new`, file);
    await c.send(new Uint8Array(1));
    assert.equal(seen.at(-1)!.headers.authorization, "Bearer tok-2-longer");
  });

  it("a rotated token HTTP cannot send is a credentials error, logged once; the fixed file is used at once", async () => {
    seen.length = 0;
    logs.length = 0;
    handler = (_req, res) => res.writeHead(200).end();
    const file = join(dir, "rotated");
    writeFileSync(file, "good-1");
    const c = client({ bearerTokenFile: file });
    assert.equal((await c.send(new Uint8Array(1))).kind, "response");
    for (const bad of ["Qz\nQz", "Qz€Qz", "Qz\u0001Qz"]) {
      writeFileSync(`${file}.new`, bad);
      renameSync(`${file}.new`, file);
      // Twice: a retry of the same batch sees the same problem and does not log it again.
      for (let i = 0; i < 2; i++) {
        const r = await c.send(new Uint8Array(1));
        assert.equal(r.kind === "error" && r.reason, "credentials", JSON.stringify(r));
        assert.ok(r.kind === "error" && r.message.includes(file), r.kind === "error" ? r.message : "");
        assert.ok(r.kind === "error" && !r.message.includes("Qz"), "the token leaked into the error");
      }
    }
    assert.equal(seen.length, 1, "a request went out with an unsendable token");
    const warned = logs.filter(
      (l) => l.level === "warn" && l.msg === "Cannot use file content; requests wait until it is fixed",
    );
    assert.equal(warned.length, 1, `one warning for the streak, not one per attempt: ${JSON.stringify(logs)}`);
    assert.ok(!JSON.stringify(logs).includes("Qz"), "the token leaked into a log line");
    writeFileSync(`${file}.new`, "good-2");
    renameSync(`${file}.new`, file);
    assert.equal((await c.send(new Uint8Array(1))).kind, "response");
    assert.equal(seen.at(-1)!.headers.authorization, "Bearer good-2");
    assert.ok(logs.some((l) => l.level === "info" && l.msg === "File is readable again"));
  });

  it("reads basic auth from files", async () => {
    seen.length = 0;
    handler = (_req, res) => res.writeHead(200).end();
    writeFileSync(join(dir, "user"), "bob\n");
    writeFileSync(join(dir, "pw"), "s3cret\n");
    await client({ basicAuthUsernameFile: join(dir, "user"), basicAuthPasswordFile: join(dir, "pw") }).send(
      new Uint8Array(1),
    );
    assert.equal(seen[0]!.headers.authorization, `Basic ${Buffer.from("bob:s3cret").toString("base64")}`);
    await client({ basicAuthUsername: "carol", basicAuthPasswordFile: join(dir, "pw") }).send(new Uint8Array(1));
    assert.equal(seen[1]!.headers.authorization, `Basic ${Buffer.from("carol:s3cret").toString("base64")}`);
  });

  it("times out a receiver that does not answer", async () => {
    handler = () => {
      /* never answers */
    };
    const t0 = Date.now();
    const r = await client({ timeoutMs: 300 }).send(new Uint8Array(1));
    assert.equal(r.kind === "error" && r.reason, "timeout");
    assert.ok(Date.now() - t0 < 2000);
  });

  it("reports a refused connection as a network error", async () => {
    const s = http.createServer();
    const port = await listen(s);
    await new Promise((r) => s.close(r));
    const r = await client({ url: `http://127.0.0.1:${port}/` }).send(new Uint8Array(1));
    assert.equal(r.kind === "error" && r.reason, "network");
    assert.match(r.kind === "error" ? r.message : "", /ECONNREFUSED/);
  });

  it("reports a connection reset as a network error", async () => {
    handler = (req) => req.socket.destroy();
    const r = await client().send(new Uint8Array(1));
    assert.equal(r.kind === "error" && r.reason, "network");
  });

  it("goes through HTTP_PROXY, and not for hosts in NO_PROXY", async () => {
    const proxied: string[] = [];
    const proxy = http.createServer((req, res) => {
      proxied.push(req.url ?? "");
      req.resume();
      req.on("end", () => res.writeHead(202).end());
    });
    servers.push(proxy);
    const proxyPort = await listen(proxy);
    const viaProxy = await client({ proxyEnv: { HTTP_PROXY: `http://127.0.0.1:${proxyPort}` } }).send(
      new Uint8Array(1),
    );
    assert.equal(viaProxy.kind === "response" && viaProxy.status, 202);
    assert.deepEqual(proxied, [`${base}/api/v1/write`]);
    handler = (_req, res) => res.writeHead(200).end();
    const direct = await client({
      proxyEnv: { HTTP_PROXY: `http://127.0.0.1:${proxyPort}`, NO_PROXY: "127.0.0.1" },
    }).send(new Uint8Array(1));
    assert.equal(direct.kind === "response" && direct.status, 200);
    assert.equal(proxied.length, 1);
  });

  it("never repeats proxy credentials in an error", async () => {
    const s = http.createServer();
    const port = await listen(s);
    await new Promise((r) => s.close(r));
    const r = await client({ proxyEnv: { HTTP_PROXY: `http://user:hunter2@127.0.0.1:${port}` } }).send(
      new Uint8Array(1),
    );
    assert.equal(r.kind, "error");
    assert.ok(!JSON.stringify(r).includes("hunter2"), JSON.stringify(r));
  });

  it("trusts TLS_CA_FILE for https, refuses an unknown CA, and skips verification when asked", async (t) => {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          key,
          "-out",
          cert,
        ],
        { stdio: "pipe" },
      );
    } catch (e) {
      assert.fail(`openssl is needed to make a test certificate: ${(e as Error).message}`);
    }
    const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200).end());
    });
    servers.push(server);
    const url = `https://127.0.0.1:${await listen(server)}/w`;
    const untrusted = await client({ url }).send(new Uint8Array(1));
    assert.equal(untrusted.kind === "error" && untrusted.reason, "network", JSON.stringify(untrusted));
    const trusted = await client({ url, tlsCaFile: cert }).send(new Uint8Array(1));
    assert.equal(trusted.kind === "response" && trusted.status, 200, JSON.stringify(trusted));
    const skipped = await client({ url, tlsInsecureSkipVerify: true }).send(new Uint8Array(1));
    assert.equal(skipped.kind === "response" && skipped.status, 200, JSON.stringify(skipped));
    t.diagnostic("https verified with TLS_CA_FILE");
  });
});
