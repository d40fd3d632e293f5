import { RpcError, RpcTransportError, coerceError } from '@firn/core';

/** Plain-text rendering for people: aligned tables and progress bars (no colours, no dependencies). */

export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c).replace(/[\r\n\t]+/g, ' '))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function bar(n: number, total: number, width = 30): string {
  const frac = total > 0 ? Math.min(1, n / total) : 0;
  const full = Math.round(frac * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

/** Counts per state as labelled bars, biggest first; states with 0 are left out. */
export function countBars(title: string, counts: Record<string, number>, width = 30): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const entries = Object.entries(counts).filter(([, n]) => n > 0);
  const label = Math.max(10, ...entries.map(([k]) => k.length));
  const digits = String(total).length;
  const lines = entries.map(([k, n]) => `  ${k.padEnd(label)} ${bar(n, total, width)} ${String(n).padStart(digits)}/${total} ${((100 * n) / (total || 1)).toFixed(1).padStart(5)}%`);
  return `${title} (${total})\n${lines.length ? lines.join('\n') + '\n' : '  (none)\n'}`;
}

/**
 * The one way human output prints a time: ISO 8601 UTC to the second (`2026-12-04T18:42:00Z`),
 * whatever the reader's locale or time zone. Takes epoch ms (what the RPC results carry) or an
 * ISO string (login's `expires`); '' for none, and text that is not a time is shown as it is.
 * `--json` output keeps the server's values untouched.
 */
export function time(t: number | string | null | undefined): string {
  if (t === null || t === undefined) return '';
  const ms = typeof t === 'number' ? t : Date.parse(t);
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return typeof t === 'string' ? t : '';
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Numbers for tables: integers as is, others with 6 significant digits. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6)));
}

/** Machine-readable name of an exit code, for `--json` errors the CLI raises itself. */
const EXIT_NAMES: Record<number, string> = { 1: 'error', 2: 'usage', 3: 'auth', 4: 'not_found', 5: 'conflict' };

/**
 * A failed command under `--json`: `{"error": {"code", "message", "data"?}}` on stdout (with the
 * same non-zero exit code as without --json). `code` is the server's JSON-RPC error code for
 * errors it answered (-32602, -32004 …), else a word for the CLI's own (`usage`, `not_found`,
 * `auth`, `conflict`, `error`; `unreachable` when the server could not be reached).
 */
export function jsonError(e: unknown, exitCode: number, details: readonly string[] = []): string {
  const err = coerceError(e);
  let code: number | string = EXIT_NAMES[exitCode] ?? 'error';
  let data: unknown = details.length ? { details: details.map((d) => d.trim()) } : undefined;
  // a CliError that rephrases a server error (submit's "the dataset config is invalid") keeps its cause
  const cause = (e as { cause?: unknown } | null)?.cause;
  const rpc = e instanceof RpcError ? e : cause instanceof RpcError ? cause : null;
  if (e instanceof RpcTransportError) code = 'unreachable';
  else if (rpc) {
    code = rpc.code;
    if (rpc.data !== undefined) data = rpc.data;
  } else if (e instanceof Error && (e as { data?: unknown }).data !== undefined) {
    data = (e as { data?: unknown }).data; // a CliError carrying structured detail (validate's issues)
  }
  return JSON.stringify({ error: { code, message: err.message, ...(data !== undefined ? { data } : {}) } }) + '\n';
}
