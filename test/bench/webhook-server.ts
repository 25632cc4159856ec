// The operator's webhook handler behind its HTTPS server, with an in-memory set of MetricsPushers instead of the
// informer: the process the webhook benchmark loads and measures. Started by webhook.ts; writes its port to
// BENCH_PORT_FILE once listening. Logs go to stdout at info, as the operator's do.
import { writeFileSync } from "node:fs";
import { pino } from "pino";
import { Registry } from "prom-client";
import { DEFAULT_PUSHER_IMAGE, PUSHER_IMAGE_REPOSITORY } from "../../operator/src/config.ts";
import { createAdmissionHandler, createWebhookServer } from "../../operator/src/webhook/server.ts";
import { createAdmissionObserver } from "../../operator/src/admission.ts";
import { createOperatorMetrics } from "../../operator/src/metrics.ts";
import { benchPushers } from "./lib/admission.ts";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const pushers = benchPushers(Number(process.env.BENCH_PUSHERS ?? 100));
const defaults = {
  image: DEFAULT_PUSHER_IMAGE,
  runAsUser: 65532,
  resources: { requests: { cpu: "10m", memory: "48Mi" }, limits: { memory: "128Mi" } },
  nativeSidecarsSupported: true,
};
const handler = createAdmissionHandler({
  observer: createAdmissionObserver({
    log: pino({ level: process.env.BENCH_LOG_LEVEL ?? "info" }),
    metrics: createOperatorMetrics(new Registry()),
    // Events go to the apiserver in the operator; the benchmark measures the admission path alone.
    events: undefined,
    pushers: () => pushers,
  }),
  pushers: () => pushers,
  namespaceLabels: () => ({ "kubernetes.io/metadata.name": "team" }),
  defaults: () => defaults,
  settings: {
    systemNamespaces: ["kube-system", "kube-public", "kube-node-lease", "metrics-pusher-system"],
    watchNamespaces: [],
    imageAllowList: [PUSHER_IMAGE_REPOSITORY],
  },
});
const server = createWebhookServer(handler, { key: env("BENCH_TLS_KEY"), cert: env("BENCH_TLS_CERT") });
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  writeFileSync(env("BENCH_PORT_FILE"), String(typeof address === "object" && address ? address.port : 0));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
