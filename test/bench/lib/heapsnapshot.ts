// Where a V8 heap snapshot's memory goes: retained size summed by constructor, from the snapshot's own graph (nodes,
// edges, dominator tree), so the figures can be read without DevTools. Used by the scale benchmark's
// --heap-snapshot, and by hand:
//   node --conditions=source test/bench/lib/heapsnapshot.ts file.heapsnapshot [top=25]
import { readFileSync } from "node:fs";

export interface ClassSize {
  name: string;
  count: number;
  /** Sum of the objects' own sizes. */
  selfBytes: number;
  /**
   * Sum of retained sizes over objects of this class not dominated by another object of the same class: what would
   * be freed if nothing held objects of this class any more. Classes overlap (a Map's retained size includes its
   * strings), so the column does not add up to the heap.
   */
  retainedBytes: number;
}

export interface HeapSummary {
  totalBytes: number;
  nodes: number;
  classes: ClassSize[];
}

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Groups nodes as DevTools' "Summary" view does: objects by constructor, the rest by node type. */
function className(type: string, name: string): string {
  switch (type) {
    case "object":
    case "native":
      return name || `(${type})`;
    case "closure":
      return "(closure)";
    case "code":
      return "(compiled code)";
    default:
      return `(${type})`;
  }
}

export function summarise(snap: Snapshot): HeapSummary {
  const { meta } = snap.snapshot;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nType = meta.node_fields.indexOf("type");
  const nName = meta.node_fields.indexOf("name");
  const nSize = meta.node_fields.indexOf("self_size");
  const nEdges = meta.node_fields.indexOf("edge_count");
  const eType = meta.edge_fields.indexOf("type");
  const eTo = meta.edge_fields.indexOf("to_node");
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const weak = edgeTypes.indexOf("weak");
  const shortcut = edgeTypes.indexOf("shortcut");
  const { nodes, edges, strings } = snap;
  const n = nodes.length / nf;

  // Forward adjacency (first edge of each node) and the predecessors of each node, strong edges only.
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += nodes[i * nf + nEdges]! * ef;
  }
  firstEdge[n] = edges.length;
  const strong = (e: number): boolean => {
    const t = edges[e + eType]!;
    return t !== weak && t !== shortcut;
  };

  // Iterative DFS from the root (node 0) for a post-order numbering.
  const order = new Int32Array(n).fill(-1); // post-order index of each node
  const byOrder = new Int32Array(n);
  const stack = new Int32Array(n);
  const cursor = new Uint32Array(n);
  const visited = new Uint8Array(n);
  let sp = 0;
  let post = 0;
  stack[sp++] = 0;
  visited[0] = 1;
  cursor[0] = firstEdge[0]!;
  while (sp > 0) {
    const v = stack[sp - 1]!;
    let pushed = false;
    while (cursor[v]! < firstEdge[v + 1]!) {
      const e = cursor[v]!;
      cursor[v] = e + ef;
      if (!strong(e)) continue;
      const w = edges[e + eTo]! / nf;
      if (visited[w]) continue;
      visited[w] = 1;
      cursor[w] = firstEdge[w]!;
      stack[sp++] = w;
      pushed = true;
      break;
    }
    if (!pushed) {
      sp--;
      order[v] = post;
      byOrder[post++] = v;
    }
  }

  // Predecessor lists (reachable nodes only), as CSR.
  const predCount = new Uint32Array(n + 1);
  for (let v = 0; v < n; v++) {
    if (!visited[v]) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e += ef) if (strong(e)) predCount[edges[e + eTo]! / nf + 1]!++;
  }
  for (let i = 0; i < n; i++) predCount[i + 1]! += predCount[i]!;
  const preds = new Int32Array(predCount[n]!);
  const fill = predCount.slice(0, n);
  for (let v = 0; v < n; v++) {
    if (!visited[v]) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e += ef) if (strong(e)) preds[fill[edges[e + eTo]! / nf]!++] = v;
  }

  // Cooper, Harvey and Kennedy's iterative dominators, over post-order indices.
  const idom = new Int32Array(post).fill(-1);
  const root = order[0]!;
  idom[root] = root;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while (a < b) a = idom[a]!;
      while (b < a) b = idom[b]!;
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let i = post - 2; i >= 0; i--) {
      const v = byOrder[i]!;
      let d = -1;
      for (let p = predCount[v]!; p < predCount[v + 1]!; p++) {
        const u = order[preds[p]!]!;
        if (u < 0 || idom[u] === -1) continue;
        d = d === -1 ? u : intersect(u, d);
      }
      if (d !== -1 && idom[i] !== d) {
        idom[i] = d;
        changed = true;
      }
    }
  }

  // Retained sizes: children before their dominators (post-order is such an order for the dominator tree).
  const retained = new Float64Array(post);
  let total = 0;
  for (let i = 0; i < post; i++) {
    const size = nodes[byOrder[i]! * nf + nSize]!;
    retained[i]! += size;
    total += size;
    if (i !== root) retained[idom[i]!]! += retained[i]!;
  }
  const nameOf = (i: number): string => {
    const v = byOrder[i]! * nf;
    return className(nodeTypes[nodes[v + nType]!]!, strings[nodes[v + nName]!]!);
  };
  const classes = new Map<string, ClassSize>();
  for (let i = 0; i < post; i++) {
    if (i === root) continue;
    const name = nameOf(i);
    let c = classes.get(name);
    if (!c) classes.set(name, (c = { name, count: 0, selfBytes: 0, retainedBytes: 0 }));
    c.count++;
    c.selfBytes += nodes[byOrder[i]! * nf + nSize]!;
    // Bounded walk: a long chain (a linked list) would make this quadratic; past the bound an object counts as
    // outermost, which can only overstate a class's retained size.
    let outermost = true;
    for (let d = idom[i]!, steps = 0; d !== root && steps < 100; d = idom[d]!, steps++) {
      if (nameOf(d) === name) {
        outermost = false;
        break;
      }
    }
    if (outermost) c.retainedBytes += retained[i]!;
  }
  return {
    totalBytes: total,
    nodes: post,
    classes: [...classes.values()].sort((a, b) => b.retainedBytes - a.retainedBytes),
  };
}

export function summariseFile(path: string): HeapSummary {
  return summarise(JSON.parse(readFileSync(path, "utf8")) as Snapshot);
}

export function formatSummary(s: HeapSummary, top = 25): string {
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1).padStart(7);
  const lines = [
    `heap ${mib(s.totalBytes).trim()} MiB in ${s.nodes} reachable objects; by retained size (MiB), then self size:`,
  ];
  for (const c of s.classes.slice(0, top))
    lines.push(`${mib(c.retainedBytes)} ${mib(c.selfBytes)}  ${String(c.count).padStart(8)}  ${c.name}`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, top] = process.argv.slice(2);
  if (!file) throw new Error("usage: heapsnapshot.ts FILE [top]");
  process.stdout.write(`${formatSummary(summariseFile(file), Number(top ?? 25))}\n`);
}
