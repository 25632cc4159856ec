// `make cluster`: the test control plane (with controllers) for a person, until Ctrl-C.
import { join } from "node:path";
import { startControlPlane, versions } from "./harness.ts";

const verbose = process.argv.includes("--verbose") || process.argv.includes("-v");

process.stderr.write("Starting etcd, kube-apiserver and kube-controller-manager (building them first if needed)...\n");
const cp = await startControlPlane({
  controllers: true,
  // The build's progress always (a cold build takes minutes); the processes' own logs only on request.
  log: (line) => {
    const wanted = verbose || line.startsWith("[build]") || line.includes("exited unexpectedly");
    if (wanted) process.stderr.write(line + "\n");
  },
});
const kubectl = join(cp.binDir, "kubectl");
const pids = Object.entries(cp.pids)
  .map(([name, pid]) => `${name}=${pid}`)
  .join(", ");

process.stdout.write(`
Control plane (Kubernetes v${versions().KUBERNETES_VERSION}) ready at ${cp.serverUrl} in ${cp.startupSeconds}s.
No scheduler and no kubelet: Pods stay Pending. Process ids: ${pids}.
In another shell:

  export KUBECONFIG=${cp.kubeconfigPath}
  alias kubectl=${kubectl}
  kubectl get namespaces

kubectl (v${versions().KUBERNETES_VERSION}, built here): ${kubectl}
Logs of the processes: ${join(cp.dir, "*.log")}
Stop with Ctrl-C (everything is stopped and ${cp.dir} removed).
`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping the control plane...\n`);
    void cp.stop().then(
      () => {
        process.stderr.write("Stopped.\n");
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`Stopping failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  });
}

// The harness does not hold the event loop for its processes; this does, until a signal.
setInterval(() => {}, 1 << 30);
