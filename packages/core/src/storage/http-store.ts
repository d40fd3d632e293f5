/**
 * http(s)://: GET reads, PUT writes, DELETE removes; `user:password@` in the URL is sent as
 * Basic auth (and never appears in a message). The rules, decided once for every Firn
 * transfer:
 *
 *   - GET follows at most 5 redirects (`maxRedirects`), only to the same or a stronger
 *     scheme: http → https is followed, https → http is refused (a downgrade would expose
 *     the request and the bytes). Credentials go only to the origin they were given for.
 *     PUT and DELETE follow no redirect (the body cannot be replayed): a 3xx is permanent.
 *   - `timeoutMs` (default 60 s) bounds the connect and every silence while the request or
 *     the response body is under way.
 *   - `maxBytes` caps a response body: a Content-Length above it is refused before reading,
 *     a body growing past it is cut off. Both are permanent.
 *   - 404 / 410 mean "nothing there" (MissingFileError on read, null from stat/checksum);
 *     another 4xx (except 408, 429) is permanent; 5xx, 408, 429 and socket errors are worth
 *     a retry.
 *
 * A PUT goes straight to the destination (HTTP has no rename): `commit()` waits for its 2xx,
 * `abort()` after a completed PUT deletes the upload again.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { PassThrough, type Readable } from 'node:stream';
import { checksumStream, type Checksums } from '../checksums';
import { MissingFileError, PermanentTransferError, TransferError } from '../errors';
import { redactUrl, type Location } from './location';
import type { FileInfo, Store, WriteTarget } from './store';

export interface HttpStoreOptions {
  /** Connect / idle timeout, ms (default 60 s). */
  timeoutMs?: number;
  /** Redirects a GET follows (default 5). */
  maxRedirects?: number;
  /** Largest response body read, bytes (default: no cap). */
  maxBytes?: number;
  /** Extra CA (PEM) trusted for https, in addition to the system's roots. */
  ca?: Buffer | string;
  /** Skip certificate verification (a test or a site's explicit choice). */
  insecure?: boolean;
}

export const DEFAULT_MAX_REDIRECTS = 5;

function httpUrl(loc: Location): URL {
  if (loc.scheme !== 'http') throw new TransferError(`not an http location: ${loc.scheme}`);
  return loc.url;
}

/** Transient or permanent, by status. */
function statusError(what: string, status: number): TransferError {
  const msg = `${what}: HTTP ${status}`;
  return (status >= 300 && status < 500 && status !== 408 && status !== 429) ? new PermanentTransferError(msg) : new TransferError(msg);
}

/** May a redirect from `from` go to `to`? Same scheme, or http → https. */
export function redirectAllowed(from: URL, to: URL): boolean {
  if (to.protocol !== 'http:' && to.protocol !== 'https:') return false;
  return !(from.protocol === 'https:' && to.protocol === 'http:');
}

export class HttpStore implements Store {
  readonly scheme = 'http' as const;
  readonly rename = null;
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;

  constructor(private readonly o: HttpStoreOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 60_000;
    this.maxRedirects = o.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    if (o.maxBytes !== undefined && !(Number.isSafeInteger(o.maxBytes) && o.maxBytes >= 0)) {
      throw new TransferError(`http maxBytes must be a non-negative integer, got ${o.maxBytes}`);
    }
    this.agents = {
      http: new http.Agent({ keepAlive: true }),
      // a given CA is trusted in addition to the system's roots, not instead of them
      https: new https.Agent({ keepAlive: true, rejectUnauthorized: !o.insecure, ...(o.ca ? { ca: [...tls.rootCertificates, o.ca.toString()] } : {}) }),
    };
  }

  /** One request (no redirects followed); resolves with the response head. */
  private request(method: string, u: URL, body?: (req: http.ClientRequest) => void): { req: http.ClientRequest; res: Promise<http.IncomingMessage> } {
    const secure = u.protocol === 'https:';
    const headers: Record<string, string> = {};
    if (u.username || u.password) headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
    const target = new URL(u.href);
    target.username = '';
    target.password = '';
    const what = `${method} ${redactUrl(u.href)}`;
    const req = (secure ? https : http).request(target, { method, headers, agent: secure ? this.agents.https : this.agents.http, timeout: this.timeoutMs });
    const res = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('timeout', () => req.destroy(new TransferError(`${what}: timed out after ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(e instanceof TransferError ? e : new TransferError(`${what}: ${e.message}`)));
    });
    if (body) body(req);
    else req.end();
    return { req, res };
  }

  /** GET, following allowed redirects; null on 404 / 410. */
  private async get(u: URL): Promise<http.IncomingMessage | null> {
    let url = u;
    for (let hops = 0; ; hops++) {
      const res = await this.request('GET', url).res;
      const status = res.statusCode ?? 0;
      const what = `GET ${redactUrl(url.href)}`;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (hops >= this.maxRedirects) throw new PermanentTransferError(`${what}: more than ${this.maxRedirects} redirects`);
        let next: URL;
        try {
          next = new URL(res.headers.location, url);
        } catch {
          throw new PermanentTransferError(`${what}: redirected to an invalid location`);
        }
        if (!redirectAllowed(url, next)) throw new PermanentTransferError(`${what}: redirect to ${redactUrl(next.href)} refused (only to the same or a stronger scheme)`);
        if (next.origin !== url.origin) {
          next.username = '';
          next.password = '';
        }
        url = next;
        continue;
      }
      if (status === 404 || status === 410) {
        res.resume();
        return null;
      }
      if (status !== 200) {
        res.resume();
        throw statusError(what, status);
      }
      return res;
    }
  }

  /** The body of a 200 as a stream, aborted / capped as the options say. */
  private body(res: http.IncomingMessage, u: URL): Readable {
    const what = `GET ${redactUrl(u.href)}`;
    const cap = this.o.maxBytes;
    const declared = Number(res.headers['content-length']);
    if (cap !== undefined && Number.isFinite(declared) && declared > cap) {
      res.destroy();
      throw new PermanentTransferError(`${what}: ${declared} bytes is more than the ${cap} allowed`);
    }
    const pass = new PassThrough({ highWaterMark: 1 << 20 });
    let seen = 0;
    if (cap !== undefined) {
      res.on('data', (c: Buffer) => {
        seen += c.length;
        if (seen > cap) {
          res.destroy();
          pass.destroy(new PermanentTransferError(`${what}: body larger than the ${cap} bytes allowed`));
        }
      });
    }
    res.on('aborted', () => pass.destroy(new TransferError(`${what}: connection aborted`)));
    res.on('error', (e) => pass.destroy(e instanceof TransferError ? e : new TransferError(`${what}: ${e.message}`)));
    res.pipe(pass);
    return pass;
  }

  async stat(loc: Location): Promise<FileInfo | null> {
    const u = httpUrl(loc);
    const res = await this.get(u);
    if (!res) return null;
    res.destroy();
    const size = Number(res.headers['content-length']);
    return { size: Number.isFinite(size) ? size : -1 };
  }

  async openRead(loc: Location): Promise<Readable> {
    const u = httpUrl(loc);
    const res = await this.get(u);
    if (!res) throw new MissingFileError(`cannot read ${redactUrl(u.href)}: it does not exist (HTTP 404)`);
    return this.body(res, u);
  }

  async checksum(loc: Location): Promise<Checksums | null> {
    const u = httpUrl(loc);
    const res = await this.get(u);
    return res ? checksumStream(this.body(res, u)) : null;
  }

  async openWrite(loc: Location): Promise<WriteTarget> {
    const u = httpUrl(loc);
    const what = `PUT ${redactUrl(u.href)}`;
    const { req, res } = this.request('PUT', u, () => undefined);
    let stored = false;
    const done = res.then((r) => {
      r.resume();
      const s = r.statusCode ?? 0;
      if (s < 200 || s >= 300) throw statusError(what, s);
      stored = true;
    });
    done.catch(() => undefined); // observed in written()
    return {
      stream: req,
      staged: loc,
      written: () => done,
      commit: () => done,
      abort: async () => {
        req.destroy();
        if (stored) await this.remove(loc).catch(() => undefined);
      },
    };
  }

  async remove(loc: Location): Promise<void> {
    const u = httpUrl(loc);
    const r = await this.request('DELETE', u).res;
    r.resume();
    const s = r.statusCode ?? 0;
    if (s !== 404 && s !== 410 && (s < 200 || s >= 300)) throw statusError(`DELETE ${redactUrl(u.href)}`, s);
  }

  async reset(): Promise<void> {}

  async close(): Promise<void> {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
