/**
 * Dataset configs (ARCHITECTURE.md "Dataset config"): types, validation with every problem
 * reported by JSON path, the task graph's order, and the config hash.
 *
 * Validation is the JSON Schema `schemas/dataset.schema.json` (ajv, all errors) plus what
 * a schema cannot say: `depends` naming unknown tasks, cycles in the task graph, duplicate
 * task / tray / module names, `$steering(x)` references to undefined parameters, malformed
 * expressions, external modules without an https `src`, data paths escaping the scratch
 * directory, unsupported URL schemes, invalid retry regexes.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { ValidationError, type ValidationIssue } from './errors';
import { rulePatternProblem } from './rule-matcher';
import { checkExpressions, evaluate, hasExpressions, scanReferences, type ExpressionContext } from './expression-parser';
import { createAjv, findSchemasDir, schemaValidator } from './schemas';

// ---------------------------------------------------------------------------------------
// Types (mirroring schemas/dataset.schema.json)

export type Scalar = string | number | boolean;
/** A number, or a string whose expressions evaluate to one (e.g. "$eval(2*1024)"). */
export type NumberOrExpression = number | string;

export interface Checksum {
  md5?: string;
  sha256?: string;
}

export type DataMovement = 'input' | 'output' | 'both';
export type DataLifetime = 'permanent' | 'job_temp' | 'dataset_temp';

export interface DataEntry {
  /** Path relative to the task's scratch directory. */
  local: string;
  /** file://, http(s)://, sftp:// URL, or a path relative to the site's `[system] site_temp`. */
  remote: string;
  movement: DataMovement;
  /** Default permanent. */
  type?: DataLifetime;
  checksum?: Checksum;
}

export interface Metaproject {
  name: string;
  url: string;
  checksum?: Checksum;
}

export interface SteeringConfig {
  parameters?: Record<string, Scalar>;
  metaprojects?: Metaproject[];
  data?: DataEntry[];
}

export type RetryAction = 'reset' | 'fail' | 'bump';

export interface RequirementBump {
  memory?: number;
  time?: number;
  disk?: number;
}

export interface RetryRule {
  /** Regular expression tested against the error summary. */
  match: string;
  action: RetryAction;
  /** Multipliers for action "bump". */
  bump?: RequirementBump;
}

export interface RetryPolicy {
  max_failures?: number;
  max_evictions?: number;
  backoff_seconds?: number;
  backoff_max_seconds?: number;
  rules?: RetryRule[];
}

export interface Requirements {
  cpu?: NumberOrExpression;
  gpu?: NumberOrExpression;
  /** MB */
  memory?: NumberOrExpression;
  /** MB */
  disk?: NumberOrExpression;
  /** minutes */
  time?: NumberOrExpression;
  site?: string;
}

export interface ModuleConfig {
  name: string;
  /** shell | transfer | tarball, or an external class name (then `src` is required). */
  class: string;
  /** https URL of an external module. */
  src?: string;
  args?: Record<string, unknown> | unknown[];
  parameters?: Record<string, unknown>;
  env?: Record<string, string>;
}

export interface TrayConfig {
  name: string;
  /** Default 1. */
  iterations?: number;
  metaproject?: string;
  modules: ModuleConfig[];
}

export interface TaskConfig {
  name: string;
  depends?: string[];
  requirements?: Requirements;
  batchsys?: Record<string, Record<string, unknown>>;
  data?: DataEntry[];
  trays: TrayConfig[];
}

export interface DatasetConfig {
  $schema?: string;
  version: number;
  description?: string;
  /** Default simulation. */
  type?: 'simulation' | 'offline';
  steering?: SteeringConfig;
  retry?: RetryPolicy;
  tasks: TaskConfig[];
}

export interface ConfigSummary {
  tasks: number;
  trays: number;
  modules: number;
}

export type DatasetConfigValidation =
  | { ok: true; config: DatasetConfig; summary: ConfigSummary }
  | { ok: false; issues: ValidationIssue[] };

/** Resolved requirements of one task (numbers, defaults filled). */
export interface ResolvedRequirements {
  cpu: number;
  gpu: number;
  memory: number;
  disk: number;
  time: number;
  site?: string;
}

export const BUILTIN_MODULE_CLASSES = ['shell', 'transfer', 'tarball'] as const;
export type BuiltinModuleClass = (typeof BUILTIN_MODULE_CLASSES)[number];

export const defaultRequirements: Readonly<Omit<ResolvedRequirements, 'site'>> = Object.freeze({
  cpu: 1,
  gpu: 0,
  memory: 2000,
  disk: 10000,
  time: 60,
});

export const defaultRetryPolicy: Readonly<Required<Omit<RetryPolicy, 'rules'>>> = Object.freeze({
  max_failures: 5,
  max_evictions: 10,
  backoff_seconds: 60,
  backoff_max_seconds: 3600,
});

/** The retry policy with every default filled in. */
export function resolveRetryPolicy(policy: RetryPolicy | undefined): Required<RetryPolicy> {
  return { ...defaultRetryPolicy, ...policy, rules: policy?.rules ?? [] };
}

export function isBuiltinModuleClass(cls: string): cls is BuiltinModuleClass {
  return (BUILTIN_MODULE_CLASSES as readonly string[]).includes(cls);
}

// ---------------------------------------------------------------------------------------
// Schema

const SCHEMA_FILE = 'dataset.schema.json';
let compiled: ValidateFunction | undefined;

/**
 * The compiled dataset schema (once per process). Its own ajv instance because the
 * messages need `verbose` (the failing sub-schema, for "allowed properties" hints).
 */
function datasetSchemaValidator(): ValidateFunction {
  if (!compiled) {
    const file = path.join(findSchemasDir(), SCHEMA_FILE);
    const schema = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    const ajv = createAjv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    compiled = ajv.compile(schema);
  }
  return compiled;
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!Object.hasOwn(cur, k)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Readable messages for the schema's patterns. */
const PATTERN_MESSAGES: Record<string, string> = {
  '^[A-Za-z0-9_][A-Za-z0-9_.-]*$': "must be a name of letters, digits, '_', '.' and '-' (not starting with '.' or '-')",
  '^[A-Za-z_][A-Za-z0-9_.-]*$': "is not a valid name: use letters, digits, '_', '.' and '-', starting with a letter or '_'",
  '^[A-Za-z][A-Za-z0-9_-]*$': "is not a valid plugin name: use letters, digits, '_' and '-', starting with a letter",
  '^[0-9a-f]{32}$': 'must be an MD5 checksum (32 lowercase hex digits)',
  '^[0-9a-f]{64}$': 'must be a SHA-256 checksum (64 lowercase hex digits)',
};

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] ?? 0;
}

/** The `properties` of the schema object that owns the failing keyword. */
function allowedProperties(e: ErrorObject): string[] {
  const parent: unknown = e.parentSchema;
  if (parent && typeof parent === 'object' && 'properties' in parent) {
    const props = (parent as { properties?: unknown }).properties;
    if (props && typeof props === 'object') return Object.keys(props);
  }
  return [];
}

function genericIssue(e: ErrorObject, data: unknown): ValidationIssue {
  const at = e.instancePath;
  const got = describe(valueAt(data, at));
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: `${at}/${pointerToken(String(params['missingProperty']))}`, message: 'is required' };
    case 'type': {
      const t = params['type'];
      const types = (Array.isArray(t) ? t : String(t).split(',')).map(String);
      return { path: at || '/', message: `must be ${types.join(' or ')}, got ${got}` };
    }
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'] : [];
      return { path: at || '/', message: `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}, got ${got}` };
    }
    case 'minItems':
      return { path: at || '/', message: `must have at least ${String(params['limit'])} item${params['limit'] === 1 ? '' : 's'}` };
    case 'minProperties':
      return { path: at || '/', message: `must have at least ${String(params['limit'])} propert${params['limit'] === 1 ? 'y' : 'ies'}` };
    case 'minLength':
      return { path: at || '/', message: params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(params['limit'])} characters long` };
    case 'uniqueItems':
      return { path: at || '/', message: `must not contain duplicates (items ${String(params['j'])} and ${String(params['i'])} are equal)` };
    default:
      return { path: at || '/', message: `${e.message ?? 'is invalid'}, got ${got}` };
  }
}

function schemaIssues(errors: ErrorObject[] | null | undefined, data: unknown): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  for (const e of errors ?? []) {
    // Wrappers whose inner errors say more.
    if (e.keyword === 'if' || e.keyword === 'propertyNames' || e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
    const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName;
    if (propertyName !== undefined) {
      const pattern = (e.params as { pattern?: string }).pattern;
      const msg = e.keyword === 'pattern' && pattern ? PATTERN_MESSAGES[pattern] : undefined;
      out.push({ path: `${e.instancePath}/${pointerToken(propertyName)}`, message: msg ?? `is not a valid name (${e.message ?? 'invalid'})` });
      continue;
    }
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = allowedProperties(e);
      // a suggestion only for a key of plausible length (levenshtein is |extra| × |p|)
      const best = (extra.length <= 64 ? allowed : [])
        .map((p) => ({ p, d: levenshtein(extra.toLowerCase(), p.toLowerCase()) }))
        .sort((x, y) => x.d - y.d)[0];
      const hint =
        best && best.d <= Math.max(2, Math.floor(extra.length / 3))
          ? ` (did you mean "${best.p}"?)`
          : allowed.length
            ? ` (allowed: ${allowed.join(', ')})`
            : '';
      out.push({ path: `${e.instancePath}/${pointerToken(extra)}`, message: `is not an allowed property${hint}` });
      continue;
    }
    if (e.keyword === 'pattern') {
      const msg = PATTERN_MESSAGES[(e.params as { pattern: string }).pattern];
      if (msg) {
        out.push({ path: e.instancePath || '/', message: `${msg}, got ${describe(valueAt(data, e.instancePath))}` });
        continue;
      }
    }
    out.push(genericIssue(e, data));
  }
  const seen = new Set<string>();
  return out.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---------------------------------------------------------------------------------------
// Checks a schema cannot express

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function arrayAt(obj: unknown, key: string): unknown[] {
  if (!isObject(obj) || !Object.hasOwn(obj, key)) return [];
  const v = obj[key];
  return Array.isArray(v) ? v : [];
}

function stringAt(obj: unknown, key: string): string | undefined {
  if (!isObject(obj) || !Object.hasOwn(obj, key)) return undefined;
  const v = obj[key];
  return typeof v === 'string' ? v : undefined;
}

function steeringParameters(config: unknown): Record<string, unknown> {
  const steering = isObject(config) && Object.hasOwn(config, 'steering') ? config['steering'] : undefined;
  const params = isObject(steering) && Object.hasOwn(steering, 'parameters') ? steering['parameters'] : undefined;
  return isObject(params) ? params : {};
}

/**
 * Evaluate what can be known at submission (steering, $(dataset)/$(job) as 0); null when
 * the text still depends on the job's args, the site, the task or the iteration, or fails.
 */
function staticValue(text: string, steering: Record<string, unknown>): string | null {
  if (!text.includes('$')) return text;
  try {
    const v = evaluate(text, { dataset: 0, job: 0, jobs_total: 1, steering }, { keepUnresolved: true });
    return hasExpressions(v) ? null : v;
  } catch {
    return null;
  }
}

function duplicates(items: unknown[], basePath: string, what: string, issues: ValidationIssue[], scope = ''): void {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    const name = stringAt(item, 'name');
    if (name === undefined) return;
    const prev = first.get(name);
    if (prev === undefined) first.set(name, i);
    else issues.push({ path: `${basePath}/${i}/name`, message: `duplicate ${what} name "${name}"${scope} (also ${basePath}/${prev}/name)` });
  });
}

const URL_SCHEMES = new Set(['file', 'http', 'https', 'sftp']);

function checkDataEntries(entries: unknown[], basePath: string, steering: Record<string, unknown>, issues: ValidationIssue[]): void {
  entries.forEach((entry, i) => {
    const p = `${basePath}/${i}`;
    const local = stringAt(entry, 'local');
    if (local !== undefined) {
      const v = staticValue(local, steering) ?? local;
      if (v.startsWith('/') || /(^|\/)\.\.(\/|$)/.test(v)) {
        issues.push({ path: `${p}/local`, message: `must be a relative path inside the task's scratch directory, got ${describe(local)}` });
      }
    }
    const remote = stringAt(entry, 'remote');
    if (remote !== undefined) {
      const v = staticValue(remote, steering);
      const m = v === null ? null : /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(v);
      if (m && !URL_SCHEMES.has((m[1] ?? '').toLowerCase())) {
        issues.push({
          path: `${p}/remote`,
          message: `has unsupported URL scheme "${m[1] ?? ''}" (use file://, http(s)://, sftp:// or a path relative to the site), got ${describe(remote)}`,
        });
      }
    }
  });
}

function checkRequirements(req: unknown, basePath: string, steering: Record<string, unknown>, issues: ValidationIssue[]): void {
  if (!isObject(req)) return;
  const bounds: Record<string, { min: number; integer: boolean; exclusive: boolean }> = {
    cpu: { min: 1, integer: true, exclusive: false },
    gpu: { min: 0, integer: true, exclusive: false },
    memory: { min: 0, integer: false, exclusive: true },
    disk: { min: 0, integer: false, exclusive: false },
    time: { min: 0, integer: false, exclusive: true },
  };
  for (const [key, b] of Object.entries(bounds)) {
    const raw = Object.hasOwn(req, key) ? req[key] : undefined;
    if (typeof raw !== 'string') continue;
    if (!hasExpressions(raw)) {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) {
        issues.push({ path: `${basePath}/${key}`, message: `must be a number or an expression such as "$eval(2*1024)", got ${describe(raw)}` });
        continue;
      }
    }
    // Only expressions that do not depend on the job can be checked now.
    const refs = scanReferences(raw);
    if (refs.some((r) => r.kind !== 'steering')) continue;
    const v = staticValue(raw, steering);
    if (v === null) continue;
    const n = Number(v);
    const bad =
      v.trim() === '' ||
      !Number.isFinite(n) ||
      (b.integer && !Number.isInteger(n)) ||
      (b.exclusive ? n <= b.min : n < b.min);
    if (bad) {
      const want = `${b.integer ? 'an integer' : 'a number'} ${b.exclusive ? '>' : '>='} ${b.min}`;
      issues.push({ path: `${basePath}/${key}`, message: `must evaluate to ${want}, got ${describe(v)} from ${describe(raw)}` });
    }
  }
}

/** Every string in the config with its JSON path, walked iteratively. */
function eachString(root: unknown, visit: (s: string, path: string) => void, issues: ValidationIssue[]): void {
  const stack: Array<{ v: unknown; p: string; d: number }> = [{ v: root, p: '', d: 0 }];
  while (stack.length) {
    const { v, p, d } = stack.pop() as { v: unknown; p: string; d: number };
    if (typeof v === 'string') visit(v, p);
    else if (v !== null && typeof v === 'object') {
      if (d > 100) {
        issues.push({ path: p || '/', message: 'is nested too deeply (more than 100 levels)' });
        continue;
      }
      const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as object);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i] as readonly [string, unknown];
        stack.push({ v: x, p: `${p}/${pointerToken(k)}`, d: d + 1 });
      }
    }
  }
}

/** Characters of expression text (strings holding a `$`) one config may carry: the check is linear, this bounds it. */
export const MAX_EXPRESSION_TEXT = 2 * 1024 * 1024;

function checkExpressionsEverywhere(config: unknown, steering: Record<string, unknown>, issues: ValidationIssue[]): void {
  let total = 0;
  let stopped = false;
  eachString(
    config,
    (s, p) => {
      if (stopped || !s.includes('$')) return;
      total += s.length;
      if (total > MAX_EXPRESSION_TEXT) {
        issues.push({ path: p, message: `the config's strings with expressions are more than ${MAX_EXPRESSION_TEXT} characters together` });
        stopped = true;
        return;
      }
      // past the issues an answer reports (capIssues), more checking only costs time
      if (issues.length > MAX_REPORTED_ISSUES) return;
      for (const e of checkExpressions(s)) issues.push({ path: p, message: `invalid expression: ${e.message}` });
      const missing = new Set<string>();
      for (const r of scanReferences(s)) {
        if (r.kind === 'steering' && !Object.hasOwn(steering, r.name) && !missing.has(r.name)) {
          missing.add(r.name);
          issues.push({ path: p, message: `refers to undefined steering parameter "${r.name}" (at position ${r.position})` });
        }
      }
    },
    issues,
  );
}

/** Cycles in the depends graph, each once, as name lists starting and ending at the same task. */
function findCycles(tasks: unknown[]): { cycle: string[]; index: number }[] {
  const index = new Map<string, number>();
  tasks.forEach((t, i) => {
    const name = stringAt(t, 'name');
    if (name !== undefined && !index.has(name)) index.set(name, i);
  });
  const edges = (name: string): string[] => {
    const i = index.get(name);
    return arrayAt(i === undefined ? undefined : tasks[i], 'depends').filter((d): d is string => typeof d === 'string' && index.has(d));
  };
  const color = new Map<string, 0 | 1 | 2>(); // 0 new, 1 on stack, 2 done
  const found: { cycle: string[]; index: number }[] = [];
  const seen = new Set<string>();
  for (const start of index.keys()) {
    if (color.get(start)) continue;
    // Iterative DFS: a frame is a node and the position in its edge list.
    const stack: Array<{ node: string; next: number; out: string[] }> = [{ node: start, next: 0, out: edges(start) }];
    color.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1] as { node: string; next: number; out: string[] };
      if (top.next >= top.out.length) {
        color.set(top.node, 2);
        stack.pop();
        continue;
      }
      const dep = top.out[top.next++] as string;
      const c = color.get(dep) ?? 0;
      if (c === 0) {
        color.set(dep, 1);
        stack.push({ node: dep, next: 0, out: edges(dep) });
      } else if (c === 1) {
        const from = stack.findIndex((f) => f.node === dep);
        const nodes = stack.slice(from).map((f) => f.node);
        // Canonical rotation so each cycle is reported once.
        const minAt = nodes.reduce((m, n, i) => ((nodes[m] as string) <= n ? m : i), 0);
        const rotated = [...nodes.slice(minAt), ...nodes.slice(0, minAt)];
        const key = rotated.join('\u0000');
        if (!seen.has(key)) {
          seen.add(key);
          found.push({ cycle: [...rotated, rotated[0] as string], index: index.get(rotated[0] as string) ?? 0 });
        }
      }
    }
  }
  return found;
}

/** Edit distance of two short strings (did-you-mean hints; both capped at 64 characters). */
function editDistance(a: string, b: string): number {
  a = a.slice(0, 64);
  b = b.slice(0, 64);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The known name closest to `name` (within 2 edits, or differing only in case), if any. */
export function didYouMean(name: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    const d = k.toLowerCase() === name.toLowerCase() ? 0 : editDistance(name, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/**
 * A built-in module's parameters against schemas/modules/<class>.json: unknown names (with a
 * "did you mean" hint), value types, and which parameters are needed (the schema's x-message).
 */
function moduleParameterIssues(cls: BuiltinModuleClass, parameters: unknown, basePath: string): ValidationIssue[] {
  if (!isObject(parameters)) return []; // the dataset schema reports a non-object
  const validate = schemaValidator(`modules/${cls}.json`);
  if (validate(parameters)) return [];
  const schema = validate.schema as { properties?: Record<string, unknown>; 'x-message'?: string };
  const known = Object.keys(schema.properties ?? {});
  const out: ValidationIssue[] = [];
  let needs = false;
  for (const e of validate.errors ?? []) {
    if (e.keyword === 'additionalProperties') {
      const name = String((e.params as { additionalProperty?: unknown }).additionalProperty);
      const hint = didYouMean(name, known);
      out.push({
        path: `${basePath}${e.instancePath}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`,
        message: `is not a parameter of the ${cls} module${hint ? ` (did you mean "${hint}"?)` : ''}; its parameters: ${known.join(', ')}`,
      });
    } else if (e.instancePath === '' && (e.keyword === 'required' || e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.schemaPath.includes('Of/'))) {
      needs = true;
    } else {
      out.push({ path: `${basePath}${e.instancePath}`, message: e.message ?? 'is invalid' });
    }
  }
  if (needs) out.push({ path: basePath, message: schema['x-message'] ?? 'is missing a required parameter' });
  return out;
}

function semanticIssues(config: unknown): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (!isObject(config)) return issues;
  const steering = steeringParameters(config);
  const tasks = arrayAt(config, 'tasks');

  duplicates(tasks, '/tasks', 'task', issues);
  const taskNames = new Set(tasks.map((t) => stringAt(t, 'name')).filter((n): n is string => n !== undefined));

  const metaprojects = arrayAt(isObject(config['steering']) ? config['steering'] : undefined, 'metaprojects');
  duplicates(metaprojects, '/steering/metaprojects', 'metaproject', issues);
  const metaNames = new Set(metaprojects.map((m) => stringAt(m, 'name')).filter((n): n is string => n !== undefined));
  metaprojects.forEach((m, i) => {
    const url = stringAt(m, 'url');
    const v = url === undefined ? null : staticValue(url, steering);
    if (url !== undefined && v !== null && !/^(https?|file):\/\//i.test(v)) {
      issues.push({ path: `/steering/metaprojects/${i}/url`, message: `must be an https://, http:// or file:// URL, got ${describe(url)}` });
    }
  });
  checkDataEntries(arrayAt(config['steering'], 'data'), '/steering/data', steering, issues);

  tasks.forEach((task, ti) => {
    const tp = `/tasks/${ti}`;
    const name = stringAt(task, 'name');
    arrayAt(task, 'depends').forEach((dep, di) => {
      if (typeof dep !== 'string') return;
      if (!taskNames.has(dep)) issues.push({ path: `${tp}/depends/${di}`, message: `refers to unknown task "${dep}"` });
    });
    if (isObject(task)) checkRequirements(task['requirements'], `${tp}/requirements`, steering, issues);
    checkDataEntries(arrayAt(task, 'data'), `${tp}/data`, steering, issues);
    const trays = arrayAt(task, 'trays');
    duplicates(trays, `${tp}/trays`, 'tray', issues, name ? ` in task "${name}"` : '');
    trays.forEach((tray, yi) => {
      const yp = `${tp}/trays/${yi}`;
      const meta = stringAt(tray, 'metaproject');
      if (meta !== undefined && !meta.includes('$') && !metaNames.has(meta)) {
        issues.push({ path: `${yp}/metaproject`, message: `refers to unknown metaproject "${meta}" (define it in steering.metaprojects)` });
      }
      const modules = arrayAt(tray, 'modules');
      const trayName = stringAt(tray, 'name');
      duplicates(modules, `${yp}/modules`, 'module', issues, trayName ? ` in tray "${trayName}"` : '');
      modules.forEach((mod, mi) => {
        const mp = `${yp}/modules/${mi}`;
        const cls = stringAt(mod, 'class');
        const src = stringAt(mod, 'src');
        if (cls !== undefined && isBuiltinModuleClass(cls)) {
          if (src !== undefined) issues.push({ path: `${mp}/src`, message: `is only for external modules; class "${cls}" is built in` });
          if (isObject(mod)) issues.push(...moduleParameterIssues(cls, mod['parameters'] ?? {}, `${mp}/parameters`));
        } else if (cls !== undefined && src === undefined) {
          issues.push({ path: `${mp}/src`, message: `is required for external module class "${cls}" (an https:// URL)` });
        }
        if (src !== undefined) {
          const v = staticValue(src, steering);
          if (v !== null && !/^https:\/\/[^/\s]+/i.test(v)) {
            issues.push({ path: `${mp}/src`, message: `must be an https:// URL (external modules are only fetched over https), got ${describe(src)}` });
          }
        }
      });
    });
  });

  for (const { cycle, index } of findCycles(tasks)) {
    issues.push({ path: `/tasks/${index}/depends`, message: `dependency cycle: ${cycle.join(' → ')}` });
  }

  const retry = config['retry'];
  arrayAt(retry, 'rules').forEach((rule, ri) => {
    const rp = `/retry/rules/${ri}`;
    const match = stringAt(rule, 'match');
    if (match !== undefined) {
      // the same compile firn-dh matches with (RE2: linear time), so a rule accepted here is never ignored there
      const problem = rulePatternProblem(match);
      if (problem) issues.push({ path: `${rp}/match`, message: problem });
    }
    const action = stringAt(rule, 'action');
    if (isObject(rule) && Object.hasOwn(rule, 'bump') && action !== undefined && action !== 'bump') {
      issues.push({ path: `${rp}/bump`, message: `is only used with action "bump", not "${action}"` });
    }
  });

  checkExpressionsEverywhere(config, steering, issues);
  return issues;
}

function summarize(config: DatasetConfig): ConfigSummary {
  let trays = 0;
  let modules = 0;
  for (const t of config.tasks) {
    trays += t.trays.length;
    for (const y of t.trays) modules += y.modules.length;
  }
  return { tasks: config.tasks.length, trays, modules };
}

/** At most this many issues are reported (then one "and N more"); every path and message is cut. */
export const MAX_REPORTED_ISSUES = 50;
const MAX_ISSUE_PATH = 300;
const MAX_ISSUE_MESSAGE = 500;

/**
 * The issues an error answer carries, bounded: a hostile config (every item bad, huge keys,
 * long strings) gets the first MAX_REPORTED_ISSUES issues and a count of the rest, so the
 * answer stays around 40 KB however large the input.
 */
export function capIssues(issues: ValidationIssue[]): ValidationIssue[] {
  const cut = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);
  const out = issues.slice(0, MAX_REPORTED_ISSUES).map((i) => ({ ...i, path: cut(i.path, MAX_ISSUE_PATH), message: cut(i.message, MAX_ISSUE_MESSAGE) }));
  const more = issues.length - out.length;
  if (more > 0) out.push({ path: '/', message: `and ${more} more issue${more === 1 ? '' : 's'}` });
  return out;
}

// ---------------------------------------------------------------------------------------
// Public API

/**
 * Validate a dataset config, reporting every problem with its JSON path. Does not modify
 * `config`; on success returns it typed (defaults are not filled in: see
 * `defaultRequirements`, `resolveRetryPolicy`, `resolveRequirements`).
 */
export function validateDatasetConfig(config: unknown): DatasetConfigValidation {
  const validate = datasetSchemaValidator();
  const schemaOk = validate(config);
  const issues = schemaOk ? [] : schemaIssues(validate.errors, config);
  issues.push(...semanticIssues(config));
  if (issues.length > 0) return { ok: false, issues: capIssues(issues) };
  const valid = config as DatasetConfig;
  return { ok: true, config: valid, summary: summarize(valid) };
}

/** validateDatasetConfig that throws a ValidationError listing every issue. */
export function assertValidDatasetConfig(config: unknown): DatasetConfig {
  const r = validateDatasetConfig(config);
  if (!r.ok) throw new ValidationError('invalid dataset config', r.issues);
  return r.config;
}

/**
 * Tasks in an order where every task comes after the tasks it depends on; among tasks
 * that are free at the same time, config order is kept. Throws ValidationError on an
 * unknown dependency or a cycle.
 */
export function topoOrder<T extends Pick<TaskConfig, 'name' | 'depends'>>(tasks: readonly T[]): T[] {
  const index = new Map<string, number>();
  tasks.forEach((t, i) => {
    if (index.has(t.name)) throw new ValidationError('invalid task graph', [{ path: `/tasks/${i}/name`, message: `duplicate task name "${t.name}"` }]);
    index.set(t.name, i);
  });
  const indegree = tasks.map(() => 0);
  const dependents: number[][] = tasks.map(() => []);
  tasks.forEach((t, i) => {
    (t.depends ?? []).forEach((d, di) => {
      const j = index.get(d);
      if (j === undefined) {
        throw new ValidationError('invalid task graph', [{ path: `/tasks/${i}/depends/${di}`, message: `refers to unknown task "${d}"` }]);
      }
      indegree[i] = (indegree[i] ?? 0) + 1;
      dependents[j]?.push(i);
    });
  });
  const out: T[] = [];
  const ready = indegree.flatMap((n, i) => (n === 0 ? [i] : []));
  while (ready.length) {
    ready.sort((a, b) => a - b);
    const i = ready.shift() as number;
    out.push(tasks[i] as T);
    for (const k of dependents[i] ?? []) {
      indegree[k] = (indegree[k] ?? 0) - 1;
      if (indegree[k] === 0) ready.push(k);
    }
  }
  if (out.length < tasks.length) {
    const cycles = findCycles(tasks as unknown[]);
    throw new ValidationError(
      'invalid task graph',
      cycles.map(({ cycle, index: i }) => ({ path: `/tasks/${i}/depends`, message: `dependency cycle: ${cycle.join(' → ')}` })),
    );
  }
  return out;
}

/**
 * Requirements with expressions evaluated (in `ctx`: steering, job, …) and defaults filled.
 * Throws ValidationError when a value is not a number or is out of range.
 */
export function resolveRequirements(
  req: Requirements | undefined,
  ctx: ExpressionContext,
  basePath = '/requirements',
): ResolvedRequirements {
  const out: ResolvedRequirements = { ...defaultRequirements };
  const issues: ValidationIssue[] = [];
  const keys = ['cpu', 'gpu', 'memory', 'disk', 'time'] as const;
  for (const key of keys) {
    const raw = req?.[key];
    if (raw === undefined) continue;
    const n = typeof raw === 'number' ? raw : Number(evaluate(raw, ctx));
    const integer = key === 'cpu' || key === 'gpu';
    const min = key === 'cpu' ? 1 : 0;
    const exclusive = key === 'memory' || key === 'time';
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || (exclusive ? n <= min : n < min)) {
      issues.push({ path: `${basePath}/${key}`, message: `must be ${integer ? 'an integer' : 'a number'} ${exclusive ? '>' : '>='} ${min}, got ${describe(raw)}` });
      continue;
    }
    out[key] = n;
  }
  if (req?.site !== undefined) out.site = evaluate(req.site, ctx);
  if (issues.length) throw new ValidationError('invalid requirements', issues);
  return out;
}

/** JSON with object keys sorted at every level (undefined members dropped, as JSON does). */
export function canonicalJson(value: unknown): string {
  const enc = (v: unknown, depth: number): string => {
    if (depth > 1000) throw new ValidationError('value nested too deeply to hash');
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'bigint') return v.toString();
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return 'null';
      return JSON.stringify(v);
    }
    if (Array.isArray(v)) return `[${v.map((x) => enc(x, depth + 1)).join(',')}]`;
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function' && typeof obj[k] !== 'symbol')
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${enc(obj[k], depth + 1)}`).join(',')}}`;
  };
  return enc(value, 0);
}

/** sha256 (hex) of the config's canonical JSON: the same for any key order or whitespace. */
export function configHash(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config), 'utf8').digest('hex');
}
