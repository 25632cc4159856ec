// Runs first of the node files (its name sorts first), so the run's shared bed starts once after it.
// Starting and stopping the node bed leaves the host as it found it: a snapshot of what the bed touches (iptables,
// links, routes, mounts, kubepods cgroups, sysctls, the directories under /run and /var it uses) taken before, then
// the bed started with a running pod and stopped, twice, and the snapshot compared after each stop.
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import { startNodeBed, TEST_IMAGE } from "./bed.ts";
import { HARD_CODED_PATHS, kubepodsCgroups, NODE, readSysctl, SHARED_PATHS, SYSCTLS } from "./hoststate.ts";
import { stopSharedNodeBed } from "./shared.ts";

// Daemons of other work on a shared machine (a Docker that builds images, its containerd and veths) change the host
// meanwhile; their lines are left out of the comparison. Nothing of the bed matches this.
const FOREIGN = /docker|moby|metrics-pusher-images|buildah|containers\/storage|netavark|podman/;

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    return `(${cmd} ${args.join(" ")} failed: ${(err as Error).message.split("\n")[0]})`;
  }
}

function listing(path: string): string[] {
  try {
    return readdirSync(path).map((e) => `${path}/${e}`);
  } catch {
    return [`${path} (absent)`];
  }
}

/** iptables-save without comments and counters; a table left with only its built-in chains, empty and ACCEPT, is
 * the same as no table (the nft backend keeps a table once anything touched it). */
function rules(family: string, table: string): string[] {
  const lines = sh(`${family}-save`, ["-t", table])
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ""));
  const meaningful = lines.filter((l) => !/^(\*\w+|COMMIT|:[A-Z]+ ACCEPT)$/.test(l));
  return meaningful.length === 0 ? [] : lines.map((l) => `${family}/${table} ${l}`);
}

function snapshot(): string[] {
  const lines = [
    ...["iptables", "ip6tables"].flatMap((f) => ["nat", "filter", "mangle"].flatMap((t) => rules(f, t))),
    ...sh("ip", ["-o", "link"])
      .split("\n")
      .map(
        (l) =>
          `link ${l
            .replace(/^\d+: /, "")
            .replace(/\\.*$/, "")
            .replace(/ qlen \d+/, "")}`,
      ),
    ...sh("ip", ["-o", "addr"])
      .split("\n")
      .map((l) => `addr ${l.replace(/^\d+: /, "").replace(/valid_lft.*$/, "")}`),
    ...sh("ip", ["route", "show", "table", "all"])
      .split("\n")
      .map((l) => `route ${l}`),
    ...readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" "))
      .map((f) => `mount ${f[4]} ${f.slice(f.indexOf("-") + 1).join(" ")}`),
    ...kubepodsCgroups().map((c) => `cgroup ${c}`),
    ...SYSCTLS.map((s) => `sysctl ${s}=${readSysctl(s)}`),
    ...[NODE.stateRoot, NODE.runRoot, ...HARD_CODED_PATHS, ...SHARED_PATHS].flatMap((p) =>
      listing(p).map((e) => `dir ${e}`),
    ),
  ];
  // The IPv6 link-local and multicast routes and addresses of our bridge would show up here only while it exists.
  return lines.filter((l) => !/^\w+ $/.test(l) && !FOREIGN.test(l)).sort();
}

function diff(before: string[], after: string[]): string {
  const b = new Set(before);
  const a = new Set(after);
  return [
    ...before.filter((l) => !a.has(l)).map((l) => `- ${l}`),
    ...after.filter((l) => !b.has(l)).map((l) => `+ ${l}`),
  ].join("\n");
}

it("starting and stopping the bed twice leaves the host as it was", { timeout: 30 * 60_000 }, async () => {
  // The run's shared bed (if an earlier file started it) holds the host lock and its own state: it goes first and
  // the next node test file starts it again.
  await stopSharedNodeBed();
  const log = (line: string): void => {
    if (/^\[(node|build|cleanup)\]/.test(line)) process.stderr.write(line + "\n");
  };
  const before = snapshot();
  for (const round of [1, 2]) {
    const bed = await startNodeBed({ log });
    let during: string[];
    try {
      process.stderr.write(`node bed: round ${round} started in ${bed.startupSeconds}s\n`);
      // A running pod, so that a sandbox, its netns and veth, its mounts and cgroups exist when the bed stops.
      const core = bed.cp.kubeConfig.makeApiClient(CoreV1Api);
      await core.createNamespacedPod({
        namespace: "default",
        body: {
          metadata: { name: "lifecycle" },
          spec: {
            containers: [{ name: "c", image: TEST_IMAGE, imagePullPolicy: "Never", command: ["sleep", "3600"] }],
            terminationGracePeriodSeconds: 1,
          },
        },
      });
      const deadline = Date.now() + 120_000;
      for (;;) {
        const pod = await core.readNamespacedPod({ namespace: "default", name: "lifecycle" });
        if (pod.status?.phase === "Running") break;
        if (Date.now() > deadline) assert.fail(`the lifecycle pod is not Running: ${JSON.stringify(pod.status)}`);
        await sleep(500);
      }
      during = snapshot();
    } finally {
      await bed.stop();
    }
    // The comparison can fail: while the bed ran, the snapshot saw it.
    const seen = diff(before, during);
    for (const mark of [
      `link ${NODE.bridge}`,
      "KUBE-SERVICES",
      `${NODE.forwardChain}`,
      "cgroup ",
      "/run/netns/cni-",
      "master mpnode0",
    ]) {
      assert.ok(seen.includes(mark), `round ${round}: the snapshot during the run shows ${mark}`);
    }
    const after = snapshot();
    assert.equal(diff(before, after), "", `round ${round}: the host differs after stop()`);
  }
});
