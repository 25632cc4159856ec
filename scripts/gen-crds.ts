// Regenerates crds/ from the MetricsPusher types (`make crds`, `npm run crds`). The generator lives beside the API
// types (operator/src/api/crd.ts); this entry point only writes its output, so nothing writes files from dist.
import { writeFileSync } from "node:fs";
import { CRD_FILE, crdYaml } from "../operator/src/api/crd.ts";

const out = new URL(`../${CRD_FILE}`, import.meta.url);
writeFileSync(out, crdYaml());
console.log(`wrote ${CRD_FILE}`);
