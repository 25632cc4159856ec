import { it } from "node:test";
import assert from "node:assert/strict";
import type { V1Node } from "@kubernetes/client-node";
import { NativeSidecarSupport, parseKubeVersion } from "./capabilities.ts";

const node = (kubeletVersion: string, name = kubeletVersion): V1Node => ({
  metadata: { name },
  status: { nodeInfo: { kubeletVersion } as NonNullable<V1Node["status"]>["nodeInfo"] },
});

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
for (const c of cases) {
  it(`${c.name} (kept from informer events)`, () => {
    const s = new NativeSidecarSupport();
    s.setServerVersion(c.server);
    c.nodes.forEach((n, i) => s.node({ ...n, metadata: { name: `node-${i}` } }));
    assert.equal(s.supported, c.native);
  });
}

it("follows nodes as they are upgraded and removed", () => {
  const s = new NativeSidecarSupport();
  s.setServerVersion("v1.30.0");
  s.node(node("v1.28.9", "a"));
  s.node(node("v1.28.9", "b"));
  assert.equal(s.supported, false);
  s.node(node("v1.30.0", "a"));
  assert.equal(s.supported, false, "b is still old");
  s.node(node("v1.28.9", "b"), true);
  assert.equal(s.supported, true);
  s.setServerVersion("v1.28.0");
  assert.equal(s.supported, false, "a downgraded apiserver");
});

it("parseKubeVersion", () => {
  assert.deepEqual(parseKubeVersion("v1.34.4"), { major: 1, minor: 34 });
  assert.deepEqual(parseKubeVersion("1.30+"), { major: 1, minor: 30 });
  assert.equal(parseKubeVersion("dev"), undefined);
});
