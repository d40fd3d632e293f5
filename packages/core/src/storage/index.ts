/**
 * One storage layer for every Firn transfer: firn-dh's verified copies, the pilot's staging
 * and `firn run`. A `Storage` holds the three stores (and so the kept-alive sftp connections
 * and http agents); `close()` it when done.
 *
 * ```ts
 * const storage = new Storage({ sftp: { privateKeyPath, knownHostsFile }, http: { timeoutMs: 30_000 } });
 * const loc = parseLocation('sftp://site@host:2222/data/x.i3');
 * const target = await storage.store(loc).openWrite(loc);
 * await pipeline(source, target.stream);
 * await target.commit();
 * await storage.close();
 * ```
 *
 * Imports only node built-ins, ssh2 (lazily) and pure core files: the pilot bundle uses it
 * through core-pure.ts.
 */
import { FileStore } from './file-store';
import { HttpStore, type HttpStoreOptions } from './http-store';
import type { Location } from './location';
import { SftpStore, type SftpStoreOptions } from './sftp-store';
import type { Store } from './store';

export { parseLocation, locationScheme, redactUrl, displayLocation, withSuffix, type Location, type LocationScheme, type ParseOptions } from './location';
export { writeChecked, checksumOrNull, type Store, type ExpectedChecksums, type ReadOptions, type WriteOptions, type WriteTarget, type FileInfo } from './store';
export { FileStore } from './file-store';
export { HttpStore, redirectAllowed, DEFAULT_MAX_REDIRECTS, type HttpStoreOptions } from './http-store';
export { SftpStore, type SftpStoreOptions } from './sftp-store';
export { retryTransfer, type RetryOptions } from './retry';

export interface StorageOptions {
  sftp?: SftpStoreOptions;
  http?: HttpStoreOptions;
}

export class Storage {
  readonly file = new FileStore();
  readonly sftp: SftpStore;
  readonly http: HttpStore;

  constructor(o: StorageOptions = {}) {
    this.sftp = new SftpStore(o.sftp);
    this.http = new HttpStore(o.http);
  }

  /** The store that reaches `loc`. */
  store(loc: Location): Store {
    return loc.scheme === 'file' ? this.file : loc.scheme === 'sftp' ? this.sftp : this.http;
  }

  /** Drop the connections these locations use (after a failed attempt). */
  async reset(...locs: Location[]): Promise<void> {
    for (const l of locs) await this.store(l).reset(l);
  }

  async close(): Promise<void> {
    await Promise.all([this.file.close(), this.sftp.close(), this.http.close()]);
  }
}
