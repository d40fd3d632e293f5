import fs from 'node:fs';
import path from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { ValidationIssue } from './errors';

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

const ajvs = new Map<string, Ajv2020>();
function ajvFor(mode: 'strict' | 'coerce'): Ajv2020 {
  let ajv = ajvs.get(mode);
  if (!ajv) {
    ajv = new Ajv2020({ allErrors: true, strict: false, useDefaults: mode === 'coerce', coerceTypes: mode === 'coerce' });
    addFormats(ajv);
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

/** Turn ajv errors into readable issues with JSON paths, one per problem. */
export function ajvIssues(errors: ErrorObject[] | null | undefined, data: unknown, prefix = ''): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
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
      case 'anyOf':
      case 'oneOf':
        continue; // the branch errors say more
      default:
        message = `${e.message ?? 'is invalid'}, got ${describe(valueAt(data, e.instancePath))}`;
    }
    const key = `${p}|${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: p || '/', message });
  }
  return out;
}
