#!/usr/bin/env node
// Generate docs/rpc.md, the RPC reference, from schemas/rpc/<method>.json.
//
//   node scripts/gen-rpc-docs.js            write docs/rpc.md
//   node scripts/gen-rpc-docs.js --check    exit 1 when docs/rpc.md differs from what would be written
//   node scripts/gen-rpc-docs.js --stdout   print it instead of writing
//
// Nothing but Node is needed (no build, no dependencies). The output is deterministic:
// methods are ordered by daemon, then by namespace in the order of ARCHITECTURE.md, then
// by name; parameters in the order of the schema's `properties`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const SCHEMA_DIR = path.join(ROOT, 'schemas', 'rpc');
const OUT = path.join(ROOT, 'docs', 'rpc.md');

/** Namespace → daemon that serves it, when a schema has no `x-daemon`. */
const NAMESPACE_DAEMON = { auth: 'tray', dataset: 'tray', job: 'tray', task: 'tray', grid: 'tray', user: 'tray', system: 'tray', pilot: 'mon' };
const NAMESPACE_ORDER = ['auth', 'dataset', 'job', 'task', 'grid', 'user', 'system', 'pilot'];
const DAEMON_ORDER = ['tray', 'mon'];

const DAEMON_INTRO = {
  tray: [
    'The API for people: the `firn` CLI, the web monitor and your own scripts. Every method',
    'except `auth.login`, `system.health` and `system.version` needs a bearer token from',
    '`auth.login`, sent as `Authorization: Bearer TOKEN`. Roles nest: admin ⊃ manager ⊃ viewer;',
    'a manager controls only the datasets they submitted, an admin all of them.',
  ],
  mon: [
    'The API for pilots. Every call carries `task_id` and `passkey`: the passkey is issued',
    'when a site claims the task and dies when the task is reset, so a stale pilot can never',
    'write. An unknown task and a wrong passkey get the same answer (-32009). A whole-node',
    'pilot may send one JSON-RPC batch for many tasks.',
  ],
};

/** Escape text for a Markdown table cell. */
function cell(text) {
  return String(text).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ').trim();
}

function typeOf(s) {
  if (!s || typeof s !== 'object') return 'any';
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.enum)) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0) {
    if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeOf).join(' \\| ');
    if (s.properties) return 'object';
    return 'any';
  }
  return types
    .map((t) => {
      if (t === 'array') return `${s.items ? typeOf(s.items) : 'any'}[]`.replace(/^(.* \\\| .*)\[\]$/, '($1)[]');
      return t;
    })
    .join(' \\| ');
}

/** Constraints worth telling a caller, e.g. `≥ 1`, `≤ 190 chars`, `default 0`. */
function constraints(s) {
  const out = [];
  if (s.minimum !== undefined && s.maximum !== undefined) out.push(`${s.minimum}…${s.maximum}`);
  else if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`);
  else if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`);
  if (s.exclusiveMinimum !== undefined) out.push(`> ${s.exclusiveMinimum}`);
  if (s.minLength !== undefined && s.minLength > 1) out.push(`≥ ${s.minLength} chars`);
  if (s.maxLength !== undefined) out.push(`≤ ${s.maxLength} chars`);
  if (s.minItems !== undefined && s.minItems > 0) out.push(`≥ ${s.minItems} items`);
  if (s.maxItems !== undefined) out.push(`≤ ${s.maxItems} items`);
  if (s.uniqueItems) out.push('unique');
  if (s.pattern !== undefined) out.push(`pattern \`${s.pattern}\``);
  if (s.format !== undefined) out.push(`format ${s.format}`);
  if (s.default !== undefined) out.push(`default \`${JSON.stringify(s.default)}\``);
  return out;
}

/** Rows for a property and, recursively, its nested object properties. */
function rows(name, s, required, out) {
  const desc = [s.description || '', constraints(s).join(', ')].filter(Boolean).join(' — ');
  out.push(`| \`${name}\` | ${typeOf(s)} | ${required ? 'yes' : ''} | ${cell(desc)} |`);
  const nested = s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array')) ? s.items : s;
  const prefix = nested === s ? name : `${name}[]`;
  if (nested && nested.properties) {
    const req = new Set(nested.required || []);
    for (const [k, v] of Object.entries(nested.properties)) rows(`${prefix}.${k}`, v, req.has(k), out);
  }
  if (nested && nested.additionalProperties && typeof nested.additionalProperties === 'object' && !nested.properties) {
    out.push(`| \`${prefix}.<name>\` | ${typeOf(nested.additionalProperties)} |  | ${cell(nested.additionalProperties.description || 'any name')} |`);
  }
}

function loadSchemas(dir) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  return files.map((file) => {
    const method = file.replace(/\.json$/, '');
    let schema;
    try {
      schema = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    } catch (e) {
      throw new Error(`${path.relative(ROOT, path.join(dir, file))}: ${e.message}`);
    }
    const ns = method.split('.')[0];
    const daemon = schema['x-daemon'] || NAMESPACE_DAEMON[ns] || 'other';
    return { method, ns, daemon, schema };
  });
}

/** Split "… Result: {x}." from a description when there is no x-result. */
function resultOf(schema) {
  if (schema['x-result']) return { description: schema.description || '', result: schema['x-result'] };
  const d = schema.description || '';
  const m = /\s*Result:\s*(.+?)\.?\s*$/.exec(d);
  if (m) return { description: d.slice(0, m.index).trim(), result: m[1] };
  return { description: d, result: null };
}

function anchor(method) {
  return method.replace(/[^a-z0-9_-]/gi, '').toLowerCase();
}

function render(methods) {
  const rank = (arr, v) => (arr.indexOf(v) < 0 ? arr.length : arr.indexOf(v));
  methods.sort(
    (a, b) =>
      rank(DAEMON_ORDER, a.daemon) - rank(DAEMON_ORDER, b.daemon) ||
      rank(NAMESPACE_ORDER, a.ns) - rank(NAMESPACE_ORDER, b.ns) ||
      a.method.localeCompare(b.method),
  );
  const L = [];
  L.push(
    '# RPC reference',
    '',
    '<!-- GENERATED by `node scripts/gen-rpc-docs.js` from schemas/rpc/*.json. Do not edit:',
    '     change the schema and run the script again (`--check` tells whether this file is stale). -->',
    '',
    'Firn speaks JSON-RPC 2.0 over HTTP(S): `POST /rpc` with a JSON body, one call or a batch',
    '(an array). Parameters are always **by name** (a JSON object) and are validated against',
    '`schemas/rpc/<method>.json` before the method runs; unknown parameters are refused.',
    '',
    '```sh',
    "curl -s https://firn.example.org:8580/rpc -H 'Content-Type: application/json' \\",
    '  -H "Authorization: Bearer $TOKEN" \\',
    "  -d '{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"dataset.status\", \"params\": {\"dataset_id\": 12}}'",
    '```',
    '',
    '## Errors',
    '',
    '| code | meaning |',
    '|---|---|',
    '| -32700 | the body is not JSON |',
    '| -32600 | not a JSON-RPC request (or an empty batch) |',
    '| -32601 | no such method |',
    '| -32602 | invalid params: `data.issues` lists `{path, message}` with the JSON path of each problem |',
    '| -32603 | internal error (details only in the daemon log) |',
    '| -32001 | unauthenticated: no token, or an expired or revoked one |',
    '| -32003 | forbidden: your role, or not your dataset |',
    '| -32004 | not found |',
    '| -32009 | conflict: an illegal state transition, or a stale / wrong passkey |',
    '| -32029 | rate limited (failed logins; firn-mon backpressure) — retry later |',
    '| -32050 | unavailable, retry: the daemon cannot reach its database, or is shutting down (then with HTTP 503 and `Retry-After`); `data.retry_after_ms` suggests a wait. The same call may succeed later |',
    '',
    'Error messages are at most 1024 characters (quoted input is cut) and `data` at most 64 KB',
    '(256 KB for all the errors of one batch; `data.truncated` is true when issues were left out).',
    '',
    '## HTTP',
    '',
    '- Every JSON-RPC answer comes with HTTP 200 — also errors, also a batch whose members failed —',
    '  except: **204** (no body) when the request held only notifications (members without `id`, which',
    '  are run but never answered); **413** for a body over `body_limit`; **503** with `Retry-After`',
    '  and a JSON-RPC -32050 body (one error per member with an `id`) while the daemon shuts down.',
    '- A batch member that is not a request object (`null`, a number, no `method`) is answered -32600',
    '  on its own; the other members are answered as usual. An empty batch, and a batch of more than',
    '  1000 members, is one -32600.',
    '- Connections are limited per daemon (`idle_timeout`, `headers_timeout`, `request_timeout`,',
    '  `max_connections` in `[tray]` / `[mon]`; see operator.md): an idle keep-alive connection is',
    '  closed after `idle_timeout`, a request whose body has not fully arrived after `request_timeout`',
    '  is cut off.',
    '',
    '## Methods',
    '',
  );
  const byDaemon = new Map();
  for (const m of methods) {
    if (!byDaemon.has(m.daemon)) byDaemon.set(m.daemon, []);
    byDaemon.get(m.daemon).push(m);
  }
  for (const [daemon, list] of byDaemon) {
    L.push(`- **firn-${daemon}**: ${list.map((m) => `[\`${m.method}\`](#${anchor(m.method)})`).join(', ')}`);
  }
  L.push('');
  for (const [daemon, list] of byDaemon) {
    L.push(`## firn-${daemon}`, '');
    if (DAEMON_INTRO[daemon]) L.push(...DAEMON_INTRO[daemon], '');
    for (const { method, schema } of list) {
      const { description, result } = resultOf(schema);
      L.push(`### \`${method}\``, '');
      if (description) L.push(description, '');
      const facts = [`Served by firn-${daemon}`];
      if (schema['x-role']) facts.push(`role: ${schema['x-role']}`);
      L.push(`${facts.join(' · ')}.`, '');
      if (result) L.push(`Result: \`${result.replace(/`/g, "'")}\``, '');
      const props = schema.properties || {};
      if (Object.keys(props).length === 0) {
        L.push('No parameters (send `{}` or omit `params`).', '');
        continue;
      }
      const req = new Set(schema.required || []);
      L.push('| parameter | type | required | description |', '|---|---|---|---|');
      const out = [];
      for (const [k, v] of Object.entries(props)) rows(k, v, req.has(k), out);
      L.push(...out, '');
    }
  }
  return L.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

function main(argv) {
  const text = render(loadSchemas(SCHEMA_DIR));
  if (argv.includes('--stdout')) {
    process.stdout.write(text);
    return 0;
  }
  if (argv.includes('--check')) {
    let current = null;
    try {
      current = fs.readFileSync(OUT, 'utf8');
    } catch {
      /* missing */
    }
    if (current !== text) {
      process.stderr.write(`${path.relative(ROOT, OUT)} is stale: run \`node scripts/gen-rpc-docs.js\`\n`);
      return 1;
    }
    process.stdout.write(`${path.relative(ROOT, OUT)} is up to date\n`);
    return 0;
  }
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, text);
  process.stdout.write(`wrote ${path.relative(ROOT, OUT)}\n`);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
module.exports = { render, loadSchemas };
