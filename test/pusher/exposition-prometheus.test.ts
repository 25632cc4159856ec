// The exposition parser against Prometheus 2.42 itself: Prometheus scrapes each body below from a local server, and
// the parser must accept exactly the bodies Prometheus accepts (up 1) and read the same labels and values.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import { parseExposition } from "../../pusher/src/collect/exposition.ts";
import { startPrometheus, type Receiver } from "../peers/receivers.ts";
import { waitFor } from "../lib/wait.ts";

const bodies: Record<string, string> = {
  plain: "a 1\n",
  no_final_lf: "a 1",
  no_final_lf_ts: "a 1 5",
  trailing_comma: 'a{x="1",} 1\n',
  no_blank_after_brace: 'a{x="1"}1\n',
  blanks_inside: 'a { x = "1" , y="2" , }\t1  \n',
  blank_lines_and_indented_comment: "   \n\n\t# c\n # TYPE a gauge\na 1\n",
  help_without_text: "# HELP a\na 1\n",
  comment_at_end: "a 1\n# x",
  escapes: 'a{x="q\\"b\\\\n\\n t\\t"} 1\n',
  raw_lf_in_value: 'a{x="a\nb"} 1\n',
  empty_value: 'a{x=""} 1\n',
  specials: 'a{k="nan"} NaN\na{k="inf"} +Inf\na{k="ninf"} -Inf\na{k="inf2"} inf\na{k="dot"} .5\na{k="exp"} 1.5e3\n',
  histogram: '# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.7\nh_count 2\n',
  repeated_help: "# HELP a x\n# HELP a y\na 1\n",
  blank_before_name: "  a 1\n",
  crlf: "a 1\r\n",
  overflow: "a 1e400\n",
  repeated_label: 'a{x="1",x="2"} 1\n',
  name_in_braces: 'a{__name__="b"} 1\n',
  negative_nan: "a -NaN\n",
  hex: "a 0x10\n",
  underscore: "a 1_000\n",
  float_timestamp: "a 1 1.5\n",
  negative_timestamp: "a 1 -5\n",
  signed_timestamp: "a 1 +5\n",
  huge_timestamp: "a 1 99999999999999999999\n",
  unknown_type: "# TYPE a info\na 1\n",
  upper_type: "# TYPE a GAUGE\na 1\n",
  lone_comma: "a{,} 1\n",
  colon_in_label: 'a{x:y="1"} 1\n',
  unquoted: "a{x=1} 1\n",
};

let prom: Receiver;
let server: http.Server;
before(async () => {
  server = http.createServer((req, res) => res.end(bodies[req.url!.slice(1)] ?? ""));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  let config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n";
  for (const name of Object.keys(bodies)) {
    config += `- job_name: ${name}\n  metrics_path: /${name}\n  static_configs: [{ targets: ["127.0.0.1:${port}"] }]\n`;
  }
  prom = await startPrometheus({ config });
});
after(async () => {
  await prom?.stop();
  server?.closeAllConnections();
  server?.close();
});

it("accepts exactly what Prometheus 2.42 accepts, with the same labels and values", async () => {
  const up = await waitFor(
    async () => {
      const r = await prom.query("up");
      return r.length === Object.keys(bodies).length ? r : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 250, message: "an up series for every body" },
  );
  const stored = await prom.query('{__name__!~"up|scrape_.*", job!=""}');
  const problems: string[] = [];
  let compared = 0;
  for (const [job, body] of Object.entries(bodies)) {
    const promOk = up.find((u) => u.metric.job === job)!.value === 1;
    let mine: ReturnType<typeof parseExposition> | undefined;
    let err = "";
    try {
      mine = parseExposition(body);
    } catch (e) {
      err = (e as Error).message;
    }
    if (promOk !== (mine !== undefined)) {
      problems.push(
        `${job}: Prometheus ${promOk ? "accepts" : "rejects"}, parser ${mine ? "accepts" : `rejects (${err})`}`,
      );
      continue;
    }
    if (!mine) continue;
    // Compare what Prometheus stored (samples with old exposed timestamps are not at "now": skip those).
    const fromProm = stored
      .filter((s) => s.metric.job === job)
      .map((s) => {
        const { job: _j, instance: _i, ...labels } = s.metric;
        return JSON.stringify([labels, String(s.value)]);
      })
      .sort();
    const fromMine = mine.samples
      .filter((s) => s.timestampMs === undefined)
      .map((s) => {
        const labels: Record<string, string> = { __name__: s.name };
        for (let i = 0; i < s.labels.length; i += 2)
          if (s.labels[i + 1] !== "") labels[s.labels[i]!] = s.labels[i + 1]!;
        return JSON.stringify([Object.fromEntries(Object.entries(labels).sort()), String(s.value)]);
      })
      .sort();
    if (fromProm.length > 0) compared++;
    if (JSON.stringify(fromProm) !== JSON.stringify(fromMine))
      problems.push(`${job}: Prometheus ${fromProm.join(" ")} vs parser ${fromMine.join(" ")}`);
  }
  assert.deepEqual(problems, []);
  assert.ok(compared >= 12, `values compared for ${compared} bodies`);
  assert.ok(up.some((u) => u.value === 0) && up.some((u) => u.value === 1), "both outcomes seen");
});
