// A parser of the Prometheus text exposition format 0.0.4, following Prometheus 2.x's own (pkg/textparse/promparse):
// one pass over the string with charCodeAt, no regular expressions, no per-line split. npm's
// parse-prometheus-text-format was considered and rejected: it reshapes histograms and summaries (merging samples by
// label set), keeps labels as an object (a repeated label silently overwrites the first) and has no error positions.
//
// Deliberate choices where Prometheus is lenient or the format is silent:
// Checked against Prometheus 2.42 scraping the same bodies (see exposition.test.ts for the cases):
// - whitespace (space, tab) is allowed between tokens and inside braces, and before `#`; a blank before a metric
//   name fails, as in Prometheus;
// - a trailing comma inside braces is allowed (`{a="1",}`);
// - label-value escapes: `\\`, `\"`, `\n` are unescaped; any other `\x` is kept as the two characters, as promparse;
// - a raw line feed inside a quoted label value is kept (Prometheus 2.42 accepts it);
// - a missing final line feed is accepted (Prometheus 2.42 accepts it too);
// - a `\r` is not whitespace: CRLF input fails where the value or timestamp ends, as in promparse;
// - values: Go ParseFloat syntax in decimal plus NaN / [+-]Inf / [+-]Infinity in any case; a decimal that overflows
//   to ±Inf is an error, as Go reports ErrRange; hexadecimal floats are not accepted;
// - timestamps: digits only (Prometheus 2.42 rejects a sign), milliseconds, at most 2^53;
// - a label name repeated in one sample, or `__name__` inside braces, is an error (Prometheus fails the scrape);
// - `# TYPE` must name one of counter, gauge, histogram, summary, untyped; other `#` lines are comments.
// The caller decodes bytes to a string (with a fatal UTF-8 decoder: invalid UTF-8 fails the scrape, as in Prometheus).

export const MetricType = {
  Counter: "counter",
  Gauge: "gauge",
  Histogram: "histogram",
  Summary: "summary",
  Untyped: "untyped",
} as const;
export type MetricType = (typeof MetricType)[keyof typeof MetricType];

export interface ExposedSample {
  readonly name: string;
  /** Label names and values as exposed, flattened: [name0, value0, name1, value1, …], in exposition order. */
  readonly labels: readonly string[];
  readonly value: number;
  /** The exposed timestamp in milliseconds, if any. */
  readonly timestampMs: number | undefined;
  /** The exposed text of the series (metric name and braces, as written): a cheap cache key for the caller. */
  readonly series: string;
}

export interface Exposition {
  readonly samples: ExposedSample[];
  readonly types: Map<string, MetricType>;
  readonly help: Map<string, string>;
}

export class ExpositionError extends Error {
  /** 1-based line of the error. */
  readonly line: number;
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "ExpositionError";
    this.line = line;
  }
}

/** What the parser hands over as it reads; `sample` may throw to stop the parse at once. */
export interface ExpositionHandler {
  sample(
    name: string,
    labels: string[],
    value: number,
    timestampMs: number | undefined,
    /** The exposed text of the series (metric name and braces, as written). */
    series: string,
  ): void;
  type?(name: string, type: MetricType): void;
  help?(name: string, doc: string): void;
}

export interface ParseOptions {
  /** Most labels inside one sample's braces; one more fails the parse with LabelLimitError. 0 = no limit. */
  readonly labelLimit?: number;
  /**
   * Longest label value, in characters after unescaping (Prometheus' label_value_length_limit); a longer one fails the
   * parse with LabelValueLengthError as soon as it is read. 0 = no limit.
   */
  readonly labelValueLengthLimit?: number;
}

/** A sample's label set is longer than the label limit: raised as soon as the label past the limit starts. */
export class LabelLimitError extends ExpositionError {
  constructor(line: number, message: string) {
    super(line, message);
    this.name = "LabelLimitError";
  }
}

/** A label value is longer than the label value length limit, or a line is too long to hold only allowed values. */
export class LabelValueLengthError extends ExpositionError {
  constructor(line: number, message: string) {
    super(line, message);
    this.name = "LabelValueLengthError";
  }
}

/**
 * The longest line that can hold only allowed labels: each value escaped (two characters a character), a name of up to
 * 1 KiB each, and room for the metric name, value and timestamp. A line still incomplete past it fails at once, so a
 * huge value costs no more than this much carried text, whatever SCRAPE_MAX_BYTES allows.
 */
export function maxLineLength(labelLimit: number, labelValueLengthLimit: number): number {
  if (labelLimit <= 0 || labelValueLengthLimit <= 0) return Infinity;
  return labelLimit * (2 * labelValueLengthLimit + 1024 + 4) + 4096;
}

/**
 * Slices of parseExpositionAsync. Measured with test/pusher/event-loop-block.ts: 2,000 lines of short series parse in
 * well under a millisecond, and 256 Ki characters bound a slice made of a few long lines (huge label values).
 */
export const YIELD_EVERY_LINES = 2000;
export const YIELD_EVERY_CHARS = 256 * 1024;
/** Up to this many labels, a repeated name is looked for by a scan; beyond it, in a Set. */
const LINEAR_LABEL_CHECK = 8;

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const HASH = 0x23;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const BRACE_OPEN = 0x7b;
const BRACE_CLOSE = 0x7d;
const COMMA = 0x2c;
const EQUALS = 0x3d;
const COLON = 0x3a;
const UNDERSCORE = 0x5f;

const TYPES: ReadonlySet<string> = new Set(Object.values(MetricType));

function isLetterOrUnderscore(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === UNDERSCORE;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}

/** Parses a whole exposition; throws ExpositionError at the first malformed line. */
export function parseExposition(text: string, options: ParseOptions = {}): Exposition {
  const samples: ExposedSample[] = [];
  const types = new Map<string, MetricType>();
  const help = new Map<string, string>();
  const handler: ExpositionHandler = {
    sample: (name, labels, value, timestampMs, series) =>
      void samples.push({ name, labels, value, timestampMs, series }),
    type: (name, t) => void types.set(name, t),
    help: (name, doc) => void help.set(name, doc),
  };
  const steps = parseSteps(
    text,
    handler,
    Infinity,
    Infinity,
    options.labelLimit ?? 0,
    options.labelValueLengthLimit ?? 0,
    newState(),
  );
  while (!steps.next().done);
  return { samples, types, help };
}

export interface AsyncParseOptions extends ParseOptions {
  readonly yieldEveryLines?: number;
  readonly yieldEveryChars?: number;
}

/**
 * Parses a whole exposition, handing each sample to `handler` as it is read (nothing is collected here: the handler
 * decides what to keep and may throw to stop at once), and yields to the event loop every `yieldEveryLines` lines or
 * `yieldEveryChars` characters, whichever comes first, so that a large body never blocks timers, I/O or signals for
 * longer than one such slice.
 */
export async function parseExpositionAsync(
  text: string,
  handler: ExpositionHandler,
  options: AsyncParseOptions = {},
): Promise<void> {
  const reader = new ExpositionReader(handler, options);
  await reader.write(text);
  await reader.end();
}

/**
 * Parses an exposition as it arrives, piece by piece (each piece parsed with parseExpositionAsync's yields): only
 * complete lines are parsed, the rest waits for the next piece. The body is never held whole, so a scrape costs what
 * the handler keeps plus about one piece, whatever the body's size.
 */
export class ExpositionReader {
  readonly #handler: ExpositionHandler;
  readonly #options: AsyncParseOptions;
  /** Text not parsed yet, in pieces: joined only when a line feed makes a complete line possible. */
  #carry: string[] = [];
  #carryLength = 0;
  /** Line number of the carry's first line. */
  #line = 1;
  /**
   * A line still incomplete (a quoted value holding a raw line feed runs past the piece) is parsed again only once
   * the carry has doubled, so that one huge line costs linear time, not a re-parse per piece.
   */
  #retryAt = 0;
  /** See maxLineLength: the most text an incomplete line may carry. */
  readonly #maxLine: number;

  constructor(handler: ExpositionHandler, options: AsyncParseOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    this.#maxLine = maxLineLength(options.labelLimit ?? 0, options.labelValueLengthLimit ?? 0);
  }

  #checkCarry(): void {
    if (this.#carryLength <= this.#maxLine) return;
    // Which limit the line breaks, for the reason counted: its head is read again (bounded by the limit plus a piece,
    // and never handed to the handler), so 80,000 labels fail as label_limit and a huge value as its own limit.
    const text = this.#carry.join("");
    this.#carry = [text];
    const state = newState();
    state.line = this.#line;
    const steps = parseSteps(
      text,
      { sample: () => {} },
      Infinity,
      Infinity,
      this.#options.labelLimit ?? 0,
      this.#options.labelValueLengthLimit ?? 0,
      state,
    );
    try {
      while (!steps.next().done);
    } catch (e) {
      if (e instanceof LabelLimitError || e instanceof LabelValueLengthError) throw e;
    }
    throw new LabelValueLengthError(
      this.#line,
      `a line longer than ${this.#maxLine} characters, more than ${this.#options.labelLimit} labels of ` +
        `${this.#options.labelValueLengthLimit} characters (the label and label value length limits) can hold`,
    );
  }

  /** The next piece of the text; resolves once its complete lines are parsed (throws as the parse does). */
  async write(text: string): Promise<void> {
    // Only the new piece is searched, and the carry is not joined while no line can be complete: a line of many
    // megabytes arriving in small pieces costs linear time.
    const cut = text.lastIndexOf("\n");
    if (cut < 0 || this.#carryLength + text.length < this.#retryAt) {
      this.#carry.push(text);
      this.#carryLength += text.length;
      this.#checkCarry();
      return;
    }
    const head = this.#carry.length === 0 ? "" : this.#carry.join("");
    const left = await this.#parse(head + text.slice(0, cut + 1), false);
    const rest = left + text.slice(cut + 1);
    this.#carry = rest.length > 0 ? [rest] : [];
    this.#carryLength = rest.length;
    this.#retryAt = left.length > 0 ? rest.length * 2 : 0;
    this.#checkCarry();
  }

  /** The text is complete: parses what is left (a last line without a final line feed). */
  async end(): Promise<void> {
    const rest = this.#carry.join("");
    this.#carry = [];
    this.#carryLength = 0;
    if (rest.length > 0) await this.#parse(rest, true);
  }

  /** Parses `text`; returns the incomplete tail that must wait for more (never when final). */
  async #parse(text: string, final: boolean): Promise<string> {
    const state = newState();
    state.line = this.#line;
    const steps = parseSteps(
      text,
      this.#handler,
      this.#options.yieldEveryLines ?? YIELD_EVERY_LINES,
      this.#options.yieldEveryChars ?? YIELD_EVERY_CHARS,
      this.#options.labelLimit ?? 0,
      this.#options.labelValueLengthLimit ?? 0,
      state,
    );
    try {
      while (!steps.next().done) await yieldToEventLoop();
    } catch (e) {
      // A syntax error found at the very end of a piece may only mean that the line goes on in the next one.
      if (
        final ||
        !(e instanceof ExpositionError) ||
        e instanceof LabelLimitError ||
        e instanceof LabelValueLengthError ||
        !state.atEnd
      )
        throw e;
      this.#line = state.lineStartLine;
      return text.slice(state.lineStart);
    }
    this.#line = state.line;
    return "";
  }
}

/** Where parseSteps is: the line it started at (in), where the current line began and whether an error hit the end. */
interface ParseState {
  line: number;
  lineStart: number;
  lineStartLine: number;
  atEnd: boolean;
}
function newState(): ParseState {
  return { line: 1, lineStart: 0, lineStartLine: 1, atEnd: false };
}

function yieldToEventLoop(): Promise<void> {
  // setImmediate runs after pending I/O callbacks and timers, unlike a resolved promise (a microtask), which would
  // starve them.
  return new Promise((resolve) => setImmediate(resolve));
}

/** The parser proper: one pass, yielding between slices of lines; see parseExposition / parseExpositionAsync. */
function* parseSteps(
  text: string,
  handler: ExpositionHandler,
  yieldEveryLines: number,
  yieldEveryChars: number,
  labelLimit: number,
  labelValueLengthLimit: number,
  state: ParseState,
): Generator<void, void, void> {
  const n = text.length;
  let i = 0;
  let line = state.line;
  let sliceLine = line;
  let sliceStart = 0;

  const fail = (message: string): never => {
    state.atEnd = i >= n;
    throw new ExpositionError(line, message);
  };
  const describe = (at: number): string => (at >= n ? "end of input" : JSON.stringify(text[at]));
  const skipBlanks = (): void => {
    while (i < n && isBlank(text.charCodeAt(i))) i++;
  };
  /** Reads a metric name at i ([a-zA-Z_:][a-zA-Z0-9_:]*); returns "" when none starts there. */
  const metricName = (): string => {
    const start = i;
    let c = text.charCodeAt(i);
    if (!(isLetterOrUnderscore(c) || c === COLON)) return "";
    i++;
    while (i < n) {
      c = text.charCodeAt(i);
      if (isLetterOrUnderscore(c) || isDigit(c) || c === COLON) i++;
      else break;
    }
    return text.slice(start, i);
  };
  const labelName = (): string => {
    const start = i;
    let c = text.charCodeAt(i);
    if (!isLetterOrUnderscore(c)) return "";
    i++;
    while (i < n) {
      c = text.charCodeAt(i);
      if (isLetterOrUnderscore(c) || isDigit(c)) i++;
      else break;
    }
    return text.slice(start, i);
  };
  /** Counts the raw line feeds of a piece of a quoted value, for the line numbers of later errors. */
  const countLines = (piece: string): void => {
    for (let k = piece.indexOf("\n"); k >= 0; k = piece.indexOf("\n", k + 1)) line++;
  };
  const unterminated = (): never => {
    countLines(text.slice(i));
    i = n;
    return fail("unterminated label value");
  };
  /**
   * Reads a quoted label value; i is at the opening quote. The closing quote and backslashes are found with
   * indexOf (native, and each search bounded by the value): a value of megabytes costs milliseconds.
   */
  const tooLong = (length: number): never => {
    throw new LabelValueLengthError(
      line,
      `a label value of ${length} or more characters, over the label value length limit of ${labelValueLengthLimit}`,
    );
  };
  const labelValue = (): string => {
    i++;
    const start = i;
    let q = text.indexOf('"', i);
    if (q < 0) {
      // A value still open at the end of the text already this long is over the limit, whatever follows.
      if (labelValueLengthLimit > 0 && n - i > 2 * labelValueLengthLimit) tooLong(n - i);
      return unterminated();
    }
    let seg = text.slice(i, q);
    let b = seg.indexOf("\\");
    if (b < 0) {
      // Fast path: no escapes, the common case.
      countLines(seg);
      i = q + 1;
      if (labelValueLengthLimit > 0 && seg.length > labelValueLengthLimit) tooLong(seg.length);
      return seg;
    }
    let out = seg.slice(0, b);
    countLines(out);
    i = start + b;
    for (;;) {
      // i is at a backslash.
      if (i + 1 >= n) return unterminated();
      const e = text.charCodeAt(i + 1);
      if (e === BACKSLASH) out += "\\";
      else if (e === QUOTE) out += '"';
      else if (e === 0x6e /* n */) out += "\n";
      else {
        if (e === LF) line++;
        out += text.slice(i, i + 2);
      }
      i += 2;
      q = text.indexOf('"', i);
      if (q < 0) return unterminated();
      seg = text.slice(i, q);
      b = seg.indexOf("\\");
      if (b < 0) {
        countLines(seg);
        i = q + 1;
        if (labelValueLengthLimit > 0 && out.length + seg.length > labelValueLengthLimit) {
          tooLong(out.length + seg.length);
        }
        return out + seg;
      }
      const part = seg.slice(0, b);
      countLines(part);
      out += part;
      if (labelValueLengthLimit > 0 && out.length > labelValueLengthLimit) tooLong(out.length);
      i += b;
    }
  };
  /** Reads a token up to a blank, a line feed or the end. */
  const token = (): string => {
    const start = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === SPACE || c === TAB || c === LF) break;
      i++;
    }
    return text.slice(start, i);
  };
  const endOfLine = (what: string): void => {
    skipBlanks();
    if (i < n) {
      if (text.charCodeAt(i) !== LF) fail(`unexpected ${describe(i)} after ${what}`);
      i++;
      line++;
    }
  };

  while (i < n) {
    if (line - sliceLine >= yieldEveryLines || i - sliceStart >= yieldEveryChars) {
      yield;
      sliceLine = line;
      sliceStart = i;
    }
    const lineStart = i;
    state.lineStart = i;
    state.lineStartLine = line;
    skipBlanks();
    if (i >= n) break;
    const c = text.charCodeAt(i);
    if (c === LF) {
      i++;
      line++;
      continue;
    }
    if (c === HASH) {
      i++;
      skipBlanks();
      const isHelp = text.startsWith("HELP", i);
      const isType = !isHelp && text.startsWith("TYPE", i);
      if ((isHelp || isType) && i + 4 < n && isBlank(text.charCodeAt(i + 4))) {
        i += 4;
        skipBlanks();
        const name = metricName();
        if (name === "") fail(`expected a metric name after ${isHelp ? "HELP" : "TYPE"}, got ${describe(i)}`);
        if (isHelp) {
          let docEnd = text.indexOf("\n", i);
          if (docEnd < 0) docEnd = n;
          if (i < docEnd && !isBlank(text.charCodeAt(i)))
            fail(`unexpected ${describe(i)} after the metric name in HELP`);
          skipBlanks();
          if (handler.help) handler.help(name, unescapeHelp(text.slice(Math.min(i, docEnd), docEnd)));
          i = docEnd;
          if (i < n) {
            i++;
            line++;
          }
        } else {
          if (i < n && !isBlank(text.charCodeAt(i))) fail(`unexpected ${describe(i)} after the metric name in TYPE`);
          skipBlanks();
          const t = token();
          if (!TYPES.has(t)) fail(`invalid metric type ${JSON.stringify(t)}`);
          handler.type?.(name, t as MetricType);
          endOfLine("the metric type");
        }
      } else {
        const eol = text.indexOf("\n", i);
        if (eol < 0) i = n;
        else {
          i = eol + 1;
          line++;
        }
      }
      continue;
    }

    if (i !== lineStart) fail("blank before a metric name");
    const start = i;
    const name = metricName();
    if (name === "") fail(`expected a metric name, got ${describe(i)}`);
    const labels: string[] = [];
    // Names seen in this label set, once there are enough of them for a linear scan to cost more than a Set: the
    // repeated-label check stays linear in the line's length however many labels it holds.
    let seen: Set<string> | undefined;
    skipBlanks();
    if (i < n && text.charCodeAt(i) === BRACE_OPEN) {
      i++;
      for (;;) {
        skipBlanks();
        if (i >= n) fail("unterminated label set");
        if (text.charCodeAt(i) === BRACE_CLOSE) {
          i++;
          break;
        }
        const ln = labelName();
        if (ln === "") fail(`expected a label name, got ${describe(i)}`);
        // Refused before its value is even read: a hostile line costs at most labelLimit labels of work and memory.
        if (labelLimit > 0 && labels.length >= labelLimit * 2) {
          throw new LabelLimitError(line, `${name} has more than ${labelLimit} labels (the label limit)`);
        }
        skipBlanks();
        if (text.charCodeAt(i) !== EQUALS) fail(`expected "=" after label name ${ln}, got ${describe(i)}`);
        i++;
        skipBlanks();
        if (text.charCodeAt(i) !== QUOTE) fail(`expected a quoted value for label ${ln}, got ${describe(i)}`);
        const lv = labelValue();
        if (ln === "__name__") fail("label __name__ inside braces repeats the metric name");
        if (seen !== undefined) {
          if (seen.has(ln)) fail(`label name ${JSON.stringify(ln)} is repeated`);
          seen.add(ln);
        } else {
          for (let k = 0; k < labels.length; k += 2) {
            if (labels[k] === ln) fail(`label name ${JSON.stringify(ln)} is repeated`);
          }
          if (labels.length >= LINEAR_LABEL_CHECK * 2) {
            seen = new Set();
            for (let k = 0; k < labels.length; k += 2) seen.add(labels[k]!);
            seen.add(ln);
          }
        }
        labels.push(ln, lv);
        skipBlanks();
        const d = text.charCodeAt(i);
        if (d === COMMA) i++;
        else if (i >= n) fail("unterminated label set");
        else if (d !== BRACE_CLOSE) fail(`expected "," or "}" after a label value, got ${describe(i)}`);
      }
    } else if (i === start + name.length) {
      // No blank after a bare name: the value would run into it.
      fail(`expected a blank or "{" after metric name ${name}, got ${describe(i)}`);
    }
    let seriesEnd = i;
    // The series text excludes blanks before "{" only when there are none, the usual case; trailing blanks are cut.
    while (seriesEnd > start && isBlank(text.charCodeAt(seriesEnd - 1))) seriesEnd--;
    const series = text.slice(start, seriesEnd);
    skipBlanks();
    if (i >= n || text.charCodeAt(i) === LF) fail(`expected a value for ${name}`);
    const vt = token();
    const value = parseValue(vt);
    if (value === undefined) fail(`invalid value ${JSON.stringify(vt)} for ${name}`);
    skipBlanks();
    let timestampMs: number | undefined;
    if (i < n && text.charCodeAt(i) !== LF) {
      const tt = token();
      timestampMs = parseTimestamp(tt);
      if (timestampMs === undefined) fail(`invalid timestamp ${JSON.stringify(tt)} for ${name}`);
    }
    endOfLine("the sample");
    handler.sample(name, labels, value!, timestampMs, series);
  }
  state.line = line;
}

function unescapeHelp(s: string): string {
  if (s.indexOf("\\") < 0) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\" && i + 1 < s.length) {
      const e = s[i + 1];
      if (e === "\\") {
        out += "\\";
        i++;
        continue;
      }
      if (e === "n") {
        out += "\n";
        i++;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** Go's ParseFloat on a decimal, NaN or Inf token; undefined when Go would fail. */
export function parseValue(t: string): number | undefined {
  const len = t.length;
  if (len === 0) return undefined;
  let i = 0;
  let c = t.charCodeAt(0);
  if (c === 0x2b /* + */ || c === 0x2d /* - */) {
    i = 1;
    c = t.charCodeAt(1);
  }
  if (!(isDigit(c) || c === 0x2e /* . */)) {
    const word = t.slice(i).toLowerCase();
    const negative = t.charCodeAt(0) === 0x2d;
    if (word === "inf" || word === "infinity") return negative ? -Infinity : Infinity;
    if (word === "nan" && i === 0) return NaN;
    return undefined;
  }
  let digits = 0;
  while (i < len && isDigit(t.charCodeAt(i))) {
    i++;
    digits++;
  }
  if (i < len && t.charCodeAt(i) === 0x2e) {
    i++;
    while (i < len && isDigit(t.charCodeAt(i))) {
      i++;
      digits++;
    }
  }
  if (digits === 0) return undefined;
  if (i < len && (t.charCodeAt(i) | 0x20) === 0x65 /* e */) {
    i++;
    if (i < len && (t.charCodeAt(i) === 0x2b || t.charCodeAt(i) === 0x2d)) i++;
    const expStart = i;
    while (i < len && isDigit(t.charCodeAt(i))) i++;
    if (i === expStart) return undefined;
  }
  if (i !== len) return undefined;
  const v = Number(t);
  return Number.isFinite(v) ? v : undefined;
}

function parseTimestamp(t: string): number | undefined {
  if (t.length === 0) return undefined;
  for (let i = 0; i < t.length; i++) if (!isDigit(t.charCodeAt(i))) return undefined;
  const v = Number(t);
  return Number.isSafeInteger(v) ? v : undefined;
}
