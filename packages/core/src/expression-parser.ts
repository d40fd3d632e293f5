/**
 * The expression language embedded in dataset-config strings (ARCHITECTURE.md "Dataset config").
 *
 *   $args(name)  $steering(name)  $system(name)      look-ups (values are expanded recursively)
 *   $eval(expr)                                       arithmetic and logic, Python semantics
 *   $sprintf(fmt, a, b, …)                            C/Python-style formatting
 *   $choice(a, b, …)                                  deterministic pick, seeded by dataset + job
 *   $(dataset) $(job) $(task) $(jobs_total) $(iter)   variables
 *
 * A `$` that is not followed by one of these names and `(` is plain text, so shell
 * syntax (`$HOME`, `${HOME}`, `$$`, `$((1+2))`, `$(date)`) passes through untouched.
 * There is no escape sequence at the top level; inside quoted arguments `\$` is a literal `$`.
 *
 * This is a hand-written scanner and recursive-descent parser that evaluates while it
 * parses. It never uses JavaScript `eval`, `Function` or `vm`: the only names `$eval`
 * knows are `and or not True False true false` and the functions
 * `abs min max int float str round`. Every recursion is bounded (expression nesting
 * ≤ maxDepth, parenthesis/operator nesting ≤ 200 in total across all nested `$eval`s), as
 * are input and output lengths, so hostile input gets an ExpressionError, never a crash or
 * a JavaScript stack overflow (a RangeError that still escapes is turned into one).
 *
 * Work is linear in the input. Finding the `)` of a call is the one scan that could be
 * repeated (every `$eval(` of `$eval($eval($eval(…` scans to the end when none is closed):
 * one scan records the match of every parenthesis it passes (a stack), later calls inside
 * it look theirs up, and a per-text work budget backs this up. A static check reports at
 * most MAX_REPORTED_ERRORS errors per string (then "and N more"), and every piece of user
 * text in a message is quoted and cut to a few dozen characters, so an answer about a
 * hostile string stays small.
 */
import { ExpressionError, FirnError } from './errors';

export interface ExpressionContext {
  /** Per-job arguments (offline processing: e.g. `input`, the job's input file URL). */
  args?: Record<string, unknown>;
  /** The dataset's steering parameters; values may themselves contain expressions. */
  steering?: Record<string, unknown>;
  /** Site/system values known on the worker (scratch paths, site temp URL, …). */
  system?: Record<string, unknown>;
  dataset: number;
  job: number;
  task?: string;
  jobs_total: number;
  /** Iteration number of the current tray (0-based). */
  iter?: number;
}

export interface EvaluateOptions {
  /** Longest string any expansion may produce (default 65,536 characters). */
  maxOutput?: number;
  /** Deepest nesting of expressions, including recursion through values (default 20). */
  maxDepth?: number;
  /** Longest text that will be evaluated, including recursively evaluated values (default 65,536). */
  maxInput?: number;
  /**
   * Leave a top-level expression as text when it needs something the context does not
   * have yet: `$(task)` / `$(iter)` when `task` / `iter` is unset, or any `$args` /
   * `$steering` / `$system` when that whole map is absent. Lets the server resolve what
   * it can and the pilot finish on the worker. Unknown names in a map that IS present
   * are still errors. Caveat: the kept text is expanded again later, so text that an
   * expression *produced* and that looks like an expression (e.g. from `\$` in a quoted
   * argument) would be expanded on that second pass.
   */
  keepUnresolved?: boolean;
}

export const EXPRESSION_LIMITS = {
  maxOutput: 65_536,
  maxDepth: 20,
  maxInput: 65_536,
  /** Parentheses, unary operators, `**` chains and call arguments, summed over nested `$eval`s. */
  maxNesting: 200,
  /** Errors one static check (checkExpressions) reports for one string; the rest are counted. */
  maxReportedErrors: 20,
} as const;

export type ReferenceKind = 'args' | 'steering' | 'system' | 'var';
export interface ExpressionReference {
  kind: ReferenceKind;
  name: string;
  /** 0-based offset of the `$` in the scanned text. */
  position: number;
}

// ---------------------------------------------------------------------------------------
// Public API

/** Evaluate every expression in `text` and return the resulting string. */
export function evaluate(text: string, ctx: ExpressionContext, opts: EvaluateOptions = {}): string {
  return guarded(text, () => expandRoot(makeState(ctx, opts), text));
}

/**
 * Deep-walk objects and arrays, evaluating every string value (keys are left alone).
 * Returns a new structure; the input is not modified. When `ctx.steering` is omitted and
 * `value` looks like a dataset config, its `steering.parameters` are used. Steering
 * parameters may reference one another; each is expanded once per call (memoised).
 * An error names the JSON path of the failing string.
 */
export function expandConfig<T>(value: T, ctx: ExpressionContext, opts: EvaluateOptions = {}): T {
  let context = ctx;
  if (context.steering === undefined) {
    const params = steeringParametersOf(value);
    if (params) context = { ...ctx, steering: params };
  }
  const st = makeState(context, opts);
  return guarded('', () => walkConfig(value, st, '', 0) as T);
}

/**
 * Static scan: every `$args`/`$steering`/`$system` name and `$(var)` in `text`, nested ones
 * included. A name that is itself computed (`$steering($args(x))`) is not listed, but the
 * references inside it are. Never throws; malformed parts are skipped (see checkExpressions).
 */
export function scanReferences(text: string): ExpressionReference[] {
  return guarded(text, () => analyze(text).references, () => []);
}

/** Static check: syntax errors (unbalanced parentheses, bad `$eval` syntax, bad literal
 * sprintf formats, nesting too deep) without evaluating anything. Empty when fine. */
export function checkExpressions(text: string): ExpressionError[] {
  return guarded(text, () => {
    const a = analyze(text);
    if (a.omitted === 0) return a.errors;
    const more = expressionError(`and ${a.omitted} more error${a.omitted === 1 ? '' : 's'} in this text`, text, a.omittedAt);
    return [...a.errors, more];
  });
}

/** True when `text` contains at least one expression (a `$` that is not plain text). */
export function hasExpressions(text: string): boolean {
  return guarded(text, () => {
    const a = analyze(text);
    return a.references.length > 0 || a.errors.length > 0 || a.calls > 0;
  });
}

/**
 * The index `$choice` picks among `n` options for this dataset and job. `salt` is the
 * option list's text, so different lists are independent while one list always gives
 * the same answer for the same dataset and job (and so for every task of that job).
 */
export function choiceIndex(dataset: number, job: number, salt: string, n: number): number {
  if (n <= 0) return 0;
  const r = mulberry32(fnv1a(`${dataset}\u0000${job}\u0000${salt}`));
  return Math.min(n - 1, Math.floor(r * n));
}

/** Python's repr() of a float: `3.5`, `3.0`, `1e-05`, `1e+16`, `inf`, `nan`. */
export function formatFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant = '0', expText = '0'] = x.toExponential().split('e');
  const exp = Number(expText);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  } else if (exp >= 0) {
    body =
      digits.length <= exp + 1
        ? `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`
        : `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    body = `0.${'0'.repeat(-exp - 1)}${digits}`;
  }
  return neg ? `-${body}` : body;
}

// ---------------------------------------------------------------------------------------
// State shared by one evaluate()/expandConfig() call

interface State {
  ctx: ExpressionContext;
  maxOutput: number;
  maxDepth: number;
  maxInput: number;
  keepUnresolved: boolean;
  /** Expanded look-up values, so `a = $steering(b)$steering(b)` chains stay linear. */
  memo: Map<string, string>;
  /** Current `$eval` nesting (parentheses, operators, call arguments), over all nested `$eval`s. */
  nest: number;
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new FirnError(`expression option ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function makeState(ctx: ExpressionContext, opts: EvaluateOptions): State {
  return {
    ctx,
    maxOutput: positiveInt('maxOutput', opts.maxOutput, EXPRESSION_LIMITS.maxOutput),
    maxDepth: positiveInt('maxDepth', opts.maxDepth, EXPRESSION_LIMITS.maxDepth),
    maxInput: positiveInt('maxInput', opts.maxInput, EXPRESSION_LIMITS.maxInput),
    keepUnresolved: opts.keepUnresolved ?? false,
    memo: new Map(),
    nest: 0,
  };
}

/** Thrown (never escapes this module) when keepUnresolved defers an expression. */
class Unresolved {}

/** Messages without the "at position N in …" suffix, for re-wrapping with a JSON path. */
const rawMessages = new WeakMap<ExpressionError, string>();

function expressionError(message: string, text: string, position: number): ExpressionError {
  const e = new ExpressionError(message, text, position);
  // the whole text stays readable (e.expression) but out of JSON: an error serialised into an
  // answer or a log line carries its bounded message (with a 200-character excerpt), not 64 KB
  Object.defineProperty(e, 'expression', { enumerable: false });
  rawMessages.set(e, message);
  return e;
}

/**
 * Runs `fn`; a RangeError (a JavaScript stack overflow or an out-of-range number method:
 * every path is meant to be bounded before either can happen, this is the backstop)
 * becomes an ExpressionError, or `fallback()` when given (for the never-throwing scans).
 */
function guarded<T>(text: string, fn: () => T, fallback?: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    if (fallback) return fallback();
    throw expressionError('expression too complex to evaluate (nested or repeated too much)', text, 0);
  }
}

/** User text inside a message: quoted, and cut to `max` characters. */
function quoted(s: string, max = 60): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

function expandRoot(st: State, text: string): string {
  if (!text.includes('$')) return text;
  return Expander.create(st, text, undefined, 0).expand(0, text.length, 0, false);
}

function steeringParametersOf(value: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(value) || !Object.hasOwn(value, 'steering')) return undefined;
  const steering = value['steering'];
  if (!isPlainObject(steering) || !Object.hasOwn(steering, 'parameters')) return undefined;
  const params = steering['parameters'];
  return isPlainObject(params) ? params : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const MAX_CONFIG_NESTING = 200;

function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function walkConfig(value: unknown, st: State, path: string, depth: number): unknown {
  if (depth > MAX_CONFIG_NESTING) {
    throw new FirnError(`${path || '/'}: value nested too deeply (more than ${MAX_CONFIG_NESTING} levels)`);
  }
  if (typeof value === 'string') {
    try {
      return expandRoot(st, value);
    } catch (e) {
      const raw = e instanceof ExpressionError ? rawMessages.get(e) : undefined;
      if (e instanceof ExpressionError && raw !== undefined && path) {
        throw expressionError(`${path}: ${raw}`, e.expression, e.position);
      }
      throw e;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => walkConfig(v, st, `${path}/${i}`, depth + 1));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const expanded = walkConfig(v, st, `${path}/${pointerToken(k)}`, depth + 1);
      // A literal "__proto__" key (JSON.parse makes it an own property) must stay a plain
      // property, not become the new object's prototype.
      Object.defineProperty(out, k, { value: expanded, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Values inside $eval

type Value =
  | { t: 'int'; v: number }
  | { t: 'float'; v: number }
  | { t: 'str'; v: string }
  | { t: 'bool'; v: boolean };

const PLACEHOLDER: Value = { t: 'int', v: 0 };
const int = (v: number): Value => ({ t: 'int', v });
const float = (v: number): Value => ({ t: 'float', v });
const str = (v: string): Value => ({ t: 'str', v });
const bool = (v: boolean): Value => ({ t: 'bool', v });

function display(v: Value): string {
  switch (v.t) {
    case 'int':
      return String(v.v);
    case 'float':
      return formatFloat(v.v);
    case 'bool':
      return v.v ? 'True' : 'False';
    case 'str':
      return v.v;
  }
}

function typeName(v: Value): string {
  return v.t;
}

function describeValue(v: Value): string {
  const s = v.t === 'str' ? JSON.stringify(v.v.length > 40 ? `${v.v.slice(0, 40)}…` : v.v) : display(v);
  return `${s} (${typeName(v)})`;
}

function truthy(v: Value): boolean {
  switch (v.t) {
    case 'int':
    case 'float':
      return v.v !== 0 && !Number.isNaN(v.v);
    case 'bool':
      return v.v;
    case 'str':
      return v.v.length > 0;
  }
}

function numeric(v: Value): { f: boolean; n: number } | null {
  switch (v.t) {
    case 'int':
      return { f: false, n: v.v };
    case 'float':
      return { f: true, n: v.v };
    case 'bool':
      return { f: false, n: v.v ? 1 : 0 };
    case 'str':
      return null;
  }
}

const INT_TEXT = /^\s*[+-]?\d+\s*$/;
const FLOAT_TEXT = /^\s*[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?\s*$/;

/** The value a substituted text stands for in `$eval`: a number, a boolean, or a string. */
function autoType(text: string): Value {
  if (INT_TEXT.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? int(n) : str(text);
  }
  if (FLOAT_TEXT.test(text)) return float(Number(text));
  const t = text.trim();
  if (t === 'True' || t === 'true') return bool(true);
  if (t === 'False' || t === 'false') return bool(false);
  return str(text);
}

/** How a looked-up value (args/steering/system) appears in text. */
function valueToText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'bigint') return v.toString();
  if (v === undefined) return '';
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------
// Text-level scanning: finding calls, matching parentheses, splitting arguments

const FUNCTIONS = ['args', 'steering', 'system', 'eval', 'sprintf', 'choice'] as const;
type FunctionName = (typeof FUNCTIONS)[number];
const FUNCTION_SET: ReadonlySet<string> = new Set(FUNCTIONS);
const VARIABLES = ['dataset', 'job', 'task', 'jobs_total', 'iter'] as const;

const LOOKUP_NOUN = { args: 'argument', steering: 'steering parameter', system: 'system value' } as const;

type Call =
  | { kind: 'var'; name: string; start: number; end: number }
  | { kind: 'func'; name: FunctionName; start: number; argStart: number; argEnd: number; end: number };

interface Range {
  start: number;
  end: number;
}

interface Sink {
  references: ExpressionReference[];
  /** The first EXPRESSION_LIMITS.maxReportedErrors errors… */
  errors: ExpressionError[];
  /** …and how many more there were, the first of them at `omittedAt`. */
  omitted: number;
  omittedAt: number;
  calls: number;
}

/**
 * Thrown instead of an ExpressionError once a static scan has all the errors it reports:
 * only counted, so it is not worth building a message and a stack trace for each.
 */
class CountedError {
  constructor(readonly position: number) {}
}

function report(sink: Sink, e: ExpressionError | CountedError): void {
  if (e instanceof ExpressionError && sink.errors.length < EXPRESSION_LIMITS.maxReportedErrors) sink.errors.push(e);
  else if (sink.omitted++ === 0) sink.omittedAt = e.position;
}

function sinkFull(sink: Sink): boolean {
  return sink.errors.length >= EXPRESSION_LIMITS.maxReportedErrors;
}

/** A paren match found by one findClose scan: `close` is -1 when none before `end`. */
interface CloseMatch {
  close: number;
  end: number;
  /** When not closed: where the string that was still open at `end` began, else -1. */
  quoteAt: number;
}

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
function isIdentPart(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
}

function unescapeChar(c: string): string {
  switch (c) {
    case 'n':
      return '\n';
    case 't':
      return '\t';
    case 'r':
      return '\r';
    case '0':
      return '\0';
    default:
      return c; // \\ \" \' \$ \, and anything else: the character itself
  }
}

const DOLLAR = 36;
const BACKSLASH = 92;

/** Characters findClose/splitArgs may scan per character of the text (a backstop: the cache keeps it near 1). */
const WORK_PER_CHAR = 64;

class Expander {
  /** Matches recorded by findClose, by the index of the `(`. */
  private readonly closes = new Map<number, CloseMatch>();
  /** Characters scanned by findClose and splitArgs so far, and the most allowed. */
  private work = 0;
  private readonly maxWork: number;
  /** Set by a static scan whose sink is full: fail() only needs to be counted. */
  countOnly = false;

  private constructor(
    private readonly st: State,
    readonly text: string,
    private readonly label: string | undefined,
  ) {
    this.maxWork = WORK_PER_CHAR * text.length + 4096;
  }

  static create(st: State, text: string, label: string | undefined, position: number, parent?: Expander): Expander {
    if (text.length > st.maxInput) {
      const msg = `expression input too long (${text.length} characters, max ${st.maxInput})`;
      if (parent) parent.fail(`${label ?? 'value'}: ${msg}`, position);
      throw expressionError(msg, text, 0);
    }
    return new Expander(st, text, label);
  }

  get maxOutput(): number {
    return this.st.maxOutput;
  }

  /** One level deeper in some `$eval`; an error past EXPRESSION_LIMITS.maxNesting in total. */
  enterNest(position: number): void {
    if (++this.st.nest > EXPRESSION_LIMITS.maxNesting) {
      this.fail(`expression nested too deeply (max ${EXPRESSION_LIMITS.maxNesting} levels)`, position);
    }
  }
  leaveNest(): void {
    this.st.nest--;
  }
  get nestLevel(): number {
    return this.st.nest;
  }
  set nestLevel(n: number) {
    this.st.nest = n;
  }

  private spend(chars: number, position: number): void {
    this.work += chars;
    if (this.work > this.maxWork) this.fail('expression too complex (too many nested or unclosed calls)', position);
  }

  fail(message: string, position: number): never {
    if (this.countOnly) throw new CountedError(position);
    throw expressionError(this.label ? `${message} (in ${this.label})` : message, this.text, position);
  }

  private checkOutput(length: number, position: number): void {
    if (length > this.st.maxOutput) {
      this.fail(`expression output too long (more than ${this.st.maxOutput} characters; see maxOutput)`, position);
    }
  }

  /** Index of the next `$` (or `\` when unescaping) in [from, end), or `end`. */
  private nextSpecial(from: number, end: number, unescape: boolean): number {
    const t = this.text;
    for (let i = from; i < end; i++) {
      const c = t.charCodeAt(i);
      if (c === DOLLAR || (unescape && c === BACKSLASH)) return i;
    }
    return end;
  }

  /** Expand the expressions in text[start, end). `depth` is the nesting level of this text. */
  expand(start: number, end: number, depth: number, unescape: boolean): string {
    const t = this.text;
    let out = '';
    let i = start;
    while (i < end) {
      const j = this.nextSpecial(i, end, unescape);
      if (j > i) out += t.slice(i, j);
      if (j >= end) break;
      if (t.charCodeAt(j) === BACKSLASH) {
        if (j + 1 < end) {
          out += unescapeChar(t.charAt(j + 1));
          i = j + 2;
        } else {
          out += '\\';
          i = j + 1;
        }
        continue;
      }
      const call = this.matchCall(j, end);
      if (!call) {
        out += '$';
        i = j + 1;
        continue;
      }
      if (depth === 0 && this.st.keepUnresolved) {
        try {
          out += this.evalCall(call, depth);
        } catch (e) {
          if (!(e instanceof Unresolved)) throw e;
          out += t.slice(call.start, call.end);
        }
      } else {
        out += this.evalCall(call, depth);
      }
      this.checkOutput(out.length, j);
      i = call.end;
    }
    this.checkOutput(out.length, start);
    return out;
  }

  /** Recognise a call starting at the `$` at `j`, or null when the `$` is plain text. */
  matchCall(j: number, end: number): Call | null {
    const t = this.text;
    const c1 = t.charCodeAt(j + 1);
    if (j + 1 >= end) return null;
    if (c1 === 40 /* ( */) {
      for (const name of VARIABLES) {
        const close = j + 2 + name.length;
        if (close < end && t.startsWith(name, j + 2) && t.charCodeAt(close) === 41 /* ) */) {
          return { kind: 'var', name, start: j, end: close + 1 };
        }
      }
      return null;
    }
    if (!isIdentStart(c1)) return null;
    let k = j + 1;
    while (k < end && isIdentPart(t.charCodeAt(k))) k++;
    if (k >= end || t.charCodeAt(k) !== 40) return null;
    const name = t.slice(j + 1, k);
    if (!FUNCTION_SET.has(name)) return null;
    const close = this.findClose(k, end, name);
    return { kind: 'func', name: name as FunctionName, start: j, argStart: k + 1, argEnd: close, end: close + 1 };
  }

  /**
   * The `)` matching the `(` at `open`, skipping quoted strings; an error when there is none.
   * One scan records the match of every `(` it passes outside a string: a later call whose
   * `(` is one of them starts in the same state (outside a string), so its scan would be
   * the same characters, and it reads the answer instead (linear, not quadratic, for
   * `$eval($eval($eval(…` with or without its closing parentheses).
   */
  private findClose(open: number, end: number, name: string): number {
    const known = this.closes.get(open);
    if (known && ((known.close >= 0 && known.close < end) || (known.close < 0 && known.end === end))) {
      return known.close >= 0 ? known.close : this.unclosed(known.quoteAt, open, name);
    }
    const t = this.text;
    const stack: number[] = [];
    let quote = 0;
    let quoteAt = -1;
    let i = open;
    for (; i < end; i++) {
      const c = t.charCodeAt(i);
      if (quote) {
        if (c === BACKSLASH) i++;
        else if (c === quote) quote = 0;
        continue;
      }
      if (c === 34 || c === 39) {
        quote = c;
        quoteAt = i;
      } else if (c === 40) stack.push(i);
      else if (c === 41) {
        const o = stack.pop() as number;
        this.closes.set(o, { close: i, end, quoteAt: -1 });
        if (stack.length === 0) break;
      }
    }
    this.spend(Math.min(i, end) - open + 1, open);
    if (i < end) return i;
    const stillOpen = quote ? quoteAt : -1;
    for (const o of stack) this.closes.set(o, { close: -1, end, quoteAt: stillOpen });
    return this.unclosed(stillOpen, open, name);
  }

  private unclosed(quoteAt: number, open: number, name: string): never {
    if (quoteAt >= 0) this.fail(`unterminated string in $${name}(…)`, quoteAt);
    this.fail(`unbalanced parentheses: "$${name}(" is never closed`, open - name.length - 1);
  }

  /** Split text[start, end) at top-level commas into trimmed pieces. */
  splitArgs(start: number, end: number): Range[] {
    const t = this.text;
    this.spend(end - start, start);
    const pieces: Range[] = [];
    let depth = 0;
    let quote = 0;
    let from = start;
    for (let i = start; i < end; i++) {
      const c = t.charCodeAt(i);
      if (quote) {
        if (c === BACKSLASH) i++;
        else if (c === quote) quote = 0;
        continue;
      }
      if (c === 34 || c === 39) quote = c;
      else if (c === 40) depth++;
      else if (c === 41) depth--;
      else if (c === 44 /* , */ && depth === 0) {
        pieces.push(this.trim(from, i));
        from = i + 1;
      }
    }
    const last = this.trim(from, end);
    if (pieces.length > 0 || last.end > last.start) pieces.push(last);
    return pieces;
  }

  private trim(start: number, end: number): Range {
    const t = this.text;
    while (start < end && isSpace(t.charCodeAt(start))) start++;
    while (end > start && isSpace(t.charCodeAt(end - 1))) end--;
    return { start, end };
  }

  /** When the piece is exactly one quoted string, the range of its content. */
  private quotedContent(p: Range): Range | null {
    const t = this.text;
    const q = t.charCodeAt(p.start);
    if (p.end - p.start < 2 || (q !== 34 && q !== 39)) return null;
    for (let i = p.start + 1; i < p.end; i++) {
      const c = t.charCodeAt(i);
      if (c === BACKSLASH) i++;
      else if (c === q) return i === p.end - 1 ? { start: p.start + 1, end: i } : null;
    }
    return null;
  }

  /** The text of a sprintf/choice argument: a quoted string (escapes processed) or raw text. */
  private pieceText(p: Range, level: number): string {
    const q = this.quotedContent(p);
    return q ? this.expand(q.start, q.end, level, true) : this.expand(p.start, p.end, level, false);
  }

  // --- evaluation ---------------------------------------------------------------------

  /** Evaluate one call found in text at nesting `depth` (its own level is depth + 1). */
  evalCall(call: Call, depth: number): string {
    const level = depth + 1;
    if (level > this.st.maxDepth) this.fail(`recursion depth exceeded (max ${this.st.maxDepth})`, call.start);
    if (call.kind === 'var') return this.variable(call);
    switch (call.name) {
      case 'args':
      case 'steering':
      case 'system':
        return this.lookup(call.name, call, level);
      case 'eval':
        return display(new ExprParser(this, call.argStart, call.argEnd, level, null).run());
      case 'sprintf':
        return this.sprintf(call, level);
      case 'choice':
        return this.choice(call, level);
    }
  }

  private variable(call: Call & { kind: 'var' }): string {
    const ctx = this.st.ctx;
    switch (call.name) {
      case 'dataset':
        return String(ctx.dataset);
      case 'job':
        return String(ctx.job);
      case 'jobs_total':
        return String(ctx.jobs_total);
      case 'task':
        if (ctx.task !== undefined) return ctx.task;
        break;
      case 'iter':
        if (ctx.iter !== undefined) return String(ctx.iter);
        break;
    }
    if (this.st.keepUnresolved) throw new Unresolved();
    return this.fail(`$(${call.name}) is not defined in this context`, call.start);
  }

  private lookupName(call: Call & { kind: 'func' }, level: number): string {
    const p = this.trim(call.argStart, call.argEnd);
    const name = this.pieceText(p, level).trim();
    if (!name) this.fail(`$${call.name}() needs a name`, call.start);
    return name;
  }

  private lookup(kind: 'args' | 'steering' | 'system', call: Call & { kind: 'func' }, level: number): string {
    const name = this.lookupName(call, level);
    const noun = LOOKUP_NOUN[kind];
    const map = this.st.ctx[kind];
    if (map === undefined || map === null) {
      if (this.st.keepUnresolved) throw new Unresolved();
      this.fail(`unknown ${noun} ${quoted(name)} (no ${noun}s in this context)`, call.start);
    }
    if (!Object.hasOwn(map, name)) this.fail(`unknown ${noun} ${quoted(name)}`, call.start);
    const key = `${kind}\u0000${name}`;
    const cached = this.st.memo.get(key);
    if (cached !== undefined) return cached;
    const raw: unknown = map[name];
    let text: string;
    if (typeof raw === 'string' && raw.includes('$')) {
      const sub = Expander.create(this.st, raw, `${noun} ${quoted(name, 40)}`, call.start, this);
      text = sub.expand(0, raw.length, level, false);
    } else {
      text = valueToText(raw);
      this.checkOutput(text.length, call.start);
    }
    this.st.memo.set(key, text);
    return text;
  }

  private sprintf(call: Call & { kind: 'func' }, level: number): string {
    const pieces = this.splitArgs(call.argStart, call.argEnd);
    const [fmtPiece, ...argPieces] = pieces;
    if (!fmtPiece) return this.fail('bad sprintf: missing format string', call.start);
    const fmt = this.pieceText(fmtPiece, level);
    const args = argPieces.map((p) => ({ text: this.pieceText(p, level), position: p.start }));
    return formatSprintf(fmt, args, (msg, position) => this.fail(`bad sprintf: ${msg}`, position ?? call.start), this.st.maxOutput);
  }

  private choice(call: Call & { kind: 'func' }, level: number): string {
    const pieces = this.splitArgs(call.argStart, call.argEnd);
    if (pieces.length === 0) this.fail('$choice() needs at least one option', call.start);
    const salt = this.text.slice(call.argStart, call.argEnd);
    const idx = choiceIndex(this.st.ctx.dataset, this.st.ctx.job, salt, pieces.length);
    const picked = pieces[idx];
    return picked ? this.pieceText(picked, level) : '';
  }

  // --- static scan ----------------------------------------------------------------------

  scan(start: number, end: number, depth: number, unescape: boolean, sink: Sink): void {
    const t = this.text;
    let i = start;
    while (i < end) {
      const j = this.nextSpecial(i, end, unescape);
      if (j >= end) break;
      if (t.charCodeAt(j) === BACKSLASH) {
        i = j + 2;
        continue;
      }
      let call: Call | null;
      try {
        this.countOnly = sinkFull(sink);
        call = this.matchCall(j, end);
      } catch (e) {
        if (!(e instanceof ExpressionError || e instanceof CountedError)) throw e;
        report(sink, e);
        i = j + 1;
        continue;
      }
      if (!call) {
        i = j + 1;
        continue;
      }
      const nest = this.nestLevel;
      try {
        this.countOnly = sinkFull(sink);
        this.scanCall(call, depth, sink);
      } catch (e) {
        if (!(e instanceof ExpressionError || e instanceof CountedError)) throw e;
        this.nestLevel = nest; // the scan goes on after an error: undo the levels it left entered
        report(sink, e);
      }
      i = call.end;
    }
  }

  scanCall(call: Call, depth: number, sink: Sink): void {
    const level = depth + 1;
    sink.calls++;
    if (level > this.st.maxDepth) this.fail(`recursion depth exceeded (max ${this.st.maxDepth})`, call.start);
    if (call.kind === 'var') {
      sink.references.push({ kind: 'var', name: call.name, position: call.start });
      return;
    }
    switch (call.name) {
      case 'args':
      case 'steering':
      case 'system': {
        const p = this.trim(call.argStart, call.argEnd);
        const q = this.quotedContent(p);
        const r = q ?? p;
        const raw = this.text.slice(r.start, r.end);
        if (raw.includes('$') || (q && raw.includes('\\'))) {
          this.scan(r.start, r.end, level, q !== null, sink);
        } else if (!raw.trim()) {
          this.fail(`$${call.name}() needs a name`, call.start);
        } else {
          sink.references.push({ kind: call.name, name: raw.trim(), position: call.start });
        }
        return;
      }
      case 'eval':
        new ExprParser(this, call.argStart, call.argEnd, level, sink).run();
        return;
      case 'sprintf':
      case 'choice': {
        const pieces = this.splitArgs(call.argStart, call.argEnd);
        if (pieces.length === 0) {
          this.fail(call.name === 'sprintf' ? 'bad sprintf: missing format string' : '$choice() needs at least one option', call.start);
        }
        for (const p of pieces) {
          const q = this.quotedContent(p);
          if (q) this.scan(q.start, q.end, level, true, sink);
          else this.scan(p.start, p.end, level, false, sink);
        }
        const fmtPiece = pieces[0];
        if (call.name === 'sprintf' && fmtPiece) {
          const q = this.quotedContent(fmtPiece) ?? fmtPiece;
          const fmtRaw = this.text.slice(q.start, q.end);
          if (!fmtRaw.includes('$') && !fmtRaw.includes('\\')) {
            checkSprintfFormat(fmtRaw, pieces.length - 1, (msg) => this.fail(`bad sprintf: ${msg}`, call.start));
          }
        }
        return;
      }
    }
  }
}

function analyze(text: string): Sink {
  const sink: Sink = { references: [], errors: [], omitted: 0, omittedAt: 0, calls: 0 };
  if (!text.includes('$')) return sink;
  if (text.length > EXPRESSION_LIMITS.maxInput) {
    // evaluate() refuses it too (maxInput): say so once instead of scanning it
    sink.errors.push(expressionError(`expression input too long (${text.length} characters, max ${EXPRESSION_LIMITS.maxInput})`, text, 0));
    return sink;
  }
  const st = makeState({ dataset: 0, job: 0, jobs_total: 0 }, {});
  Expander.create(st, text, undefined, 0).scan(0, text.length, 0, false, sink);
  return sink;
}

// ---------------------------------------------------------------------------------------
// $eval: tokenizer + recursive-descent parser that evaluates as it parses

type Token =
  | { k: 'num'; pos: number; value: Value }
  | { k: 'str'; pos: number; start: number; end: number }
  | { k: 'name'; pos: number; name: string }
  | { k: 'call'; pos: number; call: Call }
  | { k: 'op'; pos: number; op: string }
  | { k: 'end'; pos: number };

const TWO_CHAR_OPS = new Set(['**', '//', '==', '!=', '<=', '>=', '&&', '||']);
const ONE_CHAR_OPS = new Set(['+', '-', '*', '/', '%', '<', '>', '!', '(', ')', ',']);
const COMPARISONS = new Set(['==', '!=', '<', '<=', '>', '>=']);
const KEYWORDS = new Set(['and', 'or', 'not', 'True', 'False', 'true', 'false']);
const BUILTINS = new Set(['abs', 'min', 'max', 'int', 'float', 'str', 'round']);
const NUMBER_RE = /(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;

function describeToken(tok: Token, text: string): string {
  switch (tok.k) {
    case 'end':
      return 'end of expression';
    case 'num':
      return `number ${display(tok.value)}`;
    case 'str':
      return 'string';
    case 'name':
      return `name ${quoted(tok.name)}`;
    case 'call':
      return quoted(text.slice(tok.call.start, tok.call.end));
    case 'op':
      return `"${tok.op}"`;
  }
}

class ExprParser {
  private i: number;
  private tok: Token = { k: 'end', pos: 0 };
  private active: boolean;
  private readonly text: string;

  constructor(
    private readonly ex: Expander,
    private readonly start: number,
    private readonly end: number,
    /** Nesting level of the `$eval` itself; `$`-calls inside it are one deeper. */
    private readonly level: number,
    /** Non-null: static scan (nothing evaluated, references collected). */
    private readonly sink: Sink | null,
  ) {
    this.text = ex.text;
    this.i = start;
    this.active = sink === null;
  }

  run(): Value {
    const nest = this.ex.nestLevel;
    try {
      this.advance();
      if (this.tok.k === 'end') this.ex.fail('empty expression in $eval()', this.start - '$eval('.length);
      const v = this.parseOr();
      if (!this.atEnd()) this.unexpected();
      return v;
    } finally {
      this.ex.nestLevel = nest;
    }
  }

  private atEnd(): boolean {
    return this.tok.k === 'end';
  }

  private fail(message: string, position: number): never {
    return this.ex.fail(message, position);
  }

  private unexpected(): never {
    const tok = this.tok;
    if (tok.k === 'op' && tok.op === ')') this.fail('unbalanced parentheses: unexpected ")"', tok.pos);
    return this.fail(`unexpected ${describeToken(tok, this.text)}`, tok.pos);
  }

  private enter(position: number): void {
    this.ex.enterNest(position);
  }

  private leave(): void {
    this.ex.leaveNest();
  }

  // --- tokenizer --------------------------------------------------------------------------

  private advance(): void {
    const t = this.text;
    const end = this.end;
    let i = this.i;
    while (i < end && isSpace(t.charCodeAt(i))) i++;
    if (i >= end) {
      this.tok = { k: 'end', pos: i };
      this.i = i;
      return;
    }
    const c = t.charCodeAt(i);
    if (isDigit(c) || (c === 46 /* . */ && i + 1 < end && isDigit(t.charCodeAt(i + 1)))) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(t);
      const lit = m ? m[0] : t.charAt(i);
      const after = i + lit.length;
      if (after < end && (isIdentPart(t.charCodeAt(after)) || t.charCodeAt(after) === 46)) {
        this.fail(`invalid number ${quoted(t.slice(i, Math.min(end, after + 1)), 40)}`, i);
      }
      const isFloat = /[.eE]/.test(lit);
      const n = Number(lit);
      if (!isFloat && !Number.isSafeInteger(n)) this.fail(`integer literal too large: ${lit.length > 40 ? `${lit.slice(0, 40)}…` : lit}`, i);
      this.tok = { k: 'num', pos: i, value: isFloat ? float(n) : int(n) };
      this.i = after;
      return;
    }
    if (c === 34 || c === 39) {
      for (let k = i + 1; k < end; k++) {
        const d = t.charCodeAt(k);
        if (d === BACKSLASH) k++;
        else if (d === c) {
          this.tok = { k: 'str', pos: i, start: i + 1, end: k };
          this.i = k + 1;
          return;
        }
      }
      this.fail('unterminated string', i);
    }
    if (isIdentStart(c)) {
      let k = i + 1;
      while (k < end && isIdentPart(t.charCodeAt(k))) k++;
      this.tok = { k: 'name', pos: i, name: t.slice(i, k) };
      this.i = k;
      return;
    }
    if (c === DOLLAR) {
      const call = this.ex.matchCall(i, end);
      if (!call) this.fail('unexpected "$" (not a known expression such as $steering(name) or $(job))', i);
      this.tok = { k: 'call', pos: i, call };
      this.i = call.end;
      return;
    }
    const two = t.slice(i, i + 2);
    if (i + 1 < end && TWO_CHAR_OPS.has(two)) {
      this.tok = { k: 'op', pos: i, op: two };
      this.i = i + 2;
      return;
    }
    const one = t.charAt(i);
    if (ONE_CHAR_OPS.has(one)) {
      this.tok = { k: 'op', pos: i, op: one };
      this.i = i + 1;
      return;
    }
    if (one === '=') this.fail('unexpected "=" (use "==" to compare)', i);
    if (one === '&' || one === '|') this.fail(`unexpected "${one}" (use "${one}${one}" or "${one === '&' ? 'and' : 'or'}")`, i);
    this.fail(`unexpected character ${JSON.stringify(one)}`, i);
  }

  private isOp(...ops: string[]): boolean {
    const tok = this.tok;
    if (tok.k === 'op') return ops.includes(tok.op);
    if (tok.k === 'name') return ops.includes(tok.name);
    return false;
  }

  private opText(): string {
    const tok = this.tok;
    return tok.k === 'op' ? tok.op : tok.k === 'name' ? tok.name : '';
  }

  // --- grammar (Python precedence) ---------------------------------------------------------
  // or := and (('or'|'||') and)*          and := not (('and'|'&&') not)*
  // not := ('not'|'!') not | comparison    comparison := additive (cmp additive)*   (chained)
  // additive := term (('+'|'-') term)*    term := unary (('*'|'/'|'//'|'%') unary)*
  // unary := ('-'|'+') unary | power       power := primary ('**' unary)?

  private parseOr(): Value {
    let left = this.parseAnd();
    while (this.isOp('or', '||')) {
      this.advance();
      const saved = this.active;
      const decided = saved && truthy(left);
      if (decided) this.active = false;
      const right = this.parseAnd();
      this.active = saved;
      if (saved && !decided) left = right;
    }
    return left;
  }

  private parseAnd(): Value {
    let left = this.parseNot();
    while (this.isOp('and', '&&')) {
      this.advance();
      const saved = this.active;
      const decided = saved && !truthy(left);
      if (decided) this.active = false;
      const right = this.parseNot();
      this.active = saved;
      if (saved && !decided) left = right;
    }
    return left;
  }

  private parseNot(): Value {
    if (this.isOp('not', '!')) {
      const pos = this.tok.pos;
      this.advance();
      this.enter(pos);
      const v = this.parseNot();
      this.leave();
      return this.active ? bool(!truthy(v)) : PLACEHOLDER;
    }
    return this.parseComparison();
  }

  private parseComparison(): Value {
    let left = this.parseAdditive();
    if (!(this.tok.k === 'op' && COMPARISONS.has(this.tok.op))) return left;
    // Chained like Python: `a < b < c` is `a < b and b < c`; once false, the rest is skipped.
    const saved = this.active;
    let ok = true;
    while (this.tok.k === 'op' && COMPARISONS.has(this.tok.op)) {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      const right = this.parseAdditive();
      if (this.active) {
        ok = this.compare(op, left, right, pos);
        if (!ok) this.active = false;
      }
      left = right;
    }
    this.active = saved;
    return saved ? bool(ok) : PLACEHOLDER;
  }

  private parseAdditive(): Value {
    let left = this.parseTerm();
    while (this.isOp('+', '-') && this.tok.k === 'op') {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      const right = this.parseTerm();
      left = this.active ? this.binary(op, left, right, pos) : PLACEHOLDER;
    }
    return left;
  }

  private parseTerm(): Value {
    let left = this.parseUnary();
    while (this.tok.k === 'op' && ['*', '/', '//', '%'].includes(this.tok.op)) {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      const right = this.parseUnary();
      left = this.active ? this.binary(op, left, right, pos) : PLACEHOLDER;
    }
    return left;
  }

  private parseUnary(): Value {
    if (this.tok.k === 'op' && (this.tok.op === '-' || this.tok.op === '+')) {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      this.enter(pos);
      const v = this.parseUnary();
      this.leave();
      if (!this.active) return PLACEHOLDER;
      const n = numeric(v);
      if (!n) this.fail(`bad operand for unary ${op}: ${describeValue(v)}`, pos);
      const r = op === '-' ? -n.n : n.n;
      return n.f ? float(r) : int(r);
    }
    return this.parsePower();
  }

  private parsePower(): Value {
    const base = this.parsePrimary();
    if (!this.isOp('**')) return base;
    const pos = this.tok.pos;
    this.advance();
    this.enter(pos);
    const exp = this.parseUnary();
    this.leave();
    return this.active ? this.binary('**', base, exp, pos) : PLACEHOLDER;
  }

  private parsePrimary(): Value {
    const tok = this.tok;
    switch (tok.k) {
      case 'num':
        this.advance();
        return tok.value;
      case 'str': {
        this.advance();
        if (this.sink) this.ex.scan(tok.start, tok.end, this.level, true, this.sink);
        return this.active ? str(this.ex.expand(tok.start, tok.end, this.level, true)) : PLACEHOLDER;
      }
      case 'call': {
        this.advance();
        if (this.sink) this.ex.scanCall(tok.call, this.level, this.sink);
        return this.active ? autoType(this.ex.evalCall(tok.call, this.level)) : PLACEHOLDER;
      }
      case 'name':
        return this.parseName(tok);
      case 'op':
        if (tok.op === '(') {
          this.advance();
          this.enter(tok.pos);
          const v = this.parseOr();
          if (!this.isOp(')')) {
            if (this.atEnd()) this.fail('unbalanced parentheses: "(" is never closed', tok.pos);
            this.unexpected();
          }
          this.advance();
          this.leave();
          return v;
        }
        return this.unexpected();
      case 'end':
        return this.fail('unexpected end of expression', tok.pos);
    }
  }

  private parseName(tok: Token & { k: 'name' }): Value {
    const name = tok.name;
    if (name === 'True' || name === 'true') {
      this.advance();
      return bool(true);
    }
    if (name === 'False' || name === 'false') {
      this.advance();
      return bool(false);
    }
    if (KEYWORDS.has(name)) return this.fail(`unexpected keyword ${quoted(name)}`, tok.pos);
    // Peek at the raw text so `process.exit(1)` reports the unknown name, not the ".".
    let k = this.i;
    while (k < this.end && isSpace(this.text.charCodeAt(k))) k++;
    if (this.text.charCodeAt(k) !== 40 /* ( */ || k >= this.end) {
      return this.fail(
        `unknown name ${quoted(name)} ($eval knows numbers, quoted strings, True/False and $-expressions such as $steering(${name.length > 40 ? 'name' : name}))`,
        tok.pos,
      );
    }
    if (!BUILTINS.has(name)) return this.fail(`unknown function ${quoted(name)} (known: ${[...BUILTINS].join(', ')})`, tok.pos);
    this.advance();
    const open = this.tok.pos;
    this.advance();
    this.enter(open);
    const args: Value[] = [];
    if (!this.isOp(')')) {
      for (;;) {
        args.push(this.parseOr());
        if (this.isOp(',')) {
          this.advance();
          continue;
        }
        break;
      }
    }
    if (!this.isOp(')')) {
      if (this.atEnd()) this.fail('unbalanced parentheses: "(" is never closed', open);
      this.unexpected();
    }
    this.advance();
    this.leave();
    return this.active ? this.builtin(name, args, tok.pos) : PLACEHOLDER;
  }

  // --- semantics ----------------------------------------------------------------------------

  private makeNumber(r: number, isFloat: boolean, pos: number): Value {
    if (isFloat) return float(r);
    if (!Number.isSafeInteger(r)) this.fail(`integer result out of range (beyond ±${Number.MAX_SAFE_INTEGER})`, pos);
    return int(r === 0 ? 0 : r);
  }

  private binary(op: string, a: Value, b: Value, pos: number): Value {
    if (op === '+' && a.t === 'str' && b.t === 'str') {
      if (a.v.length + b.v.length > this.ex.maxOutput) this.fail('expression output too long', pos);
      return str(a.v + b.v);
    }
    if (op === '*' && (a.t === 'str' || b.t === 'str')) {
      const s = a.t === 'str' ? a : b;
      const n = a.t === 'str' ? b : a;
      if (s.t === 'str' && (n.t === 'int' || n.t === 'bool')) {
        const count = n.t === 'bool' ? (n.v ? 1 : 0) : Math.max(0, n.v);
        if (s.v.length * count > this.ex.maxOutput) this.fail('expression output too long', pos);
        return str(s.v.repeat(count));
      }
    }
    const na = numeric(a);
    const nb = numeric(b);
    if (!na || !nb) {
      const bad = na ? b : a;
      return this.fail(`non-numeric operand for "${op}": ${describeValue(bad)}`, pos);
    }
    const f = na.f || nb.f;
    const x = na.n;
    const y = nb.n;
    switch (op) {
      case '+':
        return this.makeNumber(x + y, f, pos);
      case '-':
        return this.makeNumber(x - y, f, pos);
      case '*':
        return this.makeNumber(x * y, f, pos);
      case '/':
        if (y === 0) this.fail('division by zero', pos);
        return float(x / y);
      case '//': {
        if (y === 0) this.fail('division by zero', pos);
        if (f) return float(Math.floor(x / y));
        let q = Math.trunc(x / y);
        if (x % y !== 0 && x < 0 !== y < 0) q -= 1;
        return this.makeNumber(q, false, pos);
      }
      case '%': {
        if (y === 0) this.fail('modulo by zero', pos);
        let r = x % y;
        if (r !== 0 && r < 0 !== y < 0) r += y;
        return this.makeNumber(r, f, pos);
      }
      case '**': {
        if (x === 0 && y < 0) this.fail('zero raised to a negative power', pos);
        if (x < 0 && !Number.isInteger(y)) this.fail('negative number raised to a fractional power', pos);
        if (!f && y < 0) return float(x ** y);
        return this.makeNumber(x ** y, f, pos);
      }
    }
    return this.fail(`unknown operator "${op}"`, pos);
  }

  private compare(op: string, a: Value, b: Value, pos: number): boolean {
    const na = numeric(a);
    const nb = numeric(b);
    let cmp: number;
    if (na && nb) cmp = na.n < nb.n ? -1 : na.n > nb.n ? 1 : na.n === nb.n ? 0 : NaN;
    else if (a.t === 'str' && b.t === 'str') cmp = a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
    else if (op === '==') return false;
    else if (op === '!=') return true;
    else return this.fail(`cannot compare ${describeValue(a)} and ${describeValue(b)} with "${op}"`, pos);
    switch (op) {
      case '==':
        return cmp === 0;
      case '!=':
        return cmp !== 0;
      case '<':
        return cmp < 0;
      case '<=':
        return cmp <= 0;
      case '>':
        return cmp > 0;
      default:
        return cmp >= 0;
    }
  }

  private builtin(name: string, args: Value[], pos: number): Value {
    const arity = (min: number, max: number): void => {
      if (args.length < min || args.length > max) {
        this.fail(`${name}() takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${args.length}`, pos);
      }
    };
    const num = (v: Value): { f: boolean; n: number } => {
      const n = numeric(v);
      if (!n) this.fail(`${name}() needs a number, got ${describeValue(v)}`, pos);
      return n;
    };
    switch (name) {
      case 'abs': {
        arity(1, 1);
        const n = num(args[0] as Value);
        return n.f ? float(Math.abs(n.n)) : int(Math.abs(n.n));
      }
      case 'min':
      case 'max': {
        if (args.length === 0) this.fail(`${name}() needs at least one argument`, pos);
        let best = args[0] as Value;
        for (const v of args.slice(1)) {
          const better = name === 'min' ? this.compare('<', v, best, pos) : this.compare('>', v, best, pos);
          if (better) best = v;
        }
        return best;
      }
      case 'int': {
        arity(1, 1);
        const v = args[0] as Value;
        if (v.t === 'str') {
          if (!INT_TEXT.test(v.v)) this.fail(`invalid literal for int(): ${quoted(v.v)}`, pos);
          return this.makeNumber(Number(v.v), false, pos);
        }
        const n = num(v);
        if (!Number.isFinite(n.n)) this.fail(`cannot convert ${formatFloat(n.n)} to an integer`, pos);
        return this.makeNumber(Math.trunc(n.n), false, pos);
      }
      case 'float': {
        arity(1, 1);
        const v = args[0] as Value;
        if (v.t === 'str') {
          const t = v.v.trim().toLowerCase();
          if (FLOAT_TEXT.test(v.v)) return float(Number(v.v));
          if (t === 'inf' || t === '+inf' || t === 'infinity') return float(Infinity);
          if (t === '-inf' || t === '-infinity') return float(-Infinity);
          if (t === 'nan') return float(NaN);
          return this.fail(`could not convert string to float: ${quoted(v.v)}`, pos);
        }
        return float(num(v).n);
      }
      case 'str':
        arity(1, 1);
        return str(display(args[0] as Value));
      case 'round': {
        arity(1, 1);
        const n = num(args[0] as Value);
        if (!n.f) return int(n.n);
        if (!Number.isFinite(n.n)) this.fail(`cannot round ${formatFloat(n.n)} to an integer`, pos);
        // Python 3 rounds half to even.
        const fl = Math.floor(n.n);
        const diff = n.n - fl;
        const r = diff > 0.5 ? fl + 1 : diff < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
        return this.makeNumber(r, false, pos);
      }
    }
    return this.fail(`unknown function ${quoted(name)}`, pos);
  }
}

// ---------------------------------------------------------------------------------------
// $sprintf

interface SprintfArg {
  text: string;
  position: number;
}

interface Spec {
  flags: string;
  width: number | undefined;
  precision: number | undefined;
  conv: string;
  /** Index in the format string of the `%`. */
  at: number;
}

const SPEC_RE = /%([-+ 0#]*)(\d+)?(?:\.(\d*))?([diouxXeEfFgGs%])/y;
const MAX_PRECISION = 100;

/** Parse a format into literal text and conversion specs; calls fail() on bad specs. */
function parseFormat(fmt: string, fail: (msg: string) => never): (string | Spec)[] {
  const parts: (string | Spec)[] = [];
  let i = 0;
  while (i < fmt.length) {
    const j = fmt.indexOf('%', i);
    if (j < 0) {
      parts.push(fmt.slice(i));
      break;
    }
    if (j > i) parts.push(fmt.slice(i, j));
    SPEC_RE.lastIndex = j;
    const m = SPEC_RE.exec(fmt);
    if (!m) {
      const shown = fmt.slice(j, j + 6);
      fail(j + 1 >= fmt.length ? `incomplete format at end of ${quoted(fmt)}` : `unsupported format ${JSON.stringify(shown)} in ${quoted(fmt)} (use %d %i %s %f %.Nf %0Nd %x %o %e %g %%)`);
    }
    const [whole, flags = '', width, precision, conv = ''] = m;
    const w = width === undefined ? undefined : Number(width);
    const p = precision === undefined ? undefined : precision === '' ? 0 : Number(precision);
    if (p !== undefined && p > MAX_PRECISION) fail(`precision ${p} too large (max ${MAX_PRECISION})`);
    if (conv === '%') parts.push('%');
    else parts.push({ flags, width: w, precision: p, conv, at: j });
    i = j + whole.length;
  }
  return parts;
}

function checkSprintfFormat(fmt: string, nargs: number, fail: (msg: string) => never): void {
  const specs = parseFormat(fmt, fail).filter((p): p is Spec => typeof p !== 'string');
  if (specs.length > nargs) fail(`not enough arguments for format string (${specs.length} needed, ${nargs} given)`);
  if (specs.length < nargs) fail(`not all arguments converted (${nargs} given, format uses ${specs.length})`);
}

/**
 * JavaScript's toFixed/toExponential round exact ties away from zero; C and Python round
 * them to even (`'%.0f' % 2.5` is `2`, `'%.2f' % 0.125` is `0.12`). A tie is only possible
 * when the double's exact decimal expansion stops right after a 5, which the long form shows.
 */
function isTie(longDigits: string, keep: number): boolean {
  return longDigits.charAt(keep) === '5' && /^0*$/.test(longDigits.slice(keep + 1));
}

/** JavaScript's toFixed/toExponential take 0..100 digits; C and Python take any precision. */
const JS_MAX_DIGITS = 100;

function toFixedEven(ax: number, p: number): string {
  if (p > JS_MAX_DIGITS) {
    // Only %g asks for more (precision ≤ 100, plus up to 4 for a small exponent), and only
    // for |x| ≥ 1e-4 (about 2^-14): such a double's exact decimal expansion ends within
    // 14 + 52 places, so the digits past the 100th are zeros — the exact C/Python result.
    return toFixedEven(ax, JS_MAX_DIGITS) + '0'.repeat(p - JS_MAX_DIGITS);
  }
  const naive = ax.toFixed(p);
  const extra = Math.min(100, p + 25);
  if (extra <= p || ax >= 1e21) return naive;
  const long = ax.toFixed(extra);
  const dot = long.indexOf('.');
  const frac = long.slice(dot + 1);
  if (!isTie(frac, p)) return naive;
  const truncated = p === 0 ? long.slice(0, dot) : long.slice(0, dot + 1 + p);
  const last = Number(truncated.charAt(truncated.length - 1));
  return last % 2 === 0 ? truncated : naive;
}

function toExponentialEven(ax: number, p: number): string {
  const naive = ax.toExponential(p);
  const extra = Math.min(100, p + 25);
  if (extra <= p) return naive;
  const long = ax.toExponential(extra);
  const [mant = '', exp = ''] = long.split('e');
  const digits = mant.replace('.', '');
  if (!isTie(digits, p + 1)) return naive;
  const kept = digits.slice(0, p + 1);
  if (Number(kept.charAt(kept.length - 1)) % 2 !== 0) return naive;
  return `${kept.charAt(0)}${p > 0 ? `.${kept.slice(1)}` : ''}e${exp}`;
}

function padExponent(s: string): string {
  // JS "1.5e+0" → Python "1.5e+00"
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

function formatG(x: number, precision: number | undefined, alt: boolean): string {
  let p = precision ?? 6;
  if (p === 0) p = 1;
  if (x === 0) return alt ? (0).toFixed(p - 1) : '0';
  const exp = Number(toExponentialEven(x, p - 1).split('e')[1]);
  let s: string;
  if (exp >= -4 && exp < p) {
    s = toFixedEven(x, Math.max(0, p - 1 - exp));
    if (!alt && s.includes('.')) s = s.replace(/\.?0+$/, '');
  } else {
    s = toExponentialEven(x, p - 1);
    if (!alt) s = s.replace(/\.?0+e/, 'e');
    s = padExponent(s);
  }
  return s;
}

function formatSprintf(
  fmt: string,
  args: SprintfArg[],
  fail: (msg: string, position?: number) => never,
  maxOutput: number,
): string {
  const parts = parseFormat(fmt, (m) => fail(m));
  let out = '';
  let next = 0;
  for (const part of parts) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    const arg = args[next++];
    if (!arg) {
      const needed = parts.filter((p) => typeof p !== 'string').length;
      return fail(`not enough arguments for format string (${needed} needed, ${args.length} given)`);
    }
    if (part.width !== undefined && part.width > maxOutput) fail(`field width ${part.width} too large (max ${maxOutput})`);
    out += formatOne(part, arg, fail);
    if (out.length > maxOutput) fail(`expression output too long (more than ${maxOutput} characters; see maxOutput)`);
  }
  if (next < args.length) fail(`not all arguments converted (${args.length} given, format uses ${next})`, args[next]?.position);
  return out;
}

function formatOne(spec: Spec, arg: SprintfArg, fail: (msg: string, position?: number) => never): string {
  const { flags, conv } = spec;
  const left = flags.includes('-');
  const pad = (body: string, sign: string, zeroOk: boolean): string => {
    const width = spec.width ?? 0;
    const len = sign.length + body.length;
    if (len >= width) return sign + body;
    if (left) return sign + body + ' '.repeat(width - len);
    if (zeroOk && flags.includes('0')) return sign + '0'.repeat(width - len) + body;
    return ' '.repeat(width - len) + sign + body;
  };
  if (conv === 's') {
    const s = spec.precision === undefined ? arg.text : arg.text.slice(0, spec.precision);
    return pad(s, '', false);
  }
  const v = autoType(arg.text);
  const n = numeric(v);
  if (!n) return fail(`%${conv} needs a number, got ${quoted(arg.text)}`, arg.position);
  const signOf = (neg: boolean): string => (neg ? '-' : flags.includes('+') ? '+' : flags.includes(' ') ? ' ' : '');
  if (conv === 'd' || conv === 'i' || conv === 'u') {
    if (!Number.isFinite(n.n)) return fail(`cannot format ${formatFloat(n.n)} with %${conv}`, arg.position);
    const x = Math.trunc(n.n);
    let digits = String(Math.abs(x));
    if (spec.precision !== undefined) digits = digits.padStart(spec.precision, '0');
    return pad(digits, signOf(x < 0), spec.precision === undefined);
  }
  if (conv === 'x' || conv === 'X' || conv === 'o') {
    if (n.f) return fail(`%${conv} needs an integer, got ${quoted(arg.text)}`, arg.position);
    let digits = Math.abs(n.n).toString(conv === 'o' ? 8 : 16);
    if (spec.precision !== undefined) digits = digits.padStart(spec.precision, '0');
    if (flags.includes('#')) digits = (conv === 'o' ? '0o' : '0x') + digits;
    if (conv === 'X') digits = digits.toUpperCase();
    return pad(digits, signOf(n.n < 0), spec.precision === undefined);
  }
  // floating conversions
  const x = n.n;
  const upper = conv === 'F' || conv === 'E' || conv === 'G';
  if (!Number.isFinite(x)) {
    const body = Number.isNaN(x) ? 'nan' : 'inf';
    return pad(upper ? body.toUpperCase() : body, signOf(x < 0), false);
  }
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  const p = spec.precision ?? 6;
  let body: string;
  if (conv === 'f' || conv === 'F') {
    body = toFixedEven(ax, p);
    if (flags.includes('#') && p === 0) body += '.';
  } else if (conv === 'e' || conv === 'E') {
    body = padExponent(toExponentialEven(ax, p));
    if (flags.includes('#') && p === 0) body = body.replace('e', '.e');
  } else {
    body = formatG(ax, spec.precision, flags.includes('#'));
  }
  if (upper) body = body.toUpperCase();
  return pad(body, signOf(neg), true);
}

// ---------------------------------------------------------------------------------------
// $choice PRNG: FNV-1a hash of (dataset, job, option list) seeding mulberry32.

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function mulberry32(seed: number): number {
  let t = (seed + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
