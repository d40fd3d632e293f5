import dns from 'node:dns';
import https from 'node:https';
import net from 'node:net';
import { FirnError, ValidationError, checksumBuffer, coerceError, type Logger } from '@firn/core';

/**
 * External modules (a `class` with an https `src`) are fetched once, at submission, and cached
 * in `module.src_content` (UTF-8 text) with their md5 and sha256; pilots get that copy, so a
 * dataset always runs the code it was submitted with.
 *
 * The URL is the submitter's, the fetch is firn-tray's, so every fetch is treated as hostile:
 * - only https://, redirects too (at most MAX_REDIRECTS, each Location checked);
 * - never to a loopback, link-local, private, CGNAT, unspecified, multicast or IPv4-mapped
 *   address (unless `[tray] fetch_allow_private`): checked on the addresses DNS gives the
 *   connection itself (a `lookup` hook), on IP literals, and on the socket's peer once
 *   connected — so a name that resolves to a public address for a check and to 127.0.0.1
 *   for the connection (DNS rebinding) gains nothing;
 * - bodies capped while streaming, per module (`fetch_max_bytes`) and per submission
 *   (`fetch_max_total_bytes`, shared through a FetchBudget);
 * - every failure is a ValidationError naming the config field, with a generic message
 *   ("could not fetch: connection failed"): the submitter learns nothing about the tray's
 *   network (which ports are open, internal host names); the detail goes to the log.
 * Nothing throws outside the returned promise.
 */
export interface FetchOptions {
  /** Largest body accepted, bytes ([tray] fetch_max_bytes). */
  maxBytes: number;
  /** Largest sum of bodies of one submission, bytes ([tray] fetch_max_total_bytes). */
  maxTotalBytes?: number;
  timeoutMs: number;
  /** PEM CA to trust besides the system store ([tray] fetch_ca). */
  ca?: Buffer;
  /** Allow loopback and private addresses ([tray] fetch_allow_private; tests, closed networks). */
  allowPrivate?: boolean;
  logger?: Logger;
}

export interface FetchedModule {
  content: string;
  md5: string;
  sha256: string;
  size: number;
}

/** Bytes fetched so far by one submission (shared by its fetchModule calls). */
export interface FetchBudget {
  used: number;
}

/** A fetch that failed for a reason of the URL (unreachable, HTTP error, too big). */
export class ModuleFetchError extends FirnError {}

export const MAX_REDIRECTS = 5;

/**
 * Addresses a module is never fetched from: IPv4 this-network, private (RFC 1918), CGNAT,
 * loopback, link-local, IETF protocol assignments, benchmarking, multicast, reserved and
 * broadcast; IPv6 unspecified, loopback, IPv4-mapped, discard, ULA, link-local, site-local
 * and multicast.
 */
const PRIVATE_ADDRESSES = ((): net.BlockList => {
  const b = new net.BlockList();
  for (const [prefix, bits] of [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
  ] as const) b.addSubnet(prefix, bits, 'ipv4');
  for (const [prefix, bits] of [
    ['::', 128], ['::1', 128], ['::ffff:0:0', 96], ['64:ff9b:1::', 48], ['100::', 64], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
  ] as const) b.addSubnet(prefix, bits, 'ipv6');
  return b;
})();

/** True when `address` (an IP literal) is one modules are never fetched from; non-IPs count as private. */
export function isPrivateAddress(address: string): boolean {
  const a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const family = net.isIP(a);
  if (family === 0) return true;
  return PRIVATE_ADDRESSES.check(a, family === 4 ? 'ipv4' : 'ipv6');
}

/** Refuse anything that is not an https URL; `path` names the config field for the error. */
export function checkModuleUrl(src: string, path: string): URL {
  let url: URL;
  try {
    url = new URL(src);
  } catch {
    throw new ValidationError('invalid external module', [{ path, message: `is not a valid URL: ${JSON.stringify(src.slice(0, 200))}` }]);
  }
  if (url.protocol !== 'https:') {
    throw new ValidationError('invalid external module', [{ path, message: `must be an https:// URL (got ${url.protocol.slice(0, 20)}//): modules are only fetched over TLS` }]);
  }
  return url;
}

/** Why a fetch failed, for the submitter: never the underlying error text (it names internal hosts and ports). */
function publicReason(e: unknown): string {
  const code = String((e as { code?: unknown }).code ?? '');
  if (e instanceof PrivateAddressError) return 'could not fetch: the host is a loopback, link-local or private address (see [tray] fetch_allow_private)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NODATA' || code === 'EAI_NONAME') return 'could not fetch: host not found';
  if (code === 'ETIMEDOUT' || e instanceof FetchTimeout) return 'could not fetch: timed out';
  if (/CERT|SELF_SIGNED|SIGNATURE|ALTNAME|EPROTO|ERR_SSL|ERR_TLS/.test(code)) return 'could not fetch: TLS handshake or certificate verification failed';
  return 'could not fetch: connection failed';
}

class PrivateAddressError extends Error {
  override readonly name = 'PrivateAddressError';
}
class FetchTimeout extends Error {
  override readonly name = 'FetchTimeout';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A `lookup` for the connection that refuses the whole name when any address it resolves to
 * is private: the check is on the very answer the socket connects with.
 */
function guardedLookup(hostname: string, options: dns.LookupOptions, callback: LookupCallback): void {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '');
    const list = addresses;
    if (list.length === 0) return callback(Object.assign(new Error('no address'), { code: 'ENOTFOUND' }), '');
    if (list.some((a) => isPrivateAddress(a.address))) return callback(new PrivateAddressError(`${hostname} resolves to a private address`), '');
    if (options.all) return callback(null, list);
    const first = list[0]!;
    return callback(null, first.address, first.family);
  });
}

export function fetchModule(src: string, options: FetchOptions, path = 'src', budget: FetchBudget = { used: 0 }): Promise<FetchedModule> {
  return fetchOnce(src, options, path, budget, 0);
}

function fetchOnce(src: string, options: FetchOptions, path: string, budget: FetchBudget, redirects: number): Promise<FetchedModule> {
  return new Promise<FetchedModule>((resolve, reject) => {
    let settled = false;
    let req: ReturnType<typeof https.get> | undefined;
    let url: URL;
    try {
      url = checkModuleUrl(src, path);
    } catch (e) {
      reject(e instanceof ValidationError && redirects > 0 ? redirectRefused(path) : e);
      return;
    }
    const where = `${url.origin}${url.pathname}`.slice(0, 300); // for the log: never the query string (it may carry a secret)
    const allowPrivate = options.allowPrivate === true;
    const totalCap = options.maxTotalBytes ?? Number.MAX_SAFE_INTEGER;
    const limit = Math.min(options.maxBytes, totalCap - budget.used);
    const tooBig = (): string =>
      options.maxBytes <= totalCap - budget.used
        ? `is more than the ${options.maxBytes} bytes allowed ([tray] fetch_max_bytes)`
        : `would bring this submission's external modules over the ${totalCap} bytes allowed together ([tray] fetch_max_total_bytes)`;
    const done = (r: { ok: FetchedModule } | { message: string; detail?: unknown }): void => {
      if (settled) return;
      settled = true;
      if ('ok' in r) {
        resolve(r.ok);
        return;
      }
      req?.destroy();
      if (r.detail !== undefined) options.logger?.warn('external module fetch failed', { url: where, error: coerceError(r.detail).message.slice(0, 300) });
      reject(new ValidationError('external module could not be fetched', [{ path, message: r.message }]));
    };
    if (!allowPrivate && net.isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0 && isPrivateAddress(url.hostname)) {
      done({ message: publicReason(new PrivateAddressError()), detail: new Error(`${url.hostname} is a private address`) });
      return;
    }
    if (limit <= 0) {
      done({ message: tooBig() });
      return;
    }
    try {
      req = https.get(url, {
        agent: false,
        timeout: options.timeoutMs,
        ...(options.ca ? { ca: options.ca } : {}),
        ...(allowPrivate ? {} : { lookup: guardedLookup as unknown as net.LookupFunction }),
        headers: { 'user-agent': 'firn-tray', 'accept-encoding': 'identity' },
      }, (res) => {
        try {
          onResponse(res);
        } catch (e) {
          done({ message: 'could not fetch: invalid response', detail: e });
        }
      });
    } catch (e) {
      done({ message: publicReason(e), detail: e });
      return;
    }
    const deadline = setTimeout(() => done({ message: publicReason(new FetchTimeout()), detail: new FetchTimeout(`no complete answer in ${options.timeoutMs} ms`) }), options.timeoutMs);
    deadline.unref();
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => done({ message: publicReason(new FetchTimeout()), detail: new FetchTimeout(`idle for ${options.timeoutMs} ms`) }));
    req.on('error', (e) => done({ message: publicReason(e), detail: e }));
    req.on('socket', (socket) => {
      // the peer actually connected to, whatever resolved it (a proxy-free belt to the lookup's braces)
      socket.once('connect', () => {
        if (!allowPrivate && socket.remoteAddress !== undefined && isPrivateAddress(socket.remoteAddress)) {
          done({ message: publicReason(new PrivateAddressError()), detail: new Error(`connected to a private address ${socket.remoteAddress}`) });
        }
      });
    });

    function onResponse(res: import('node:http').IncomingMessage): void {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304) {
        res.resume();
        const location = res.headers.location;
        let next: URL | undefined;
        try {
          next = location ? new URL(location, url) : undefined;
        } catch {
          next = undefined;
        }
        if (!next) return done({ message: `could not fetch: HTTP ${status} redirect without a valid Location` });
        if (next.protocol !== 'https:') return done({ message: redirectRefused(path).issues[0]!.message });
        if (redirects >= MAX_REDIRECTS) return done({ message: `could not fetch: more than ${MAX_REDIRECTS} redirects` });
        settled = true;
        req?.destroy();
        fetchOnce(next.toString(), options, path, budget, redirects + 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        return done({ message: `could not fetch: the server answered HTTP ${status}` });
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > limit) return done({ message: tooBig() });
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (settled) return;
        size += c.length;
        if (size > limit) return done({ message: tooBig() });
        chunks.push(c);
      });
      res.on('error', (e) => done({ message: publicReason(e), detail: e }));
      res.on('aborted', () => done({ message: 'could not fetch: connection failed', detail: new Error('response aborted') }));
      res.on('end', () => {
        if (settled) return;
        const buf = Buffer.concat(chunks);
        chunks.length = 0;
        const content = buf.toString('utf8');
        // stored as text (module.src_content): refuse what would not survive the round trip
        if (!Buffer.from(content, 'utf8').equals(buf)) return done({ message: 'is not UTF-8 text (external modules are scripts)' });
        budget.used += buf.length;
        const sums = checksumBuffer(buf);
        done({ ok: { content, md5: sums.md5, sha256: sums.sha256, size: sums.size } });
      });
    }
  });
}

function redirectRefused(path: string): ValidationError {
  return new ValidationError('external module could not be fetched', [{ path, message: 'could not fetch: redirected to a URL that is not https:// (modules are only fetched over TLS)' }]);
}
