import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ExpositionError,
  ExpositionReader,
  LabelLimitError,
  LabelValueLengthError,
  maxLineLength,
  parseExposition,
  parseExpositionAsync,
  parseValue,
  type ExpositionHandler,
} from "./exposition.ts";

type Row = [name: string, labels: string[], value: number, ts?: number];
const rows = (text: string): Row[] =>
  parseExposition(text).samples.map((s) => {
    const r: Row = [s.name, [...s.labels], s.value];
    if (s.timestampMs !== undefined) r.push(s.timestampMs);
    return r;
  });

describe("parseExposition: valid input", () => {
  const cases: { name: string; text: string; want: Row[] }[] = [
    { name: "bare sample", text: "up 1\n", want: [["up", [], 1]] },
    {
      name: "missing final line feed",
      text: "a 1\nb 2",
      want: [
        ["a", [], 1],
        ["b", [], 2],
      ],
    },
    { name: "empty input", text: "", want: [] },
    { name: "only blank lines and comments", text: "\n\n# a comment\n#\n   \n", want: [] },
    { name: "labels", text: 'm{a="1",b="two"} 3\n', want: [["m", ["a", "1", "b", "two"], 3]] },
    { name: "labels kept in exposition order", text: 'm{z="1",a="2"} 3\n', want: [["m", ["z", "1", "a", "2"], 3]] },
    { name: "empty braces", text: "m{} 3\n", want: [["m", [], 3]] },
    { name: "trailing comma", text: 'm{a="1",} 3\n', want: [["m", ["a", "1"], 3]] },
    {
      name: "blanks everywhere Prometheus allows",
      text: 'm { a = "1" , b="2" , }\t3  \n',
      want: [["m", ["a", "1", "b", "2"], 3]],
    },
    { name: "blank-only lines and blanks before #", text: "  \n\t# c\n # TYPE m gauge\nm 1\n", want: [["m", [], 1]] },
    {
      name: "raw line feed inside a label value (Prometheus keeps it)",
      text: 'm{q="a\nb"} 1\nn 2\n',
      want: [
        ["m", ["q", "a\nb"], 1],
        ["n", [], 2],
      ],
    },
    { name: "no blank after }", text: 'm{a="1"}3\n', want: [["m", ["a", "1"], 3]] },
    { name: "empty label value kept by the parser", text: 'm{a=""} 1\n', want: [["m", ["a", ""], 1]] },
    { name: "escaped backslash", text: 'm{p="C:\\\\dir"} 1\n', want: [["m", ["p", "C:\\dir"], 1]] },
    { name: "escaped quote", text: 'm{q="say \\"hi\\""} 1\n', want: [["m", ["q", 'say "hi"'], 1]] },
    { name: "escaped line feed", text: 'm{q="a\\nb"} 1\n', want: [["m", ["q", "a\nb"], 1]] },
    { name: "unknown escape kept as written", text: 'm{q="a\\tb"} 1\n', want: [["m", ["q", "a\\tb"], 1]] },
    { name: "braces, comma and # inside a value", text: 'm{q="{x,y}=# z"} 1\n', want: [["m", ["q", "{x,y}=# z"], 1]] },
    { name: "unicode value", text: 'm{q="żółw 🐢"} 1\n', want: [["m", ["q", "żółw 🐢"], 1]] },
    { name: "colon in metric name", text: "ns:rule:rate5m 0.5\n", want: [["ns:rule:rate5m", [], 0.5]] },
    { name: "timestamp", text: "m 1 1700000000123\n", want: [["m", [], 1, 1700000000123]] },
    { name: "timestamp and trailing blanks", text: "m 1 17 \t\n", want: [["m", [], 1, 17]] },
    {
      name: "+Inf and -Inf",
      text: "a +Inf\nb -Inf\nc Inf\n",
      want: [
        ["a", [], Infinity],
        ["b", [], -Infinity],
        ["c", [], Infinity],
      ],
    },
    {
      name: "NaN",
      text: "a NaN\nb nan\n",
      want: [
        ["a", [], NaN],
        ["b", [], NaN],
      ],
    },
    {
      name: "exponents and signs",
      text: "a 1e3\nb -2.5E-3\nc +.5\nd 7.\n",
      want: [
        ["a", [], 1000],
        ["b", [], -0.0025],
        ["c", [], 0.5],
        ["d", [], 7],
      ],
    },
    {
      name: "large integer value",
      text: "a 18446744073709551615\n", // 2^64 − 1 has no double: it parses to the nearest one, 2^64.
      want: [["a", [], 2 ** 64]],
    },
    {
      name: "classic histogram intact",
      text:
        "# HELP h_seconds A histogram.\n# TYPE h_seconds histogram\n" +
        'h_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="+Inf"} 3\nh_seconds_sum 0.7\nh_seconds_count 3\n',
      want: [
        ["h_seconds_bucket", ["le", "0.1"], 1],
        ["h_seconds_bucket", ["le", "+Inf"], 3],
        ["h_seconds_sum", [], 0.7],
        ["h_seconds_count", [], 3],
      ],
    },
    {
      name: "summary intact",
      text: '# TYPE s summary\ns{quantile="0.5"} 2\ns{quantile="0.99"} NaN\ns_sum 9\ns_count 4\n',
      want: [
        ["s", ["quantile", "0.5"], 2],
        ["s", ["quantile", "0.99"], NaN],
        ["s_sum", [], 9],
        ["s_count", [], 4],
      ],
    },
    { name: "HELP and TYPE without samples", text: "# HELP x Doc.\n# TYPE x counter\n", want: [] },
    { name: "comment that looks like HELP without a blank", text: "# HELPER text\nm 1\n", want: [["m", [], 1]] },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(rows(c.text), c.want));
  }

  it("reads HELP (unescaped) and TYPE", () => {
    const e = parseExposition(
      '# HELP a Line one\\nline \\\\two \\"q\\"\n# TYPE a gauge\n# HELP b\n# TYPE c summary\na 1\n',
    );
    assert.equal(e.help.get("a"), 'Line one\nline \\two \\"q\\"');
    assert.equal(e.help.get("b"), "");
    assert.equal(e.types.get("a"), "gauge");
    assert.equal(e.types.get("c"), "summary");
  });

  it("gives each sample's series text for caching", () => {
    const e = parseExposition('m{a="1"} 1\nn 2 3\n');
    assert.deepEqual(
      e.samples.map((s) => s.series),
      ['m{a="1"}', "n"],
    );
  });

  it("parses prom-client's output", async () => {
    const { Registry, Counter, Histogram, Gauge } = await import("prom-client");
    const r = new Registry();
    new Counter({
      name: "c_total",
      help: 'Help with "quotes" and \\ and\nnewline',
      registers: [r],
      labelNames: ["l"],
    }).inc({ l: 'v"\\\n' }, 2);
    new Histogram({ name: "h", help: "h", registers: [r], buckets: [1, 2] }).observe(1.5);
    new Gauge({ name: "g", help: "g", registers: [r] }).set(-Infinity);
    const e = parseExposition(await r.metrics());
    assert.deepEqual(
      e.samples.map((s) => [s.name, s.labels, s.value]),
      [
        ["c_total", ["l", 'v"\\\n'], 2],
        ["h_bucket", ["le", "1"], 0],
        ["h_bucket", ["le", "2"], 1],
        ["h_bucket", ["le", "+Inf"], 1],
        ["h_sum", [], 1.5],
        ["h_count", [], 1],
        ["g", [], -Infinity],
      ],
    );
    assert.equal(e.help.get("c_total"), 'Help with "quotes" and \\ and\nnewline');
    assert.equal(e.types.get("h"), "histogram");
  });
});

describe("parseExposition: invalid input fails with the line", () => {
  const cases: { name: string; text: string; line: number; match: RegExp }[] = [
    { name: "repeated label name", text: 'ok 1\nm{a="1",a="2"} 1\n', line: 2, match: /repeated/ },
    { name: "__name__ inside braces", text: 'm{__name__="x"} 1\n', line: 1, match: /__name__/ },
    { name: "missing value", text: "m\n", line: 1, match: /blank|value/ },
    { name: "missing value after labels", text: 'm{a="1"}\n', line: 1, match: /value/ },
    { name: "bad value", text: "m abc\n", line: 1, match: /invalid value/ },
    { name: "hex value", text: "m 0x10\n", line: 1, match: /invalid value/ },
    { name: "value overflowing to Inf", text: "m 1e400\n", line: 1, match: /invalid value/ },
    { name: "signed NaN", text: "m -NaN\n", line: 1, match: /invalid value/ },
    { name: "bad timestamp", text: "m 1 1.5\n", line: 1, match: /invalid timestamp/ },
    { name: "extra token", text: "m 1 2 3\n", line: 1, match: /unexpected/ },
    { name: "CRLF", text: "m 1\r\n", line: 1, match: /invalid value/ },
    { name: "CRLF after timestamp", text: "m 1 2\r\n", line: 1, match: /invalid timestamp/ },
    { name: "unterminated label value", text: 'm{a="1} 1\n', line: 2, match: /unterminated/ },
    { name: "blank before a metric name", text: "a 1\n  m 1\n", line: 2, match: /blank/ },
    { name: "negative timestamp", text: "m 1 -5\n", line: 1, match: /invalid timestamp/ },
    { name: "signed timestamp", text: "m 1 +5\n", line: 1, match: /invalid timestamp/ },
    { name: "timestamp beyond 2^53", text: "m 1 99999999999999999999\n", line: 1, match: /invalid timestamp/ },
    { name: "lone comma in braces", text: "m{,} 1\n", line: 1, match: /label name/ },
    {
      name: "line count includes line feeds inside label values",
      text: 'm{q="a\nb"} 1\nbad\n',
      line: 3,
      match: /metric name|blank|value/,
    },
    { name: "unterminated label value at end", text: 'm{a="1', line: 1, match: /unterminated/ },
    { name: "unterminated braces", text: 'm{a="1"', line: 1, match: /unterminated/ },
    { name: "unquoted label value", text: "m{a=1} 1\n", line: 1, match: /quoted/ },
    { name: "missing =", text: 'm{a "1"} 1\n', line: 1, match: /"="/ },
    { name: "missing comma", text: 'm{a="1" b="2"} 1\n', line: 1, match: /","/ },
    { name: "bad label name", text: 'm{1a="1"} 1\n', line: 1, match: /label name/ },
    { name: "bad metric name", text: "1m 1\n", line: 1, match: /metric name/ },
    { name: "invalid TYPE", text: "# TYPE m info\nm 1\n", line: 1, match: /metric type/ },
    { name: "TYPE with extra word", text: "# TYPE m gauge x\n", line: 1, match: /unexpected/ },
    { name: "TYPE without name", text: "# TYPE \n", line: 1, match: /metric name/ },
    {
      name: "error line counted past comments and blanks",
      text: "# c\n\n# HELP a b\na 1\nb{\n",
      line: 5,
      match: /label/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.throws(
        () => parseExposition(c.text),
        (e: unknown) => e instanceof ExpositionError && e.line === c.line && c.match.test(e.message),
      );
    });
  }
});

describe("parseValue", () => {
  const cases: [string, number | undefined][] = [
    ["0", 0],
    ["-0", -0],
    ["1.5e+2", 150],
    ["+Inf", Infinity],
    ["-inf", -Infinity],
    ["infinity", Infinity],
    ["-Infinity", -Infinity],
    [".", undefined],
    ["1e", undefined],
    ["", undefined],
    ["1_000", undefined],
    ["+NaN", undefined],
  ];
  for (const [t, v] of cases) it(JSON.stringify(t), () => assert.equal(parseValue(t), v));
});

/** Collects what an async parse hands over, as rows. */
function collector(): { handler: ExpositionHandler; rows: Row[] } {
  const out: Row[] = [];
  return {
    rows: out,
    handler: {
      sample: (name, labels, value, ts) =>
        void out.push(ts === undefined ? [name, [...labels], value] : [name, [...labels], value, ts]),
    },
  };
}

describe("parse time and the label limit", () => {
  const wide = (labels: number): string => {
    const parts: string[] = [];
    for (let k = 0; k < labels; k++) parts.push(`l${k}="v"`);
    return `m{${parts.join(",")}} 1\n`;
  };

  it("parses a line of 80,000 labels in linear time (the repeated-label check was quadratic: 31 s)", () => {
    const text = wide(80_000);
    const t0 = performance.now();
    const e = parseExposition(text);
    const ms = performance.now() - t0;
    assert.equal(e.samples[0]!.labels.length, 160_000);
    assert.ok(ms < 1000, `80,000 labels took ${ms.toFixed(0)} ms`);
  });

  it("still finds a repeated label name among many", () => {
    const text = wide(50).replace("l49=", "l3=");
    assert.throws(() => parseExposition(text), /label name "l3" is repeated/);
  });

  it("refuses a label set past the label limit as soon as the label past it starts", () => {
    assert.equal(parseExposition(wide(20), { labelLimit: 20 }).samples.length, 1);
    // The rest of the line is never read: garbage after the 21st label name changes nothing.
    const text = `m{${Array.from({ length: 21 }, (_, k) => `l${k}="v"`).join(",")}GARBAGE`;
    assert.throws(
      () => parseExposition(`a 1\n${text}`, { labelLimit: 20 }),
      (e: unknown) => e instanceof LabelLimitError && e.line === 2 && /more than 20 labels/.test(e.message),
    );
    const hostile = wide(80_000);
    const t0 = performance.now();
    assert.throws(() => parseExposition(hostile, { labelLimit: 20 }), LabelLimitError);
    assert.ok(performance.now() - t0 < 50, "the limit did not stop the parse early");
  });

  it("refuses a label value past the label value length limit, counted after unescaping", () => {
    const at = (v: string) => `a 1\nm{l="${v}"} 1\n`;
    assert.equal(parseExposition(at("x".repeat(16)), { labelValueLengthLimit: 16 }).samples.length, 2);
    // Escaped characters count once: 16 characters written as 32.
    assert.equal(parseExposition(at("\\\\".repeat(16)), { labelValueLengthLimit: 16 }).samples.length, 2);
    for (const v of ["x".repeat(17), "\\n".repeat(17), `${"x".repeat(10)}\\"${"y".repeat(6)}`]) {
      assert.throws(
        () => parseExposition(at(v), { labelValueLengthLimit: 16 }),
        (e: unknown) => e instanceof LabelValueLengthError && e.line === 2 && /limit of 16/.test(e.message),
        v,
      );
    }
    assert.equal(parseExposition(at("x".repeat(100_000))).samples.length, 2, "0 = no limit");
  });
});

describe("parseExpositionAsync and ExpositionReader", () => {
  it("fails a line that cannot hold only allowed labels once its carry passes the bound, before it ends", async () => {
    const options = { labelLimit: 2, labelValueLengthLimit: 8 };
    const bound = maxLineLength(2, 8);
    const r = new ExpositionReader({ sample: () => {} }, options);
    await r.write('ok{l="12345678"} 1\nm{l="');
    const piece = "x".repeat(1024);
    let written = 0;
    await assert.rejects(async () => {
      for (;;) {
        await r.write(piece);
        written += piece.length;
        assert.ok(written <= bound + piece.length, "the carry grew past the bound");
      }
    }, LabelValueLengthError);
    // A line too long for its labels' count names that limit instead.
    const many = new ExpositionReader({ sample: () => {} }, options);
    await many.write("m{");
    await assert.rejects(async () => {
      for (let k = 0; ; k++) await many.write(Array.from({ length: 64 }, (_, j) => `l${k}_${j}="v",`).join(""));
    }, LabelLimitError);
    assert.equal(maxLineLength(0, 8), Infinity);
    assert.equal(maxLineLength(2, 0), Infinity);
  });

  it("yields to the event loop while parsing a large body: a timer set before the parse fires during it", async () => {
    const lines = 200_000;
    const text = Array.from({ length: lines }, (_, i) => `s{l="${i}"} ${i}\n`).join("");
    let parsed = 0;
    let parsedWhenTimerFired = -1;
    setTimeout(() => (parsedWhenTimerFired = parsed), 0);
    await parseExpositionAsync(text, { sample: () => void parsed++ });
    assert.equal(parsed, lines);
    assert.ok(parsedWhenTimerFired >= 0, "the timer did not fire before the parse ended");
    assert.ok(parsedWhenTimerFired < lines, `the timer fired only after all ${lines} lines`);
  });

  it("gives the same samples however the text is cut into pieces, a raw line feed inside a value included", async () => {
    const text =
      '# HELP a Doc with \\n escape\n# TYPE a gauge\na{x="one\ntwo",y="q\\"uote"} 1 1700000000000\n' +
      '  # comment\n\nb 2\nc{z="\\\\"} -Inf\nd{w="é ☃ 𝄞"} 3\ne 4';
    const want = rows(text);
    assert.equal(want.length, 5);
    for (let cut = 0; cut <= text.length; cut++) {
      for (const cut2 of [cut, Math.min(text.length, cut + 7)]) {
        const { handler, rows: got } = collector();
        const r = new ExpositionReader(handler, { yieldEveryLines: 1 });
        await r.write(text.slice(0, cut));
        await r.write(text.slice(cut, cut2));
        await r.write(text.slice(cut2));
        await r.end();
        assert.deepEqual(got, want, `cut at ${cut} and ${cut2}`);
      }
    }
  });

  it("reports the line of an error across pieces", async () => {
    const r = new ExpositionReader({ sample: () => {} });
    await r.write("a 1\nb");
    await r.write(' 2\nc{x="1\n2"} 3\nd{');
    await assert.rejects(
      async () => {
        await r.write(" 4\n");
        await r.end();
      },
      (e: unknown) => e instanceof ExpositionError && e.line === 5,
    );
  });

  it("parses one huge line that arrives in small pieces in linear time", async () => {
    // A quoted value with a raw line feed every 16 characters, 8 MiB long, in 64 KiB pieces: an incomplete line is
    // parsed again only when the carry has doubled.
    const value = "0123456789abcde\n".repeat(512 * 1024);
    const text = `m{v="${value}"} 1\n`;
    let n = 0;
    const r = new ExpositionReader({ sample: (_name, labels) => void (n += labels[1]!.length) });
    const t0 = performance.now();
    for (let i = 0; i < text.length; i += 65536) await r.write(text.slice(i, i + 65536));
    await r.end();
    const ms = performance.now() - t0;
    assert.equal(n, value.length);
    assert.ok(ms < 3000, `took ${ms.toFixed(0)} ms`);
  });
});
