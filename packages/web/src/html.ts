/**
 * Strict HTML building: every value interpolated into an `html` template is escaped unless it
 * is itself `SafeHtml` (the result of another `html` template, or of `raw()` for constant
 * markup written in this package). There is no other way to put text into a page.
 */

/** Markup that is already safe to emit. Only `html` and `raw` make one. */
export class SafeHtml {
  private constructor(readonly value: string) {}
  /** @internal */
  static of(value: string): SafeHtml {
    return new SafeHtml(value);
  }
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/**
 * Escape text for HTML element content and quoted attribute values (every attribute in this
 * package is double-quoted; unquoted attributes are never written).
 */
export function escapeHtml(value: unknown): string {
  if (value === null || value === undefined) return '';
  const s = typeof value === 'string' ? value : String(value);
  return s.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? c);
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(value);
}

/** Tagged template: `html\`<td>${name}</td>\`` escapes `name`; arrays are joined; null/undefined/false render nothing. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return SafeHtml.of(out);
}

/** Constant markup written in this package (never pass data to it). */
export function raw(markup: string): SafeHtml {
  return SafeHtml.of(markup);
}

/** Join rendered pieces with a separator (the separator is escaped like any value). */
export function joinHtml(items: readonly HtmlValue[], separator: HtmlValue = ''): SafeHtml {
  return SafeHtml.of(items.map(render).join(render(separator)));
}

/**
 * JSON for a `<script type="application/json">` block: `<`, `>`, `&` and the line separators are
 * written as \u escapes so the text can never close the element or be read as markup.
 */
export function jsonForScript(value: unknown): SafeHtml {
  const s = JSON.stringify(value ?? null)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return SafeHtml.of(s);
}

/** A path segment for links we build (`/grids/${seg(name)}`): percent-encoded, then escaped by `html`. */
export function seg(value: string | number): string {
  return encodeURIComponent(String(value));
}

/** `?a=1&b=2` from the defined, non-empty entries (for pagination and filter links). */
export function queryString(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
