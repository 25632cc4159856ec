import { it } from "node:test";
import assert from "node:assert/strict";
import type { V1Node } from "@kubernetes/client-node";
import { nativeSidecarsSupported, parseKubeVersion } from "./capabilities.ts";

const node = (kubeletVersion: string): V1Node => ({ status: { nodeInfo: { kubeletVersion } as NonNullable<V1Node["status"]>["nodeInfo"] } as V1Node["status"] });

const cases = [
  { name: "new server, no nodes (test control plane)", server: "v1.34.4", nodes: [], native: true },
  { name: "new server, new nodes", server: "v1.30.1", nodes: [node("v1.29.0"), node("v1.34.4")], native: true },
  { name: "new server, one old kubelet", server: "v1.30.1", nodes: [node("v1.29.3"), node("v1.28.9")], native: false },
  { name: "old server", server: "v1.28.15", nodes: [], native: false },
  { name: "vendor suffix", server: "v1.29.0-eks-abc", nodes: [node("v1.29.5-gke.1")], native: true },
  { name: "unknown server version", server: undefined, nodes: [], native: false },
  { name: "node without version", server: "v1.31.0", nodes: [node("")], native: false },
  { name: "v2", server: "v2.0.0", nodes: [], native: true },
];
for (const c of cases) it(c.name, () => assert.equal(nativeSidecarsSupported(c.server, c.nodes), c.native));

it("parseKubeVersion", () => {
  assert.deepEqual(parseKubeVersion("v1.34.4"), { major: 1, minor: 34 });
  assert.deepEqual(parseKubeVersion("1.30+"), { major: 1, minor: 30 });
  assert.equal(parseKubeVersion("dev"), undefined);
});
