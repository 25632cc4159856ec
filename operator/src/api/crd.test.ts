import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import {
  DURATION_UNITS,
  ENV,
  LOG_LEVELS,
  PATTERNS,
  RESERVED_HEADERS,
  RESERVED_LABEL_PREFIX,
  formatDuration,
} from "@metrics-pusher/pusher/config";
import type { EnvName, EnvSpec } from "@metrics-pusher/pusher/config";
import { diskBufferBytes } from "../inject/sidecar.ts";
import { CRD_FILE, DURATION_PATTERN, URL_PATTERN, buildCrd, celString, crdYaml, specSchema } from "./crd.ts";
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

describe("the CRD's validation is derived from the pusher's contract", () => {
  const props = () => specSchema().properties!;
  it("duration fields carry ENV's bounds as CEL, in the pusher's grammar", () => {
    const fields: [Schema, EnvName][] = [
      [props().pushInterval!, "PUSH_INTERVAL"],
      [props().remoteWrite!.properties!.timeout!, "TIMEOUT"],
      [props().scrape!.properties!.timeout!, "SCRAPE_TIMEOUT"],
    ];
    for (const [field, name] of fields) {
      const env: EnvSpec = ENV[name];
      const rules = field["x-kubernetes-validations"]!.map((r) => r.rule);
      assert.ok(
        rules.includes(`duration(self) >= duration('${formatDuration(env.min!)}')`),
        `${name}: ${rules.join(", ")}`,
      );
      assert.equal(field.pattern, DURATION_PATTERN);
      for (const unit of DURATION_UNITS) assert.ok(new RegExp(field.pattern).test(`1${unit}`), unit);
    }
    assert.equal(props().pushInterval!.default, ENV.PUSH_INTERVAL.default);
  });
  it("a bound added to ENV reaches the CRD by regeneration (how the pusher's upper bounds flow in)", () => {
    const env = ENV.PUSH_INTERVAL as { max?: number };
    const before = env.max;
    env.max = 2 ** 31 - 1;
    try {
      const rules = props().pushInterval!["x-kubernetes-validations"]!.map((r) => r.rule);
      assert.ok(rules.includes(`duration(self) <= duration('${formatDuration(2 ** 31 - 1)}')`), rules.join("\n"));
    } finally {
      if (before === undefined) delete env.max;
      else env.max = before;
    }
  });
  it("buffer.maxSamples starts at one batch (the pusher's MAX_SAMPLES_PER_SEND default)", () => {
    assert.equal(props().buffer!.properties!.maxSamples!.minimum, Number(ENV.MAX_SAMPLES_PER_SEND.default));
    assert.ok(props().buffer!.properties!.maxSamples!.maximum! <= ENV.BUFFER_MAX_SAMPLES.max);
  });
  it("the disk sizeLimit's minimum gives the pusher exactly its least BUFFER_MAX_BYTES", () => {
    const rule = props().buffer!.properties!.disk!.properties!.sizeLimit!["x-kubernetes-validations"]![0]!.rule;
    const lo = Number(/quantity\('(\d+)'\)/.exec(rule)![1]);
    assert.ok(diskBufferBytes(lo) >= ENV.BUFFER_MAX_BYTES.min && diskBufferBytes(lo - 1) < ENV.BUFFER_MAX_BYTES.min);
  });
  it("patterns are the pusher's PATTERNS, reserved names its RESERVED_LABEL_PREFIX, log levels its LOG_LEVELS", () => {
    const p = props();
    assert.equal(p.scrape!.properties!.targets!.items!.properties!.path!.pattern, PATTERNS.scrapePath);
    assert.equal((p.remoteWrite!.properties!.headers!.additionalProperties as Schema).pattern, PATTERNS.headerValue);
    const labelRules = p.externalLabels!["x-kubernetes-validations"]!.map((r) => r.rule).join("\n");
    assert.ok(labelRules.includes(celString(PATTERNS.labelName)));
    assert.ok(labelRules.includes(`!k.startsWith('${RESERVED_LABEL_PREFIX}')`));
    assert.deepEqual(p.logLevel!.enum, [...LOG_LEVELS]);
  });
  it("every URL the CRD's pattern accepts, the pusher's WHATWG parser accepts", () => {
    const re = new RegExp(URL_PATTERN);
    const accepted = [
      "http://prometheus.monitoring:9090/api/v1/write",
      "https://u:p@vm:8428/w",
      "http://[::1]:9090/w",
      "http://10.0.0.1/w",
      "http://rw.:65535/w?x#f",
      "http://h:/x",
    ];
    for (const u of accepted) assert.ok(re.test(u) && URL.parse(u) !== null, u);
    for (const u of [
      "http://:80/write",
      "http://rw:65536/w",
      "http://10.0.0.256/w",
      "http://[1:2:3]/w",
      "http://a.123/",
    ]) {
      assert.equal(URL.parse(u), null, `${u} is refused by the pusher`);
      assert.equal(re.test(u), false, `${u} is refused by the CRD`);
    }
  });
});
