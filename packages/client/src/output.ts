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

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Numbers for tables: integers as is, others with 6 significant digits. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6)));
}
