// Runs one container of a Pod as a local process, as a kubelet would have prepared it: the environment the Pod spec
// declares, downward-API fields read from the Pod, and volumes materialised in a local directory (Secrets and
// ConfigMaps read from the API, emptyDirs made empty), with every path under a mount rewritten to the local copy.
// The demo needs it because no kubelet runs on the test control plane.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { V1ConfigMap, V1Container, V1Pod, V1Secret, V1Volume } from "@kubernetes/client-node";

/** Reads a Secret or ConfigMap; undefined when it does not exist (other errors throw). */
export interface ObjectReader {
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
}

export interface LocalContainer {
  /** Exactly the variables the container declares, resolved. */
  readonly env: Readonly<Record<string, string>>;
  /** mountPath in the container → directory here. */
  readonly mounts: ReadonlyArray<{
    readonly name: string;
    readonly mountPath: string;
    readonly localPath: string;
    readonly source: string;
  }>;
  /** How each non-literal variable was resolved, for a person to read. */
  readonly notes: ReadonlyArray<{ readonly variable: string; readonly from: string }>;
}

export function findContainer(pod: V1Pod, name: string): V1Container | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === name);
}

/**
 * Resolves `container`'s environment and mounts for a local run, writing volume contents under `dir`. Throws on
 * what a kubelet would refuse (a missing non-optional Secret) and on what is not implemented here, naming it.
 */
export async function prepareLocalContainer(
  pod: V1Pod,
  container: V1Container,
  reader: ObjectReader,
  dir: string,
): Promise<LocalContainer> {
  const namespace = pod.metadata?.namespace ?? "default";
  const mounts: Array<{ name: string; mountPath: string; localPath: string; source: string }> = [];
  for (const m of container.volumeMounts ?? []) {
    if (m.subPath || m.subPathExpr)
      throw new Error(`volume mount ${m.name}: subPath is not supported by the local run`);
    const volume = pod.spec?.volumes?.find((v) => v.name === m.name);
    if (!volume) throw new Error(`volume mount ${m.name}: the Pod has no volume of that name`);
    const localPath = join(dir, "volumes", m.name);
    mkdirSync(localPath, { recursive: true, mode: 0o700 });
    const source = await materialise(volume, namespace, reader, localPath);
    mounts.push({ name: m.name, mountPath: m.mountPath, localPath, source });
  }
  // The longest mount path first, so that a nested mount wins over its parent.
  const byDepth = [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
  const toLocal = (value: string): string => {
    for (const m of byDepth) {
      const root = m.mountPath.replace(/\/+$/, "");
      if (value === root) return m.localPath;
      if (value.startsWith(`${root}/`)) return m.localPath + value.slice(root.length);
    }
    return value;
  };

  const env: Record<string, string> = {};
  const notes: Array<{ variable: string; from: string }> = [];
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      // $(VAR) references to earlier variables, as the kubelet expands them; $$ escapes.
      const expanded = (e.value ?? "").replace(
        /\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
        (all, ref: string | undefined) => (ref === undefined ? "$" : (env[ref] ?? all)),
      );
      const local = toLocal(expanded);
      env[e.name] = local;
      if (local !== expanded) notes.push({ variable: e.name, from: `the mounted file ${expanded}` });
      continue;
    }
    const vf = e.valueFrom;
    if (vf.fieldRef) {
      const value = fieldValue(pod, vf.fieldRef.fieldPath);
      env[e.name] = value ?? "";
      notes.push({
        variable: e.name,
        from: `fieldRef ${vf.fieldRef.fieldPath}${value === undefined ? " (unset on this Pod: empty)" : ""}`,
      });
    } else if (vf.secretKeyRef) {
      const { name = "", key, optional } = vf.secretKeyRef;
      const secret = await reader.secret(namespace, name);
      const data = secret?.data?.[key];
      if (data === undefined) {
        if (optional) continue;
        throw new Error(
          `${e.name}: Secret ${namespace}/${name} key ${key} not found (a kubelet would not start the container)`,
        );
      }
      env[e.name] = Buffer.from(data, "base64").toString("utf8");
      notes.push({ variable: e.name, from: `Secret ${name} key ${key}` });
    } else if (vf.configMapKeyRef) {
      const { name = "", key, optional } = vf.configMapKeyRef;
      const value = (await reader.configMap(namespace, name))?.data?.[key];
      if (value === undefined) {
        if (optional) continue;
        throw new Error(
          `${e.name}: ConfigMap ${namespace}/${name} key ${key} not found (a kubelet would not start the container)`,
        );
      }
      env[e.name] = value;
      notes.push({ variable: e.name, from: `ConfigMap ${name} key ${key}` });
    } else {
      throw new Error(`${e.name}: valueFrom ${Object.keys(vf).join(",")} is not supported by the local run`);
    }
  }
  if ((container.envFrom ?? []).length > 0) throw new Error("envFrom is not supported by the local run");
  return { env, mounts, notes };
}

/** The downward API's fieldRef paths. undefined when the field is empty (e.g. spec.nodeName of an unscheduled Pod). */
export function fieldValue(pod: V1Pod, fieldPath: string): string | undefined {
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) return pod.metadata?.[keyed[1] as "labels" | "annotations"]?.[keyed[2]!];
  const fields: Record<string, string | undefined> = {
    "metadata.name": pod.metadata?.name,
    "metadata.namespace": pod.metadata?.namespace,
    "metadata.uid": pod.metadata?.uid,
    "spec.nodeName": pod.spec?.nodeName,
    "spec.serviceAccountName": pod.spec?.serviceAccountName,
    "status.hostIP": pod.status?.hostIP,
    "status.podIP": pod.status?.podIP,
  };
  if (!(fieldPath in fields)) throw new Error(`fieldRef ${fieldPath} is not supported by the local run`);
  const v = fields[fieldPath];
  return v === "" ? undefined : v;
}

async function materialise(volume: V1Volume, namespace: string, reader: ObjectReader, dir: string): Promise<string> {
  if (volume.emptyDir) return "emptyDir";
  if (volume.secret) {
    const name = volume.secret.secretName ?? "";
    const secret = await reader.secret(namespace, name);
    if (!secret) {
      if (volume.secret.optional) return `Secret ${name} (optional, missing: empty)`;
      throw new Error(
        `volume ${volume.name}: Secret ${namespace}/${name} not found (a kubelet would not start the pod)`,
      );
    }
    const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]));
    writeItems(dir, data, volume.secret.items, `Secret ${name}`, volume.secret.optional ?? false);
    return `Secret ${name}`;
  }
  if (volume.configMap) {
    const name = volume.configMap.name ?? "";
    const cm = await reader.configMap(namespace, name);
    if (!cm) {
      if (volume.configMap.optional) return `ConfigMap ${name} (optional, missing: empty)`;
      throw new Error(
        `volume ${volume.name}: ConfigMap ${namespace}/${name} not found (a kubelet would not start the pod)`,
      );
    }
    const data = Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "utf8")]));
    writeItems(dir, data, volume.configMap.items, `ConfigMap ${name}`, volume.configMap.optional ?? false);
    return `ConfigMap ${name}`;
  }
  const kind = Object.keys(volume).find((k) => k !== "name") ?? "unknown";
  throw new Error(`volume ${volume.name}: ${kind} volumes are not supported by the local run`);
}

function writeItems(
  dir: string,
  data: Record<string, Buffer>,
  items: ReadonlyArray<{ key: string; path: string }> | undefined,
  what: string,
  optional: boolean,
): void {
  const selected = items ?? Object.keys(data).map((key) => ({ key, path: key }));
  for (const { key, path } of selected) {
    const content = data[key];
    if (content === undefined) {
      // The kubelet skips a missing key of an optional volume and refuses it otherwise.
      if (optional) continue;
      throw new Error(`${what} has no key ${key}`);
    }
    if (path.split("/").includes("..")) throw new Error(`${what}: item path ${path} leaves the volume`);
    const file = join(dir, path);
    mkdirSync(join(file, ".."), { recursive: true, mode: 0o700 });
    writeFileSync(file, content, { mode: 0o600 });
  }
}
