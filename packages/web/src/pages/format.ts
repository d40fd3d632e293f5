import { html, type SafeHtml } from '../html';

/** 1234567 → "1,234,567" (numbers are shown the same way everywhere, in tests too). */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A statistic: up to 6 significant digits, no exponent for ordinary magnitudes. */
export function fmtNum(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '';
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString('en-US');
  const a = Math.abs(n);
  if (a !== 0 && (a < 1e-4 || a >= 1e12)) return n.toExponential(4);
  return Number(n.toPrecision(6)).toLocaleString('en-US', { maximumFractionDigits: 6 });
}

/** Epoch ms → `2026-11-22 02:43:39` (UTC), in a <time> element. */
export function fmtTime(ms: number | null | undefined): SafeHtml {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms <= 0) return html`<span class="muted">—</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')}</time>`;
}

/** "3 min ago" style age of a timestamp. */
export function fmtAge(ms: number | null | undefined, nowMs: number = Date.now()): string {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** A status word in its colour. */
export function badge(status: string): SafeHtml {
  const cls = /^[A-Z_]+$/.test(status) ? status : 'OTHER';
  return html`<span class="status s-${cls}">${status}</span>`;
}
