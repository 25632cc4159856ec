// The images `make images` builds, checked as the node bed receives them: the `docker save` archives are loaded into
// a dockerd of this test's own (not the build's), and each check runs a container or reads an image config. What is
// proven: the final images hold no CA of this machine's TLS interception and no NODE_EXTRA_CA_CERTS (the build
// stage trusts it, the final stage must not), run as uid 65532 under the sidecar's restrictions, carry production
// dependencies only and none of the project's tests, and run Node 24; the builder stand-in serves /metrics.
// A build or a dockerd that fails is a failure naming the step, never a skip.

import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SCRIPTS = path.join(ROOT, "test/node/images");
const CACHE =
  process.env.METRICS_PUSHER_CACHE ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "metrics-pusher");
// Debian's client: a newer one elsewhere on PATH may speak an API the daemon lacks.
const DOCKER = "/usr/bin/docker";
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const OPERATOR = `ghcr.io/metrics-pusher/operator:${VERSION}`;
const PUSHER = `ghcr.io/metrics-pusher/pusher:${VERSION}`;
const STANDIN = /^\s*image:\s*(\S+)/m.exec(readFileSync(path.join(ROOT, "config/samples/builder.yaml"), "utf8"))?.[1];
const FINAL = [OPERATOR, PUSHER] as const;
// The sidecar's securityContext, as the operator injects it.
const RESTRICTED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"];

const DOCKERD_NAME = `images-test-${process.pid}`;
const DATA_ROOT = path.join(CACHE, "images", `.test-${process.pid}`);
let dockerHost = "";

function tail(text: string, lines = 30): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", env, maxBuffer: 64 << 20, timeout: 30 * 60_000 });
}

function docker(args: string[]): SpawnSyncReturns<string> {
  return run(DOCKER, args, { ...process.env, DOCKER_HOST: dockerHost });
}

/** Runs `node -e script` in the image (root, so every file is readable) and returns its stdout. */
function nodeIn(image: string, script: string, extra: string[] = []): string {
  const r = docker([
    "run",
    "--rm",
    "--network",
    "none",
    "--user",
    "0",
    ...extra,
    "--entrypoint",
    "node",
    image,
    "-e",
    script,
  ]);
  assert.equal(r.status, 0, `node -e in ${image} exited ${r.status}: ${tail(r.stderr)}`);
  return r.stdout;
}

before(() => {
  // The build script is a no-op when its stamps are current; cold it builds everything (minutes).
  const build = run(path.join(SCRIPTS, "build.sh"), []);
  assert.equal(
    build.status,
    0,
    `make images (test/node/images/build.sh) failed with exit ${build.status}:\n${tail(build.stderr)}`,
  );
  assert.deepEqual(build.stdout.trim().split("\n"), [OPERATOR, PUSHER], "it prints the two references");

  const start = run(path.join(SCRIPTS, "dockerd.sh"), ["start", DOCKERD_NAME, DATA_ROOT]);
  assert.equal(start.status, 0, `step "start dockerd" failed (exit ${start.status}):\n${tail(start.stderr)}`);
  dockerHost = start.stdout.trim();

  for (const name of [`operator-${VERSION}`, `pusher-${VERSION}`, "builder-standin"]) {
    const tar = path.join(CACHE, "images", `${name}.tar`);
    const load = docker(["load", "-i", tar]);
    assert.equal(load.status, 0, `step "docker load -i ${tar}" failed: ${tail(load.stderr)}`);
  }
});

after(() => {
  if (dockerHost !== "") docker(["rm", "-f", "images-test-standin"]);
  const stop = run(path.join(SCRIPTS, "dockerd.sh"), ["stop", DOCKERD_NAME]);
  rmSync(DATA_ROOT, { recursive: true, force: true });
  assert.equal(stop.status, 0, `dockerd.sh stop ${DOCKERD_NAME}: ${stop.stderr}`);
});

describe("the final images", () => {
  it("load from the archives under the names the manifests use", () => {
    const r = docker(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert.equal(r.status, 0, r.stderr);
    for (const ref of [OPERATOR, PUSHER, STANDIN]) assert.ok(r.stdout.split("\n").includes(ref!), `${ref} loaded`);
  });

  for (const image of FINAL) {
    it(`${image}: config runs as 65532:65532 with no NODE_EXTRA_CA_CERTS`, () => {
      const r = docker(["image", "inspect", "-f", "{{json .Config}}", image]);
      assert.equal(r.status, 0, r.stderr);
      const config = JSON.parse(r.stdout) as { User: string; Env: string[] | null };
      assert.equal(config.User, "65532:65532");
      const env = config.Env ?? [];
      assert.ok(env.includes("NODE_ENV=production"), `Env was read: ${env.join(" ")}`);
      assert.deepEqual(
        env.filter((e) => e.startsWith("NODE_EXTRA_CA_CERTS=")),
        [],
        "the build stage's extra CA variable stays out of the final image",
      );
    });

    it(`${image}: holds none of this host's extra CAs`, () => {
      // Every CA the host trusts beyond the system's, as the build stage trusted them.
      const dir = "/usr/local/share/ca-certificates";
      const cas = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".crt")) : [];
      // A base64 line from each certificate's body: it appears in any copy or bundle of that certificate.
      const needles = cas.map((f) => {
        const body = readFileSync(path.join(dir, f), "utf8")
          .split("\n")
          .filter((l) => /^[A-Za-z0-9+/]{64}$/.test(l));
        assert.ok(body.length > 2, `${f} is a PEM certificate`);
        return body[1]!;
      });
      const scan = `
        const fs = require("node:fs"), path = require("node:path");
        const needles = ${JSON.stringify(needles)}, hits = [];
        const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) { if (!["/proc", "/sys", "/dev"].includes(p)) walk(p); }
          else if (e.isFile()) { const t = fs.readFileSync(p, "latin1"); if (needles.some((n) => t.includes(n))) hits.push(p); }
        } };
        walk("/");
        console.log(JSON.stringify(hits));`;
      // The same scan finds them when they are there: the host's CA directory mounted into the container.
      const control = JSON.parse(nodeIn(image, scan, ["-v", `${dir}:/control:ro`])) as string[];
      assert.deepEqual(
        control.filter((p) => p.startsWith("/control/")).sort(),
        cas.map((f) => `/control/${f}`).sort(),
        "the scan finds a mounted CA",
      );
      assert.deepEqual(
        control.filter((p) => !p.startsWith("/control/")),
        [],
        "no file of the image holds an extra CA",
      );
      // Nor any CA directory the base lacks: the local base, like the official slim one, has no ca-certificates.
      const dirs = JSON.parse(
        nodeIn(
          image,
          `console.log(JSON.stringify(["/usr/local/share/ca-certificates", "/etc/ssl/certs"].filter((d) => require("node:fs").existsSync(d))))`,
        ),
      ) as string[];
      assert.deepEqual(dirs, []);
    });

    it(`${image}: node is v24 and runs as uid 65532 read-only, without capabilities`, () => {
      const r = docker([
        "run",
        "--rm",
        "--network",
        "none",
        ...RESTRICTED,
        "--entrypoint",
        "node",
        image,
        "-p",
        'process.getuid() + ":" + process.getgid() + " " + process.version',
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout.trim(), /^65532:65532 v24\.\d+\.\d+$/);
    });

    it(`${image}: production dependencies only, and none of the project's tests`, () => {
      const listing = JSON.parse(
        nodeIn(
          image,
          `const fs = require("node:fs");
          const top = fs.readdirSync("/app/node_modules").filter((n) => !n.startsWith("."));
          const names = top.flatMap((n) => n.startsWith("@") ? fs.readdirSync("/app/node_modules/" + n).map((s) => n + "/" + s) : [n]);
          const own = [];
          const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = d + "/" + e.name;
            if (e.name === "node_modules") continue;
            if (/\\.test\\./.test(e.name) || (e.isDirectory() && e.name === "test")) own.push(p);
            if (e.isDirectory()) walk(p);
          } };
          walk("/app");
          console.log(JSON.stringify({ names, own }));`,
        ),
      ) as { names: string[]; own: string[] };
      const lock = JSON.parse(readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as {
        packages: Record<string, { dev?: boolean }>;
      };
      for (const dep of ["pino", "prom-client"]) assert.ok(listing.names.includes(dep), `${dep} is installed`);
      for (const dev of ["typescript", "fast-check", "prettier", "node", "@types/snappyjs"]) {
        assert.ok(!listing.names.includes(dev), `dev dependency ${dev} is not in the image`);
      }
      const devOnly = listing.names.filter((n) => lock.packages[`node_modules/${n}`]?.dev === true);
      assert.deepEqual(devOnly, [], "no package the lock file marks dev-only");
      const unknown = listing.names.filter(
        (n) => !n.startsWith("@metrics-pusher/") && lock.packages[`node_modules/${n}`] === undefined,
      );
      assert.deepEqual(unknown, [], "every package comes from the lock file");
      // /app holds the workspaces' dist/ and package.json only (node_modules/@metrics-pusher links to them).
      assert.deepEqual(listing.own, [], "no *.test.* file and no test/ directory outside node_modules");
    });
  }

  it(`${PUSHER}: exits 2 naming the missing Remote-Write URL, under the sidecar's restrictions`, () => {
    const r = docker(["run", "--rm", "--network", "none", ...RESTRICTED, PUSHER]);
    assert.equal(r.status, 2, `exit status (stderr: ${tail(r.stderr, 5)})`);
    assert.match(r.stderr, /PROMETHEUS_REMOTE_WRITE_URL=\(unset\): is required/);
  });
});

describe("the builder stand-in", () => {
  it(`${STANDIN} serves Prometheus text on :8080/metrics as uid 65534, read-only, without capabilities`, () => {
    const start = docker([
      "run",
      "-d",
      "--name",
      "images-test-standin",
      "--network",
      "none",
      ...RESTRICTED,
      "--user",
      "65534:65534",
      STANDIN!,
    ]);
    assert.equal(start.status, 0, start.stderr);
    // Read from inside the stand-in's own network namespace, by the pusher image's node: no host port is opened.
    const r = docker([
      "run",
      "--rm",
      "--network",
      "container:images-test-standin",
      "--entrypoint",
      "node",
      PUSHER,
      "-e",
      `(async () => {
        for (let i = 0; ; i++) {
          try { await fetch("http://127.0.0.1:8080/"); break; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
        }
        const res = await fetch("http://127.0.0.1:8080/metrics");
        console.log(res.status + " " + res.headers.get("content-type") + "\\n" + (await res.text()));
      })()`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const [head, ...body] = r.stdout.split("\n");
    assert.match(head!, /^200 text\/plain; version=0\.0\.4/);
    const text = body.join("\n");
    assert.match(text, /^version\{version="v0\.5\.0"\} 1$/m);
    assert.match(text, /^http_requests_total\{code="200",method="get"\} [1-9]\d*$/m, "the request to / was counted");
    assert.match(text, /^# TYPE http_request_duration_seconds histogram$/m);
    const uid = docker(["inspect", "-f", "{{.Config.User}} {{.State.Running}}", "images-test-standin"]);
    assert.equal(uid.stdout.trim(), "65534:65534 true");
  });
});
