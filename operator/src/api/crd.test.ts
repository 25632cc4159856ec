import { it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { RESERVED_HEADERS } from "@metrics-pusher/pusher/config";
import { CRD_FILE, buildCrd, crdYaml } from "./crd.ts";
import type { Schema } from "./crd.ts";

const committed = readFileSync(new URL(`../../../${CRD_FILE}`, import.meta.url), "utf8");

it("the committed CRD equals the generated one", () => {
  assert.equal(committed, crdYaml(), `${CRD_FILE} is stale: run make crds`);
});

it("describes every property (kubectl explain helps everywhere)", () => {
  const missing: string[] = [];
  const walk = (s: Schema, path: string) => {
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      if (path === "" && k === "metadata") continue;
      if (!v.description) missing.push(`${path}.${k}`);
      walk(v, `${path}.${k}`);
    }
    if (s.items) walk(s.items, `${path}[]`);
  };
  const schema = (parse(committed) as ReturnType<typeof buildCrd>).spec.versions[0]!.schema.openAPIV3Schema as Schema;
  walk(schema, "");
  assert.deepEqual(missing, []);
});

it("the reserved-header rule lists exactly the pusher's RESERVED_HEADERS", () => {
  const rules =
    buildCrd().spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties!.remoteWrite!.properties!.headers![
      "x-kubernetes-validations"
    ]!;
  const rule = rules.find((r) => r.reason === "FieldValueForbidden")!.rule;
  for (const h of RESERVED_HEADERS) assert.ok(rule.includes(`'${h}'`), h);
});
