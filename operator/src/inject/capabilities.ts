// sidecarMode Auto: native sidecars only when the apiserver AND every node's kubelet are >= 1.29 — a native sidecar
// on an older kubelet hangs the pod in Init. Kept up to date from /version and the node informer.
import type { V1Node } from "@kubernetes/client-node";

export const NATIVE_SIDECAR_MIN = { major: 1, minor: 29 } as const;

/** "v1.34.4", "v1.29.0-eks-1234", "1.30+" → { major, minor }; undefined when unreadable. */
export function parseKubeVersion(v: string | undefined): { major: number; minor: number } | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(v?.trim() ?? "");
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

function atLeast(v: { major: number; minor: number } | undefined, min: { major: number; minor: number }): boolean {
  return v !== undefined && (v.major > min.major || (v.major === min.major && v.minor >= min.minor));
}

// An unreadable version counts as too old: a regular container is always safe, a native one is not.
const serverSupportsNative = (gitVersion: string | undefined): boolean =>
  atLeast(parseKubeVersion(gitVersion), NATIVE_SIDECAR_MIN);
const kubeletSupportsNative = (node: V1Node): boolean =>
  atLeast(parseKubeVersion(node.status?.nodeInfo?.kubeletVersion), NATIVE_SIDECAR_MIN);

/**
 * The answer kept up to date from /version and the node informer's events, so the webhook asks it in O(1) per
 * admission request instead of scanning every node.
 */
export class NativeSidecarSupport {
  #server = false;
  readonly #oldKubelets = new Set<string>();

  setServerVersion(gitVersion: string | undefined): void {
    this.#server = serverSupportsNative(gitVersion);
  }

  /** A node added or updated (`deleted` false), or gone. */
  node(node: V1Node, deleted = false): void {
    const name = node.metadata?.name ?? "";
    if (!deleted && !kubeletSupportsNative(node)) this.#oldKubelets.add(name);
    else this.#oldKubelets.delete(name);
  }

  get supported(): boolean {
    return this.#server && this.#oldKubelets.size === 0;
  }
}
