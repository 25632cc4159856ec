// Wiring only: config → logger → clients → servers (metrics, probes, webhook) → informers → controller → shutdown.
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { CoreV1Api, CustomObjectsApi, VersionApi } from "@kubernetes/client-node";
import type { KubernetesListObject, V1Namespace, V1Node } from "@kubernetes/client-node";
import { pino } from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import { createAdmissionObserver } from "./admission.ts";
import { GROUP, PLURAL, VERSION } from "./api/index.ts";
import type { MetricsPusher } from "./api/index.ts";
import { OperatorConfigError, parseOperatorConfig, settingsHelp } from "./config.ts";
import type { OperatorConfig } from "./config.ts";
import { startControllers } from "./controller/index.ts";
import type { Controllers } from "./controller/index.ts";
import { owningWorkload } from "./controller/workloads.ts";
import { PooledKubeConfig } from "./kube/kubeconfig.ts";
import { createInformer } from "./kube/informer.ts";
import { NativeSidecarSupport } from "./inject/capabilities.ts";
import { createDirCertSource, createSecretCertSource, kubeCertStore } from "./webhook/certs.ts";
import { createEventRecorder, kubeEventSink } from "./events.ts";
import { createOperatorMetrics } from "./metrics.ts";
import type { MutateSettings } from "./inject/mutate.ts";
import { createAdmissionHandler, createWebhookServer, pemCertificates } from "./webhook/server.ts";
import type { SidecarDefaults } from "./inject/sidecar.ts";

const SHUTDOWN_TIMEOUT_MS = 15_000;

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(
    `metrics-pusher operator. Settings (environment variable or flag; a flag wins):\n${settingsHelp()}\n`,
  );
  process.exit(0);
}

const config: OperatorConfig = (() => {
  try {
    return parseOperatorConfig(process.env, process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof OperatorConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
})();

const log = pino({ level: config.logLevel, base: { pod: config.podName } });
log.info(
  { version: config.version, pusherImage: config.pusherImage, webhookUrl: config.webhookUrl, certDir: config.certDir },
  "Starting metrics-pusher operator",
);

const kc = new PooledKubeConfig();
kc.loadFromDefault();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "metrics_pusher_operator_" });
const metrics = createOperatorMetrics(registry);
const events = createEventRecorder({
  sink: kubeEventSink(kc),
  log: log.child({ component: "events" }),
  metrics,
  instance: config.podName,
});

const readiness = { certificate: false, informers: false, serverVersion: false, webhook: false, shuttingDown: false };
const isReady = () =>
  readiness.certificate &&
  readiness.informers &&
  readiness.serverVersion &&
  readiness.webhook &&
  !readiness.shuttingDown;

const metricsServer = createServer((req, res) => {
  if (req.url !== "/metrics") return void res.writeHead(404).end();
  registry.metrics().then(
    (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
    (err: unknown) => res.writeHead(500).end(String(err)),
  );
});
const probeServer = createServer((req, res) => {
  if (req.url === "/healthz") return void res.writeHead(200).end("ok");
  if (req.url === "/readyz")
    return void res
      .writeHead(isReady() ? 200 : 503, { "content-type": "application/json" })
      .end(JSON.stringify(readiness));
  res.writeHead(404).end();
});
await listen(metricsServer, config.metricsPort, config.bindAddress);
await listen(probeServer, config.probePort, config.bindAddress);

// Informers on every replica: the webhook answers from them.
const informerError = (informer: string) => () => metrics.informerRestarts.inc({ informer });
const pushers = createInformer<MetricsPusher>({
  kc,
  log,
  name: "metricspushers",
  path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
  list: () =>
    custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as Promise<
      KubernetesListObject<MetricsPusher>
    >,
  onError: informerError("metricspushers"),
});
const namespaces = createInformer<V1Namespace>({
  kc,
  log,
  name: "namespaces",
  path: "/api/v1/namespaces",
  list: () => core.listNamespace(),
  onError: informerError("namespaces"),
});
const nodes = createInformer<V1Node>({
  kc,
  log,
  name: "nodes",
  path: "/api/v1/nodes",
  list: () => core.listNode(),
  onError: informerError("nodes"),
});
const nativeSupport = new NativeSidecarSupport();
nodes.on("add", (n) => nativeSupport.node(n));
nodes.on("update", (n) => nativeSupport.node(n));
nodes.on("delete", (n) => nativeSupport.node(n, true));
for (const i of [pushers, namespaces, nodes]) i.start();

const versionAbort = new AbortController();
// sidecarMode Auto depends on the apiserver's version, and the config hash on the rendered container: injecting or
// stamping before the version is known would render the wrong mode and re-roll every workload once it arrives.
const { promise: serverVersionKnown, resolve: versionRead } = Promise.withResolvers<void>();
void (async () => {
  const api = kc.makeApiClient(VersionApi);
  for (let delay = 1000; !versionAbort.signal.aborted;) {
    try {
      nativeSupport.setServerVersion((await api.getCode()).gitVersion);
      readiness.serverVersion = true;
      versionRead();
      delay = 10 * 60_000; // an apiserver upgrade is picked up within this period
    } catch (err) {
      log.warn({ err: (err as Error).message }, "Could not read the apiserver version; retrying");
      delay = Math.min(delay * 2, 30_000);
    }
    await new Promise((r) => setTimeout(r, delay).unref());
  }
})();

const namespaceLabels = (name: string) => namespaces.get("", name)?.metadata?.labels;
const defaults = (): SidecarDefaults => {
  const native = nodes.hasSynced() && nativeSupport.supported;
  metrics.nativeSidecarsSupported.set(native ? 1 : 0);
  return {
    image: config.pusherImage,
    runAsUser: config.sidecarRunAsUser,
    resources: config.sidecarResources,
    nativeSidecarsSupported: native,
  };
};
const settings: MutateSettings = {
  systemNamespaces: config.systemNamespaces,
  watchNamespaces: config.watchNamespaces,
  imageAllowList: config.imageAllowList,
};

let controllers: Controllers | undefined;
const certLog = log.child({ component: "certs" });
const checkIntervalMs = Math.max(1000, Math.min(30_000, Math.floor(config.certValidityMs / 10)));
const certs = config.certDir
  ? createDirCertSource({ dir: config.certDir, log: certLog, metrics, checkIntervalMs })
  : createSecretCertSource({
      store: kubeCertStore(kc, config.podNamespace, config.certSecretName, config.webhookConfigName),
      spec: {
        dnsNames: config.certDnsNames,
        ipAddresses: config.certIpAddresses,
        leafValidityMs: config.certValidityMs,
        caValidityMs: config.caValidityMs,
      },
      registration: config,
      // Without leader election there is a single replica, which may renew.
      isLeader: () => Promise.resolve(controllers?.isLeader() ?? !config.leaderElection),
      log: certLog,
      metrics,
      checkIntervalMs,
    });

let shutdownStarted = false;
let webhookServer: import("node:https").Server | undefined;
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

await run().catch((err: unknown) => {
  // A shutdown during start-up aborts it (certs.start() rejects once stopped); anything else is fatal.
  if (shutdownStarted) return;
  log.fatal({ err }, "Start-up failed");
  process.exit(1);
});

async function run(): Promise<void> {
  const material = await certs.start();
  let clientCa = config.webhookClientCaFile
    ? pemCertificates(readFileSync(config.webhookClientCaFile, "utf8"))
    : undefined;
  readiness.certificate = true;

  // Answering before the caches are filled would skip pods that should be injected; not answering fails open
  // (failurePolicy Ignore) and the controller's drift repair catches up. So: sync first, then listen.
  await Promise.all([pushers.waitForSync(), namespaces.waitForSync(), nodes.waitForSync(), serverVersionKnown]);
  readiness.informers = true;

  const server = createWebhookServer(
    createAdmissionHandler({
      observer: createAdmissionObserver({
        log: log.child({ component: "webhook" }),
        metrics,
        events,
        pushers: () => pushers.list(),
        // From the leader's caches only; on another replica Events go to the MetricsPusher alone.
        workloadOf: (namespace, pod) => {
          const w = owningWorkload(pod, (kind, name) => controllers?.cachedWorkload(namespace, kind, name));
          return w ? { apiVersion: "apps/v1", kind: w.kind, namespace, name: w.name, uid: w.uid } : undefined;
        },
      }),
      pushers: () => pushers.list(),
      namespaceLabels,
      defaults,
      settings,
    }),
    { key: material.key, cert: material.cert, ca: clientCa },
  );
  webhookServer = server;
  let serving = material;
  certs.onChange((m) => {
    serving = m;
    server.setSecureContext({ key: m.key, cert: m.cert, ...(clientCa ? { ca: clientCa } : {}) });
  });
  if (config.webhookClientCaFile) {
    const file = config.webhookClientCaFile;
    // Polled like the serving certificate in directory mode: mounted Secrets change by symlink swap.
    watchFile(file, { interval: checkIntervalMs, persistent: false }, () => {
      try {
        const next = pemCertificates(readFileSync(file, "utf8"));
        if (next.length === 0 || next.join("\n") === clientCa?.join("\n")) return;
        server.setSecureContext({ key: serving.key, cert: serving.cert, ca: next });
        clientCa = next;
        log.info({ file }, "Reloaded the webhook's client CA");
      } catch (err) {
        log.warn(
          { file, err: (err as Error).message },
          "Could not reload the webhook's client CA; keeping the last one",
        );
      }
    });
  }
  await listen(server, config.webhookPort, config.bindAddress);
  readiness.webhook = true;
  log.info(
    { port: config.webhookPort, metricsPort: config.metricsPort, probePort: config.probePort },
    "Webhook serving",
  );

  if (!shutdownStarted) {
    controllers = startControllers({
      kc,
      config,
      log,
      metrics,
      events,
      pushers,
      namespaceLabels,
      defaults,
      settings,
    });
  }
}

async function shutdown(signal: string): Promise<void> {
  if (shutdownStarted) {
    log.warn({ signal }, "Second signal: exiting now");
    process.exit(1);
  }
  shutdownStarted = true;
  readiness.shuttingDown = true;
  // The timer starts first so that a hung step cannot keep the process alive.
  setTimeout(() => {
    log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, "Shutdown timed out; exiting");
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
  log.info({ signal }, "Shutting down");
  versionAbort.abort();
  const step = async (name: string, fn: () => Promise<unknown> | undefined) => {
    try {
      await fn();
    } catch (err) {
      log.warn({ step: name, err: (err as Error).message }, "Shutdown step failed");
    }
  };
  // Stop controllers first: it releases the Lease so the other replica takes over at once.
  await step("controllers", () => controllers?.stop());
  if (config.webhookClientCaFile) unwatchFile(config.webhookClientCaFile);
  await step("webhook", () => (webhookServer ? close(webhookServer) : undefined));
  await step("certs", () => certs.stop());
  await step("informers", () => Promise.all([pushers.stop(), namespaces.stop(), nodes.stop()]));
  await step("events", () => events.stop());
  await step("servers", () => Promise.all([close(metricsServer), close(probeServer)]));
  log.info("Stopped");
  process.exit(0);
}

function listen(server: Server | import("node:https").Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function close(server: Server | import("node:https").Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
