import fs from 'node:fs';
import path from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { ValidationIssue } from './errors';
import { NAME_RULES, nameProblem } from './names';

let cachedDir: string | undefined;

/**
 * Directory holding the JSON Schemas: $FIRN_SCHEMAS_DIR, else the first `schemas/` with a
 * `dataset.schema.json` found walking up from this file (works from src/, dist/ and the
 * bundled pilot alike).
 */
export function findSchemasDir(): string {
  if (process.env.FIRN_SCHEMAS_DIR) return process.env.FIRN_SCHEMAS_DIR;
  if (cachedDir) return cachedDir;
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'schemas');
    if (fs.existsSync(path.join(candidate, 'config.schema.json'))) return (cachedDir = candidate);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`schemas/ not found above ${__dirname}; set FIRN_SCHEMAS_DIR`);
    dir = parent;
  }
}

/**
 * `maxBytes`: the longest a string may be as UTF-8 — MySQL/MariaDB TEXT columns hold 65,535
 * *bytes*, where `maxLength` counts characters (up to 4 bytes each in utf8mb4).
 */
function maxBytes(this: unknown, limit: number, data: string): boolean {
  // cheap bound first: a string of n UTF-16 units is at most 3n bytes
  if (data.length * 3 <= limit || Buffer.byteLength(data, 'utf8') <= limit) return true;
  (maxBytes as unknown as { errors: Partial<ErrorObject>[] }).errors = [
    { keyword: 'maxBytes', message: `must be at most ${limit} bytes as UTF-8`, params: { limit } },
  ];
  return false;
}

/**
 * `maxJsonBytes`: the longest a value may be as JSON text in UTF-8 — for values stored whole in
 * a TEXT column (a job's args, a module parameter).
 */
function maxJsonBytes(this: unknown, limit: number, data: unknown): boolean {
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(data) ?? '', 'utf8');
  } catch {
    bytes = Infinity;
  }
  if (bytes <= limit) return true;
  (maxJsonBytes as unknown as { errors: Partial<ErrorObject>[] }).errors = [
    { keyword: 'maxJsonBytes', message: `must be at most ${limit} bytes as JSON`, params: { limit } },
  ];
  return false;
}

/**
 * The one ajv setup every Firn schema is compiled with (options may add, never loosen):
 * `strictNumbers` — JSON.parse turns `1e400` into Infinity, which must not pass as a number;
 * the standard formats; the name formats `firn-grid-name` / `firn-user-name` (names.ts); and
 * the keywords `maxBytes` and `maxJsonBytes` (database column limits in bytes).
 */
export function createAjv(options: ConstructorParameters<typeof Ajv2020>[0] = {}): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, ...options, strictNumbers: true });
  addFormats(ajv);
  ajv.addFormat('firn-grid-name', NAME_RULES.grid.pattern);
  ajv.addFormat('firn-user-name', NAME_RULES.user.pattern);
  ajv.addKeyword({ keyword: 'maxBytes', type: 'string', schemaType: 'number', errors: true, validate: maxBytes });
  ajv.addKeyword({ keyword: 'maxJsonBytes', schemaType: 'number', errors: true, validate: maxJsonBytes });
  return ajv;
}

const ajvs = new Map<string, Ajv2020>();
function ajvFor(mode: 'strict' | 'coerce'): Ajv2020 {
  let ajv = ajvs.get(mode);
  if (!ajv) {
    ajv = createAjv({ useDefaults: mode === 'coerce', coerceTypes: mode === 'coerce' });
    ajvs.set(mode, ajv);
  }
  return ajv;
}

const compiled = new Map<string, ValidateFunction>();

/**
 * Compile (once) the schema at `schemas/<relPath>`. `coerce` turns strings into numbers /
 * booleans and applies defaults (for INI values); `strict` validates as is.
 */
export function schemaValidator(relPath: string, mode: 'strict' | 'coerce' = 'strict'): ValidateFunction {
  const key = `${mode}:${relPath}`;
  let v = compiled.get(key);
  if (!v) {
    const file = path.join(findSchemasDir(), relPath);
    const schema = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete schema.$id; // several modes compile the same schema
    v = ajvFor(mode).compile(schema);
    compiled.set(key, v);
  }
  return v;
}

/** Does `schemas/<relPath>` exist? */
export function hasSchema(relPath: string): boolean {
  return fs.existsSync(path.join(findSchemasDir(), relPath));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function valueAt(root: unknown, pointer: string): unknown {
  if (!pointer) return root;
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** Most issues reported for one document (the rest are counted in a last issue). */
export const MAX_ISSUES = 20;

/** Turn ajv errors into readable issues with JSON paths, one per problem (at most MAX_ISSUES). */
export function ajvIssues(errors: ErrorObject[] | null | undefined, data: unknown, prefix = ''): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const seen = new Set<string>();
  let more = 0;
  for (const e of errors ?? []) {
    if (out.length >= MAX_ISSUES) {
      more++;
      continue;
    }
    let p = prefix + e.instancePath;
    let message: string;
    switch (e.keyword) {
      case 'required':
        p = `${p}/${(e.params as { missingProperty: string }).missingProperty}`;
        message = 'is required';
        break;
      case 'additionalProperties':
        p = `${p}/${(e.params as { additionalProperty: string }).additionalProperty}`;
        message = 'is not an allowed property';
        break;
      case 'type':
        message = `must be ${([] as string[]).concat((e.params as { type: string | string[] }).type).join(' or ').replace(',', ' or ')}, got ${describe(valueAt(data, e.instancePath))}`;
        break;
      case 'enum':
        message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(valueAt(data, e.instancePath))}`;
        break;
      case 'format': {
        const format = (e.params as { format: string }).format;
        const kind = format === 'firn-grid-name' ? 'grid' : format === 'firn-user-name' ? 'user' : null;
        const problem = kind ? nameProblem(kind, valueAt(data, e.instancePath)) : null;
        message = `${problem ?? e.message ?? 'is invalid'}, got ${describe(valueAt(data, e.instancePath))}`;
        break;
      }
      case 'anyOf':
      case 'oneOf':
        continue; // the branch errors say more
      default:
        message = `${e.message ?? 'is invalid'}, got ${describe(valueAt(data, e.instancePath))}`;
    }
    const key = `${p}|${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: p.length > 256 ? `${p.slice(0, 256)}…` : p || '/', message });
  }
  if (more > 0) out.push({ path: prefix || '/', message: `and ${more} more problems` });
  return out;
}
