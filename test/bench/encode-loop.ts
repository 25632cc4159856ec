// Encodes the benchmark's request in a loop for a fixed time: the workload `node --cpu-prof` profiles.
// Usage: encode-loop.ts <series> <ms> <steady|cold>
import { toWriteRequest } from "../../pusher/src/remote-write/encode.ts";
import { fullSeries, toSamples } from "./lib/workload.ts";

const series = Number(process.argv[2] ?? 2000);
const ms = Number(process.argv[3] ?? 3000);
const cold = process.argv[4] === "cold";
const sets = fullSeries(series);
const steady = toSamples(sets, Date.now());
const end = Date.now() + ms;
let pushes = 0;
while (Date.now() < end) {
  toWriteRequest(cold ? toSamples(sets, Date.now()) : steady);
  pushes++;
}
process.stdout.write(`${JSON.stringify({ pushes, series, ms })}\n`);
