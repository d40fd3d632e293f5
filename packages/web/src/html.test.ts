import { escapeHtml, html, joinHtml, jsonForScript, queryString, raw, seg, SafeHtml } from './html';
import { normaliseError } from './queries/dataset';
import { bucketWidth } from './queries/series';
import { isDay, monthBounds } from './queries/offline';
import { csrfFor, csrfMatches, parseCookies, serializeCookie } from './session';
import { safeNext } from './web-routes';

describe('escapeHtml', () => {
  test('escapes every character that can end text or an attribute', () => {
    expect(escapeHtml(`<script>alert("x")</script> & 'y' \`z\` a=b`)).toBe(
      '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39; &#96;z&#96; a=b',
    );
  });
  test('null and undefined are empty; numbers and booleans are text', () => {
    expect(escapeHtml(null)).toBe('');
    expect(escapeHtml(undefined)).toBe('');
    expect(escapeHtml(42)).toBe('42');
    expect(escapeHtml(true)).toBe('true');
  });
  test('already-escaped text is escaped again (no double-decoding tricks)', () => {
    expect(escapeHtml('&lt;b&gt;')).toBe('&amp;lt;b&amp;gt;');
  });
});

describe('html templates', () => {
  const hostile = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`;
  test('every interpolated value is escaped, in text and in attributes', () => {
    const out = html`<td title="${hostile}">${hostile}</td>`.toString();
    expect(out).not.toContain('<script>');
    expect(out).not.toContain('<img');
    expect(out).not.toMatch(/"><img/);
    expect(out).toBe(`<td title="${escapeHtml(hostile)}">${escapeHtml(hostile)}</td>`);
  });
  test('nested templates are not escaped twice; arrays are joined; null/false render nothing', () => {
    const inner = html`<b>${'a<b'}</b>`;
    expect(html`<p>${inner}${[html`<i>1</i>`, '<2>']}${null}${undefined}${false}</p>`.toString()).toBe('<p><b>a&lt;b</b><i>1</i>&lt;2&gt;</p>');
  });
  test('only html`` and raw() make SafeHtml; a look-alike object is escaped as text', () => {
    const fake = { value: '<script>x</script>', toString: () => '<script>x</script>' } as unknown as string;
    expect(html`${fake}`.toString()).toBe('&lt;script&gt;x&lt;/script&gt;');
    expect(raw('<hr>')).toBeInstanceOf(SafeHtml);
    expect(joinHtml(['<a>', html`<b></b>`], html`<br>`).toString()).toBe('&lt;a&gt;<br><b></b>');
  });
  test('JSON in a script block cannot close the element', () => {
    const s = jsonForScript({ reason: '</script><script>alert(1)</script>', amp: '&', ls: '\u2028' }).toString();
    expect(s).not.toContain('<');
    expect(s).not.toContain('>');
    expect(JSON.parse(s)).toEqual({ reason: '</script><script>alert(1)</script>', amp: '&', ls: '\u2028' });
  });
  test('path segments and query strings are encoded', () => {
    expect(seg('a/b ?#')).toBe('a%2Fb%20%3F%23');
    expect(queryString({ a: 'x&y', b: undefined, c: '', d: 3 })).toBe('?a=x%26y&d=3');
    expect(queryString({})).toBe('');
  });
});

describe('error normalisation', () => {
  test('numbers, hex ids and whitespace fold together', () => {
    const a = normaliseError('module sim exited with code 137: memory limit exceeded (rss 2100 MB)');
    const b = normaliseError('module sim exited with code 137:   memory limit exceeded (rss 2345.5 MB)\n');
    expect(a).toBe(b);
    expect(a).toBe('module sim exited with code N: memory limit exceeded (rss N MB)');
    expect(normaliseError('lost task deadbeef12 on 0x1f')).toBe('lost task X on X');
    expect(normaliseError('')).toBe('(empty)');
    expect(normaliseError('x'.repeat(1000)).length).toBeLessThanOrEqual(301);
  });
});

describe('small helpers', () => {
  test('bucket widths keep charts at no more than 120 buckets', () => {
    expect(bucketWidth(60 * 60_000)).toBe(60_000);
    expect(bucketWidth(24 * 3600_000)).toBe(15 * 60_000);
    expect(bucketWidth(30 * 24 * 3600_000)).toBe(6 * 3600_000);
  });
  test('months and days', () => {
    expect(monthBounds('2024-02')).toEqual({ first: '2024-02-01', last: '2024-02-29', year: 2024, month: 2 });
    expect(monthBounds('2024-13')).toBeNull();
    expect(monthBounds("2024-01' OR 1=1")).toBeNull();
    expect(isDay('2023-02-29')).toBe(false);
    expect(isDay('2024-02-29')).toBe(true);
    expect(isDay('2024-2-1')).toBe(false);
  });
  test('login redirects stay on this site', () => {
    expect(safeNext('/datasets/3?range=7d')).toBe('/datasets/3?range=7d');
    for (const bad of ['//evil.example/x', '/\\evil.example', 'https://evil.example/', 'javascript:alert(1)', '', undefined, '/x\ny']) {
      expect(safeNext(bad)).toBe('/');
    }
  });
  test('cookies: parsing, HttpOnly/SameSite=Strict/Secure', () => {
    expect(parseCookies('a=1; firn_token=abc%2Bdef; a=2; bad')).toEqual({ a: '1', firn_token: 'abc+def' });
    expect(serializeCookie('firn_token', 't', { secure: true, maxAgeSeconds: 60 })).toBe('firn_token=t; Path=/; SameSite=Strict; HttpOnly; Secure; Max-Age=60');
    expect(serializeCookie('x', 'y', { secure: false })).toBe('x=y; Path=/; SameSite=Strict; HttpOnly');
  });
  test('CSRF tokens are bound to the session secret and compared exactly', () => {
    const t = csrfFor('s:token-one');
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(csrfFor('s:token-one')).toBe(t);
    expect(csrfFor('s:token-two')).not.toBe(t);
    expect(csrfMatches(t, t)).toBe(true);
    expect(csrfMatches(t, csrfFor('s:token-two'))).toBe(false);
    expect(csrfMatches(t, undefined)).toBe(false);
    expect(csrfMatches(null, t)).toBe(false);
    expect(csrfMatches(t, t.slice(1))).toBe(false);
  });
});
