// The kubelet's part the demo plays: env, downward API and Secret volumes of a Pod's container, resolved locally.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod, V1Secret } from "@kubernetes/client-node";
import { fieldValue, findContainer, prepareLocalContainer, type ObjectReader } from "./local-pod.ts";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

function pod(): V1Pod {
  return {
    metadata: { name: "builder-abc", namespace: "builds", uid: "u-1", labels: { app: "builder" } },
    spec: {
      initContainers: [
        {
          name: "metrics-pusher",
          restartPolicy: "Always",
          env: [
            { name: "URL", value: "http://127.0.0.1:9090/api/v1/write" },
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
            { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
            { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
            { name: "TOKEN_FILE", value: "/etc/s/auth/token" },
            { name: "CA_FILE", value: "/etc/s/missing/ca.crt" },
            { name: "GREETING", value: "pod $(POD_NAME) costs $$5" },
            { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "auth", key: "password" } } },
          ],
          volumeMounts: [
            { name: "auth", mountPath: "/etc/s/auth", readOnly: true },
            { name: "missing", mountPath: "/etc/s/missing", readOnly: true },
          ],
        },
      ],
      containers: [{ name: "builder", image: "b" }],
      volumes: [
        { name: "auth", secret: { secretName: "auth", optional: true, items: [{ key: "token", path: "token" }] } },
        { name: "missing", secret: { secretName: "nope", optional: true } },
      ],
    },
  };
}

const secrets: Record<string, V1Secret> = {
  auth: { data: { token: b64("s3cret"), password: b64("pw"), other: b64("x") } },
};
const reader: ObjectReader = {
  secret: (_ns, name) => Promise.resolve(secrets[name]),
  configMap: () => Promise.resolve(undefined),
};

describe("prepareLocalContainer", () => {
  const dir = mkdtempSync(join(tmpdir(), "local-pod-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("resolves literals, downward-API fields, $(VAR) references and secretKeyRefs", async () => {
    const p = pod();
    const local = await prepareLocalContainer(p, findContainer(p, "metrics-pusher")!, reader, join(dir, "a"));
    assert.equal(local.env.URL, "http://127.0.0.1:9090/api/v1/write");
    assert.equal(local.env.POD_NAME, "builder-abc");
    assert.equal(local.env.NAMESPACE, "builds");
    assert.equal(local.env.NODE_NAME, "", "an unscheduled Pod has no node: empty, as the variable is declared");
    assert.equal(local.env.APP, "builder");
    assert.equal(local.env.GREETING, "pod builder-abc costs $5");
    assert.equal(local.env.PASSWORD, "pw");
    assert.deepEqual(Object.keys(local.env), [
      "URL",
      "POD_NAME",
      "NAMESPACE",
      "NODE_NAME",
      "APP",
      "TOKEN_FILE",
      "CA_FILE",
      "GREETING",
      "PASSWORD",
    ]);
  });

  it("writes the selected Secret keys into a local copy of the mount and rewrites paths under it", async () => {
    const p = pod();
    const local = await prepareLocalContainer(p, findContainer(p, "metrics-pusher")!, reader, join(dir, "b"));
    const auth = local.mounts.find((m) => m.name === "auth")!;
    assert.equal(local.env.TOKEN_FILE, join(auth.localPath, "token"));
    assert.equal(readFileSync(local.env.TOKEN_FILE, "utf8"), "s3cret");
    assert.equal(statSync(local.env.TOKEN_FILE).mode & 0o777, 0o600);
    assert.throws(() => readFileSync(join(auth.localPath, "other")), /ENOENT/, "only the listed items are written");
    // An optional Secret that does not exist: the mount exists, empty, the file is simply missing (as on a kubelet).
    const missing = local.mounts.find((m) => m.name === "missing")!;
    assert.match(missing.source, /optional, missing/);
    assert.equal(local.env.CA_FILE, join(missing.localPath, "ca.crt"));
  });

  it("refuses what a kubelet would refuse, and what it cannot do, by name", async () => {
    const p = pod();
    p.spec!.volumes![1]!.secret!.optional = false;
    await assert.rejects(
      prepareLocalContainer(p, findContainer(p, "metrics-pusher")!, reader, join(dir, "c")),
      /Secret builds\/nope not found/,
    );
    const q = pod();
    findContainer(q, "metrics-pusher")!.env!.push({
      name: "CPU",
      valueFrom: { resourceFieldRef: { resource: "limits.cpu" } },
    });
    await assert.rejects(
      prepareLocalContainer(q, findContainer(q, "metrics-pusher")!, reader, join(dir, "d")),
      /CPU: valueFrom resourceFieldRef is not supported/,
    );
    assert.throws(() => fieldValue(q, "status.phase"), /fieldRef status.phase is not supported/);
  });
});
