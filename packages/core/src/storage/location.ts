/**
 * The one parser of storage locations, for every store (firn-dh, the pilot's staging,
 * `firn run`):
 *
 *   - an absolute path, or `file:` URL                      → file
 *   - a relative path, only where a base directory is given  → file, resolved against it
 *   - `sftp://[user[:password]@]host[:port]/path`            → sftp (port 22; `/~/x` is `x`
 *     in the login directory)
 *   - `http://…`, `https://…`                                → http (user:password as Basic auth)
 *
 * Anything else (`gsiftp://`, `s3://`, a malformed URL) is a PermanentTransferError. Messages
 * name a location only through `redactUrl` / `displayLocation`: a password never reaches a
 * log, an error_summary or a reply.
 *
 * Imports only node built-ins and errors.ts: the pilot bundle uses it.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PermanentTransferError } from '../errors';

export type Location =
  | { scheme: 'file'; path: string }
  | {
    scheme: 'sftp';
    host: string;
    port: number;
    /** From the URL; absent = the store's default user. */
    username?: string;
    password?: string;
    /** Absolute, or relative to the login directory (written `/~/…` in the URL). */
    path: string;
  }
  | { scheme: 'http'; url: URL };

export type LocationScheme = Location['scheme'];

export interface ParseOptions {
  /**
   * Resolve a relative path (no scheme) against this directory. Absent: a relative path is
   * refused (firn-dh only ever sees absolute locations).
   */
  relativeTo?: string;
}

/** `user:password@` → `user:[REDACTED]@`, anywhere in a text (a URL or a message holding one). */
export function redactUrl(text: string): string {
  return text.replace(/(\/\/[^:/@\s]*:)[^@\s]+(?=@)/g, '$1[REDACTED]');
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** Parse a URL or path (throws PermanentTransferError, the location redacted in the message). */
export function parseLocation(url: string, o: ParseOptions = {}): Location {
  if (typeof url !== 'string' || url === '') throw new PermanentTransferError('empty location');
  if (url.includes('\u0000')) throw new PermanentTransferError(`NUL character in location ${JSON.stringify(redactUrl(url))}`);
  if (url.startsWith('/')) return { scheme: 'file', path: url };
  if (/^file:/i.test(url)) {
    try {
      return { scheme: 'file', path: fileURLToPath(url) };
    } catch (e) {
      throw new PermanentTransferError(`not a usable file URL: ${redactUrl(url)} (${(e as Error).message})`);
    }
  }
  const m = SCHEME.exec(url);
  if (!m) {
    if (o.relativeTo !== undefined) return { scheme: 'file', path: path.resolve(o.relativeTo, url) };
    throw new PermanentTransferError(`not a URL nor an absolute path: ${redactUrl(url)}`);
  }
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'sftp' && scheme !== 'http' && scheme !== 'https') {
    throw new PermanentTransferError(`unsupported URL scheme ${scheme}: in ${redactUrl(url)} (file://, sftp://, http(s):// only)`);
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PermanentTransferError(`not a URL: ${redactUrl(url)}`);
  }
  if (scheme !== 'sftp') return { scheme: 'http', url: u };
  let p: string;
  try {
    p = decodeURIComponent(u.pathname);
  } catch {
    throw new PermanentTransferError(`malformed percent-encoding in ${redactUrl(url)}`);
  }
  if (p.startsWith('/~/')) p = p.slice(3); // relative to the login directory
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1'); // [::1] → ::1 for ssh2
  if (!host || !p || p === '/') throw new PermanentTransferError(`sftp URL needs a host and a path: ${redactUrl(url)}`);
  const username = decodeURIComponent(u.username);
  return {
    scheme: 'sftp',
    host,
    port: Number(u.port || 22),
    ...(username ? { username } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    path: p,
  };
}

/** Which store a URL (or, with a base directory, a relative path) goes to. */
export function locationScheme(url: string): LocationScheme {
  return parseLocation(url, { relativeTo: '/' }).scheme;
}

/** The same location with `suffix` appended to its last path segment (a partial copy's name). */
export function withSuffix(loc: Location, suffix: string): Location {
  if (loc.scheme === 'http') {
    const u = new URL(loc.url.href);
    u.pathname += suffix;
    return { scheme: 'http', url: u };
  }
  return { ...loc, path: loc.path + suffix };
}

/** The location for messages: never with a password. */
export function displayLocation(loc: Location): string {
  switch (loc.scheme) {
    case 'file':
      return loc.path;
    case 'sftp':
      return `sftp://${loc.username ? `${loc.username}@` : ''}${loc.host.includes(':') ? `[${loc.host}]` : loc.host}:${loc.port}${loc.path.startsWith('/') ? '' : '/~/'}${loc.path}`;
    case 'http':
      return redactUrl(loc.url.href);
  }
}
