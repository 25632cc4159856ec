// The tests' helpers over a real control plane: kubectl from the control plane build with its kubeconfig, the
// project's CRDs applied and Established, namespaces, and the status code and message of a refused request.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { ApiextensionsV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { ControlPlane } from "../controlplane/harness.ts";
import { waitFor } from "./wait.ts";

/** The repository root. */
export const ROOT = join(import.meta.dirname, "../..");
const run = promisify(execFile);

/** kubectl against the test cluster; `input` goes to its stdin. A failure's message holds kubectl's stderr. */
export async function kubectl(
  cp: ControlPlane,
  args: string[],
  input?: string,
): Promise<{ stdout: string; stderr: string }> {
  const child = run(join(cp.binDir, "kubectl"), ["--kubeconfig", cp.kubeconfigPath, ...args], {
    cwd: ROOT,
    maxBuffer: 32 * 1024 * 1024,
    timeout: 60_000,
  });
  if (input !== undefined) child.child.stdin?.end(input);
  try {
    return await child;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`kubectl ${args.join(" ")} failed: ${err.stderr || err.message}`, { cause: e });
  }
}

/**
 * kubectl apply --server-side -k crds/ (the project's own kustomization), then waits for every CRD to be Established.
 * Server-side: a client-side apply would copy the whole CRD into an annotation. Returns the CRDs' names.
 */
export async function applyCrds(cp: ControlPlane): Promise<string[]> {
  const out = await kubectl(cp, ["apply", "--server-side", "-k", join(ROOT, "crds"), "-o", "name"]);
  const names = out.stdout
    .split("\n")
    .filter((l) => l.startsWith("customresourcedefinition"))
    .map((l) => l.split("/")[1]!);
  if (names.length === 0)
    throw new Error(`kubectl apply -k crds/ created no CustomResourceDefinition:\n${out.stdout}${out.stderr}`);
  const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const name of names) {
    await waitFor(
      async () => {
        const crd = await ext.readCustomResourceDefinition({ name });
        return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
      },
      { timeoutMs: 30_000, message: `CRD ${name} Established` },
    );
  }
  return names;
}

export async function createNamespace(
  kc: KubeConfig,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name, labels } } });
}

/** The apiserver's message of a refused request (client-node ApiException), or the error's own message. */
export function apiMessage(e: unknown): string {
  const err = e as { code?: number; body?: unknown; message?: string };
  let body = err.body;
  if (typeof body === "string") {
    const text = body;
    try {
      body = JSON.parse(text);
    } catch {
      return text;
    }
  }
  if (body && typeof body === "object" && "message" in body) return String(body.message);
  return err.message ?? String(e);
}

export function apiCode(e: unknown): number | undefined {
  return (e as { code?: number }).code;
}
