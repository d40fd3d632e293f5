/**
 * Where Firn may read, write and delete data: site temp (`[system] site_temp`, where pilots
 * stage outputs) and the storage roots outputs may be delivered to (`[dh] destinations`, a
 * comma-separated list of URL prefixes). One pure rule, used by firn-mon (what a pilot may
 * report), firn-dh (what it copies, verifies and deletes) and firn-tray (what a dataset may
 * name as an output `remote` at submission).
 *
 * A location is compared after normalisation: the scheme (file, http, https, sftp; a plain
 * absolute path is file), the authority (host lower-cased and port, default port filled in;
 * user names and passwords ignored; file:// only on localhost) and the path, percent-decoded,
 * with `.` and empty segments dropped and `..` resolved — a `..` above `/` is refused, as is a
 * NUL or any control character, a query or a fragment. A location is under a root when scheme
 * and authority are equal and its path lies strictly below the root's path on a `/` boundary
 * (`/data/out` holds `/data/out/x`, never `/data/outside` nor `/data/out` itself).
 *
 * Decoding before comparing is the strict choice: `%2F` becomes a separator and `%2e%2e` a
 * `..`, so a location can never mean more to the store than it meant to the check.
 *
 * Default when `[dh] destinations` is unset: site temp is the only root (relative `remote`s,
 * which resolve under site temp, keep working; every absolute destination is refused) and
 * the daemons warn at start. `firn up` sets it to its data directory.
 */

import { ConfigError } from './errors';

/** A location reduced to what the comparison needs. */
export interface StorageLocation {
  scheme: 'file' | 'http' | 'https' | 'sftp';
  /** `host:port`, lower-case; '' for file. */
  authority: string;
  /** Decoded, normalised, absolute; no trailing `/` (except the root `/`). */
  path: string;
}

/** Why a URL is not a location Firn may use (the message says what is wrong). */
export class StorageLocationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageLocationError';
  }
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443', 'sftp:': '22' };
/** Longest location considered (the file.url / temp_url columns hold 2048). */
export const MAX_LOCATION_LENGTH = 2048;

/** Normalise a URL or absolute path (throws StorageLocationError). */
export function normaliseLocation(url: string): StorageLocation {
  if (typeof url !== 'string' || url === '') throw new StorageLocationError('empty location');
  if (url.length > MAX_LOCATION_LENGTH) throw new StorageLocationError(`location longer than ${MAX_LOCATION_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(url)) throw new StorageLocationError('control character (NUL, newline, …) in location');
  if (url.startsWith('/')) return { scheme: 'file', authority: '', path: normalisePath(url, false) };
  if (!/^[a-z][a-z0-9+.-]*:/i.test(url)) throw new StorageLocationError('relative location (a URL or an absolute path is needed)');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StorageLocationError('not a URL');
  }
  if (u.search || u.hash || /[?#]/.test(url)) throw new StorageLocationError('query or fragment in location');
  switch (u.protocol) {
    case 'file:':
      if (u.hostname !== '' && u.hostname.toLowerCase() !== 'localhost') throw new StorageLocationError(`file:// on another host (${u.hostname})`);
      return { scheme: 'file', authority: '', path: normalisePath(rawPath(url, u), true) };
    case 'http:':
    case 'https:':
    case 'sftp:': {
      if (!u.hostname) throw new StorageLocationError(`${u.protocol}// without a host`);
      const port = u.port || DEFAULT_PORTS[u.protocol]!;
      return {
        scheme: u.protocol.slice(0, -1) as 'http' | 'https' | 'sftp',
        authority: `${u.hostname.toLowerCase()}:${port}`,
        path: normalisePath(rawPath(url, u), true),
      };
    }
    default:
      throw new StorageLocationError(`unsupported scheme ${u.protocol} (file://, http(s)://, sftp:// only)`);
  }
}

/**
 * The path as written (WHATWG URL parsing already removed literal dot segments for special
 * schemes; the raw text is re-checked so nothing it folded away goes unseen).
 */
function rawPath(url: string, u: URL): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/is.exec(url);
  const raw = m ? (m[1] ?? '/') : u.pathname;
  return raw.replace(/\\/g, '/');
}

function normalisePath(p: string, encoded: boolean): string {
  let decoded = p;
  if (encoded) {
    try {
      decoded = decodeURIComponent(p);
    } catch {
      throw new StorageLocationError('malformed percent-encoding in location');
    }
    if (/[\u0000-\u001f\u007f]/.test(decoded)) throw new StorageLocationError('control character (NUL, newline, …) in location');
  }
  if (!decoded.startsWith('/')) decoded = `/${decoded}`;
  const out: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) throw new StorageLocationError('".." above the root in location');
      out.pop();
      continue;
    }
    out.push(seg);
  }
  return `/${out.join('/')}`;
}

/** Is `loc` strictly below `root`? */
export function isUnder(loc: StorageLocation, root: StorageLocation): boolean {
  if (loc.scheme !== root.scheme || loc.authority !== root.authority) return false;
  if (root.path === '/') return loc.path !== '/';
  return loc.path.startsWith(`${root.path}/`);
}

/** A location as text for messages (never with user info). */
export function describeLocation(l: StorageLocation): string {
  return l.scheme === 'file' ? `file://${l.path}` : `${l.scheme}://${l.authority}${l.path}`;
}

/** `[dh] destinations` as a list (comma-separated; blanks dropped). */
export function parseDestinationList(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export interface StorageRootsOptions {
  /** `[system] site_temp` (a list: more than one staging area, e.g. in tests; the first is the site's). */
  siteTemp?: string | readonly string[] | undefined;
  /** `[dh] destinations` (a comma-separated string or a list); undefined = unset. */
  destinations?: string | readonly string[] | undefined;
}

/**
 * The roots of one installation. `stagingRefusal`, `destinationRefusal` and `removalRefusal`
 * answer null when a location may be used that way, else why not.
 */
export class StorageRoots {
  readonly siteTemp: StorageLocation | null;
  /** Every staging root (site temp first). */
  readonly stagingRoots: readonly StorageLocation[];
  /** `[system] site_temp` as configured. */
  readonly siteTempUrl: string | undefined;
  readonly destinations: readonly StorageLocation[];
  /** `[dh] destinations` was set (if not, only site temp is a root: see the file comment). */
  readonly configured: boolean;

  constructor(o: StorageRootsOptions) {
    const temps = (typeof o.siteTemp === 'string' ? [o.siteTemp] : [...(o.siteTemp ?? [])]).filter((t) => t !== '');
    this.stagingRoots = temps.map((t) => root(t, '[system] site_temp'));
    this.siteTemp = this.stagingRoots[0] ?? null;
    this.siteTempUrl = temps[0];
    const list = typeof o.destinations === 'string' ? parseDestinationList(o.destinations) : o.destinations ? [...o.destinations] : undefined;
    this.configured = list !== undefined;
    this.destinations = (list ?? []).map((d) => root(d, '[dh] destinations'));
  }

  /** From a loaded config ([system] site_temp, [dh] destinations). */
  static fromConfig(cfg: { system: { site_temp?: string | undefined }; dh: { destinations?: string | undefined } }): StorageRoots {
    return new StorageRoots({ siteTemp: cfg.system.site_temp, destinations: cfg.dh.destinations });
  }

  /** What the daemons log (warn) at start when the roots are incomplete; null when all is set. */
  startupWarning(): string | null {
    if (!this.configured) {
      return this.siteTemp
        ? `[dh] destinations is not set: outputs may only be delivered under site temp (${describeLocation(this.siteTemp)}); every other destination is refused`
        : '[dh] destinations and [system] site_temp are not set: every output location is refused';
    }
    if (!this.siteTemp) return '[system] site_temp is not set: outputs can only be staged at their destination';
    return null;
  }

  /** A location pilots stage to (and dh reads from, then deletes): under site temp. */
  stagingRefusal(url: string): string | null {
    const loc = parse(url);
    if (typeof loc === 'string') return loc;
    if (this.stagingRoots.some((r) => isUnder(loc, r))) return null;
    return `${describeLocation(loc)} is not under site temp${this.siteTemp ? ` (${describeLocation(this.siteTemp)})` : ' (none configured)'}`;
  }

  /** A location outputs are delivered to: under a `[dh] destinations` root, or site temp. */
  destinationRefusal(url: string): string | null {
    const loc = parse(url);
    if (typeof loc === 'string') return loc;
    if (this.destinations.some((r) => isUnder(loc, r))) return null;
    if (this.stagingRoots.some((r) => isUnder(loc, r))) return null;
    return `${describeLocation(loc)} is not under a configured destination ([dh] destinations${this.configured ? '' : ' is unset'}) nor site temp`;
  }

  /** A location dh may delete: under site temp or a destination root. */
  removalRefusal(url: string): string | null {
    return this.destinationRefusal(url);
  }
}

function root(text: string, key: string): StorageLocation {
  try {
    return normaliseLocation(text);
  } catch (e) {
    throw new ConfigError(`${key}: ${JSON.stringify(text)} is not a usable root: ${(e as Error).message}`);
  }
}

function parse(url: string): StorageLocation | string {
  try {
    return normaliseLocation(url);
  } catch (e) {
    return `refused location: ${(e as Error).message}`;
  }
}
