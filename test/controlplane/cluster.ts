// `make cluster`: the test control plane with a real node (test/node/bed.ts) for a person, until Ctrl-C.
// `--no-node` starts the control plane alone (no root needed; Pods stay Pending), as before the node existed.
import { join } from "node:path";
import { startControlPlane, versions } from "./harness.ts";
import { startNodeBed } from "../node/bed.ts";

const verbose = process.argv.includes("--verbose") || process.argv.includes("-v");
const withNode = !process.argv.includes("--no-node");

// The build's progress and the bed's steps always (a cold build takes minutes); the processes' own logs on request.
const log = (line: string): void => {
  const wanted =
    verbose ||
    /^\[(build|node|cleanup)\]/.test(line) ||
    line.includes("exited unexpectedly") ||
    line.includes("waiting");
  if (wanted) process.stderr.write(line + "\n");
};

let stop: () => Promise<void>;
if (withNode) {
  process.stderr.write(
    "Starting the control plane and a node (containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS)...\n",
  );
  const bed = await startNodeBed({ log });
  stop = () => bed.stop();
  const pids = Object.entries(bed.pids)
    .map(([name, pid]) => `${name}=${pid}`)
    .join(", ");
  process.stdout.write(`
Kubernetes v${versions().KUBERNETES_VERSION} with node ${bed.nodeName} Ready at ${bed.cp.serverUrl} in ${bed.startupSeconds}s.
Images on the node (imported, never pulled; use imagePullPolicy: Never or IfNotPresent):
${bed.images.map((i) => `  ${i}`).join("\n")}
Pods get addresses in 10.244.0.0/24 and resolve *.svc through CoreDNS; nothing they send leaves this machine.
Receivers for the pods listen on ${bed.bridgeIp} (the node's bridge). Process ids: ${pids}.
In another shell:

  export KUBECONFIG=${bed.kubeconfigPath}
  alias kubectl=${bed.kubectl}
  kubectl get nodes,pods -A

Logs of the processes: ${join(bed.cp.dir, "*.log")} and ${join(bed.stateDir, "*.log")}
Stop with Ctrl-C (everything is stopped and the host restored).
`);
} else {
  process.stderr.write(
    "Starting etcd, kube-apiserver and kube-controller-manager (building them first if needed)...\n",
  );
  const cp = await startControlPlane({ controllers: true, log });
  stop = () => cp.stop();
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
}

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping...\n`);
    void stop().then(
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
