import https from 'node:https';
import { FirnError, ValidationError, checksumBuffer, coerceError, type Logger } from '@firn/core';

/**
 * External modules (a `class` with an https `src`) are fetched once, at submission, and cached
 * in `module.src_content` (UTF-8 text) with their md5 and sha256; pilots get that copy, so a dataset always
 * runs the code it was submitted with. Only https:// URLs; bodies are size-capped while
 * streaming; redirects are followed (https only, at most 5).
 */
export interface FetchOptions {
  /** Largest body accepted, bytes. */
  maxBytes: number;
  timeoutMs: number;
  /** PEM CA to trust besides the system store ([tray] fetch_ca). */
  ca?: Buffer;
  logger?: Logger;
}

export interface FetchedModule {
  content: string;
  md5: string;
  sha256: string;
  size: number;
}

/** A fetch that failed for a reason of the URL (unreachable, HTTP error, too big). */
export class ModuleFetchError extends FirnError {}

/** Refuse anything that is not an https URL; `path` names the config field for the error. */
export function checkModuleUrl(src: string, path: string): URL {
  let url: URL;
  try {
    url = new URL(src);
  } catch {
    throw new ValidationError('invalid external module', [{ path, message: `is not a valid URL: ${JSON.stringify(src.slice(0, 200))}` }]);
  }
  if (url.protocol !== 'https:') {
    throw new ValidationError('invalid external module', [{ path, message: `must be an https:// URL (got ${url.protocol}//): modules are only fetched over TLS` }]);
  }
  return url;
}

export function fetchModule(src: string, options: FetchOptions, path = 'src', redirects = 0): Promise<FetchedModule> {
  const url = checkModuleUrl(src, path);
  const where = `${url.origin}${url.pathname}`; // never the query string (it may carry a secret)
  return new Promise((resolve, reject) => {
    const fail = (message: string) => reject(new ValidationError('external module could not be fetched', [{ path, message }]));
    const req = https.get(url, { timeout: options.timeoutMs, ...(options.ca ? { ca: options.ca } : {}), headers: { 'user-agent': 'firn-tray' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= 5) return fail(`too many redirects fetching ${where}`);
        const next = new URL(res.headers.location, url).toString();
        fetchModule(next, options, path, redirects + 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        return fail(`fetching ${where} answered HTTP ${status}`);
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        res.destroy();
        return fail(`${where} is ${declared} bytes, more than the ${options.maxBytes} allowed ([tray] fetch_max_bytes)`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > options.maxBytes) {
          res.destroy();
          fail(`${where} is more than the ${options.maxBytes} bytes allowed ([tray] fetch_max_bytes)`);
          return;
        }
        chunks.push(c);
      });
      res.on('error', (e) => fail(`fetching ${where} failed: ${e.message}`));
      res.on('end', () => {
        if (size > options.maxBytes) return;
        const buf = Buffer.concat(chunks);
        const content = buf.toString('utf8');
        // stored as text (module.src_content): refuse what would not survive the round trip
        if (!Buffer.from(content, 'utf8').equals(buf)) return fail(`${where} is not UTF-8 text (external modules are scripts)`);
        const sums = checksumBuffer(buf);
        resolve({ content, md5: sums.md5, sha256: sums.sha256, size: sums.size });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${options.timeoutMs} ms`)));
    req.on('error', (e) => {
      options.logger?.warn('external module fetch failed', { url: where, error: coerceError(e).message });
      fail(`fetching ${where} failed: ${coerceError(e).message}`);
    });
  });
}
