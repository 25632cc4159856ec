// `make demo` non-interactively (DEMO_EXIT=1), as a child process: it must exit 0 only after series arrived in
// Prometheus from a pod the real node runs, show that pod (2/2 Running, the pusher's log) and leave no process behind.
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
// A cold control-plane or image build is not part of this budget: `make test` builds them first.
const DEMO_TIMEOUT_MS = 480_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

describe("make demo (DEMO_EXIT=1)", { timeout: DEMO_TIMEOUT_MS + 60_000 }, () => {
  let child: ReturnType<typeof spawn> | undefined;
  after(async () => {
    // Only when the test failed midway: SIGTERM makes the demo stop what it started; SIGKILL if it does not.
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const grace = new AbortController();
      await Promise.race([
        new Promise((r) => child!.once("exit", r)),
        sleep(30_000, undefined, { signal: grace.signal }).catch(() => undefined),
      ]);
      grace.abort();
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });

  it("installs the operator, runs the injected sample pod on the node, reports the series that arrived, exits 0 and stops everything", async () => {
    const output: string[] = [];
    child = spawn(process.execPath, ["--conditions=source", join(ROOT, "test/demo/demo.ts")], {
      cwd: ROOT,
      env: { ...process.env, DEMO_EXIT: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.setEncoding("utf8").on("data", (s: string) => output.push(s));
    child.stderr!.setEncoding("utf8").on("data", (s: string) => output.push(s));
    const timeout = new AbortController();
    const exit = await Promise.race([
      new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        child!.once("exit", (code, signal) => r({ code, signal })),
      ),
      sleep(DEMO_TIMEOUT_MS, undefined, { signal: timeout.signal }).catch(() => undefined),
    ]);
    timeout.abort();
    const text = output.join("");
    const context = `\n--- demo output ---\n${text}`;
    assert.ok(exit, `the demo did not finish within ${DEMO_TIMEOUT_MS / 1000}s${context}`);
    assert.equal(exit.code, 0, `demo exit (${exit.signal ?? exit.code})${context}`);

    // The operator, installed from config/default, injected the sidecar through the webhook's Service.
    assert.match(text, /metricspusher\.dev\/injected: builders@[0-9a-f]{16}/, `no injected Pod shown${context}`);
    assert.match(text, /^metrics-pusher-operator-\S+\s+1\/1\s+Running\s/m, `no operator pod Running${context}`);
    assert.match(
      text,
      /^builders\s+http:\/\/prometheus\.monitoring\.svc:9090\/api\/v1\/write\s+30s\s+1\s+True\s/m,
      `kubectl get mp row${context}`,
    );
    const pod = /Pod builds\/(builder-[a-z0-9]+-[a-z0-9]+), as the webhook admitted it/.exec(text)?.[1];
    assert.ok(pod, `no Pod name${context}`);
    // The kubelet runs it: the builder and the native sidecar ready, and the sidecar's own log.
    assert.match(
      text,
      new RegExp(`^${pod}\\s+2/2\\s+Running\\s`, "m"),
      `kubectl get pods: ${pod} not 2/2 Running${context}`,
    );
    assert.match(text, /^\{"level":30,.*"msg":"Pusher started"\}$/m, `the pusher's log (kubectl logs)${context}`);

    // The series read back from Prometheus, with the labels the pusher must set.
    const arrived =
      /Series arrived: (\d+) from the pusher itself \(job="metrics-pusher"\), (\d+) scraped from the builder \(job="builder"\)/.exec(
        text,
      );
    assert.ok(arrived, `no "Series arrived" line${context}`);
    assert.ok(Number(arrived[1]) > 0 && Number(arrived[2]) > 0, `series counts ${arrived[1]}, ${arrived[2]}${context}`);
    const row = (metric: string, job: string): RegExp =>
      new RegExp(`^\\s+${metric}\\s+${job}\\s+\\S+\\s+builds\\s+${pod}\\s+cluster=demo`, "m");
    assert.match(text, row("knative_lambda_metric_pusher_heartbeat", "metrics-pusher"), `heartbeat row${context}`);
    assert.match(text, row("up", "builder"), `up row${context}`);
    assert.match(text, row("http_requests_total", "builder"), `builder series row${context}`);
    assert.match(text, /^\s+up\s+builder\s.*\s1$/m, `up{job="builder"} is 1${context}`);

    // Everything it started was stopped by pid: the node bed's processes and Prometheus.
    const pids = [...text.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1])).filter((p) => p !== child!.pid);
    assert.ok(
      pids.length >= 8,
      `expected the pids of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy, CoreDNS and Prometheus; got ${pids.join(",")}${context}`,
    );
    const left = pids.filter(alive);
    assert.deepEqual(left, [], `processes left running: ${left.join(",")}${context}`);
    assert.match(text, /stopped the node bed/, `the node bed stopped${context}`);
  });
});
