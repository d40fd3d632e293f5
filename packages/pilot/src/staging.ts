/**
 * Moving files in and out of the worker node: file://, plain paths, http(s):// and sftp://,
 * through core's storage layer (one set of stores for firn-dh, the pilot and `firn run`).
 * Every transfer is streamed through md5 + sha256; a download is checked against the
 * expected checksums before it is renamed into place, an upload is read back from its
 * destination and checked. Transient failures are retried with backoff.
 */
import crypto from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import {
  PermanentTransferError, Storage, TransferError, checksumMismatches, checksumStream, coerceError, joinUrl as coreJoinUrl, locationScheme,
  parseLocation, redactUrl, retryTransfer, writeChecked, type Checksums, type ExpectedChecksums, type Location, type Logger,
} from './core-pure';

export { PermanentTransferError, redactUrl, type ExpectedChecksums };


export interface SftpAuth {
  /** User when the URL names none (default: FIRN_SSH_USER, then this process's user). */
  username?: string;
  /** Private key file (default: FIRN_SSH_KEY, then the ssh agent and ~/.ssh/id_ed25519, id_ecdsa, id_rsa). */
  privateKeyPath?: string;
  privateKey?: Buffer | string;
  passphrase?: string;
  /**
   * known_hosts file (default: FIRN_SSH_KNOWN_HOSTS, then ~/.ssh/known_hosts). A host must
   * present a key listed there; a host not listed is refused unless `acceptUnknownHosts`.
   */
  knownHostsFile?: string;
  /** Accept a host known_hosts does not list, with a warning (--ssh-accept-unknown-hosts). */
  acceptUnknownHosts?: boolean;
}

export interface StagerOptions {
  logger?: Logger;
  sftp?: SftpAuth;
  /** Extra CA (PEM) for https downloads. */
  ca?: Buffer | string;
  insecure?: boolean;
  /** Attempts per transfer (default 3). */
  attempts?: number;
  /** Base delay between attempts, ms (default 1000, doubled each time). */
  retryDelayMs?: number;
  /** Connect / idle timeout for sftp and http, ms (default 60 s). */
  timeoutMs?: number;
}

/** Join a base URL and path parts, encoding each part's segments (core's output-locations.ts rule). */
export function joinUrl(base: string, ...parts: Array<string | number>): string {
  try {
    return coreJoinUrl(base, ...parts);
  } catch (e) {
    throw new TransferError(coerceError(e).message);
  }
}

/** What kind of location a URL (or a plain path) names. */
export function urlScheme(url: string): 'file' | 'http' | 'sftp' {
  return locationScheme(url);
}

/** A local path for a file: URL or a plain (optionally relative) path. */
export function localPathOf(url: string, baseDir = process.cwd()): string {
  const loc = parseLocation(url, { relativeTo: baseDir });
  if (loc.scheme !== 'file') throw new PermanentTransferError(`not a local path: ${redactUrl(url)}`);
  return loc.path;
}

/** md5 + sha256 + size of what flows through, without changing it. */
class HashTap extends Transform {
  private readonly md5 = crypto.createHash('md5');
  private readonly sha = crypto.createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void) {
    this.md5.update(chunk);
    this.sha.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  result(): Checksums {
    return { md5: this.md5.digest('hex'), sha256: this.sha.digest('hex'), size: this.size };
  }
}

export class Stager {
  private readonly storage: Storage;

  constructor(private readonly opts: StagerOptions = {}) {
    const auth = opts.sftp ?? {};
    const username = auth.username ?? process.env.FIRN_SSH_USER;
    const keyPath = auth.privateKeyPath ?? process.env.FIRN_SSH_KEY;
    const knownHostsFile = auth.knownHostsFile ?? process.env.FIRN_SSH_KNOWN_HOSTS;
    const timeoutMs = opts.timeoutMs ?? 60_000;
    this.storage = new Storage({
      sftp: {
        ...(username ? { username } : {}),
        ...(auth.privateKey !== undefined ? { privateKey: auth.privateKey } : keyPath ? { privateKeyPath: keyPath } : {}),
        ...(auth.passphrase ? { passphrase: auth.passphrase } : {}),
        ...(knownHostsFile ? { knownHostsFile } : {}),
        acceptUnknownHosts: auth.acceptUnknownHosts === true,
        timeoutMs,
        ...(opts.logger ? { logger: opts.logger } : {}),
      },
      http: { timeoutMs, ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.insecure ? { insecure: true } : {}) },
    });
  }

  /** Fetch `url` into `dest` (a local file), verifying `expected`; returns the checksums. */
  async download(url: string, dest: string, expected: ExpectedChecksums = {}, baseDir?: string): Promise<Checksums> {
    const from = this.parse(url, baseDir);
    const to = parseLocation(dest, { relativeTo: process.cwd() });
    return this.retry(`download ${redactUrl(url)}`, [from], async () => {
      const { sums } = await this.write(await this.storage.store(from).openRead(from), to, url, expected);
      return sums;
    });
  }

  /** Store the local file `src` at `url`, then read it back and compare checksums. */
  async upload(src: string, url: string, expected?: ExpectedChecksums): Promise<Checksums> {
    return this.copy(pathToFileURL(src).href, url, expected);
  }

  /** Copy between any two supported locations, verifying source (if expected given) and destination. */
  async copy(fromUrl: string, toUrl: string, expected: ExpectedChecksums = {}, baseDir?: string): Promise<Checksums> {
    const from = this.parse(fromUrl, baseDir);
    const to = this.parse(toUrl, baseDir);
    return this.retry(`copy ${redactUrl(fromUrl)} → ${redactUrl(toUrl)}`, [from, to], async () => {
      const { sums } = await this.write(await this.storage.store(from).openRead(from), to, fromUrl, expected);
      const back = await checksumStream(await this.storage.store(to).openRead(to));
      const bad = checksumMismatches(back, sums);
      if (bad.length) throw new TransferError(`verification of ${redactUrl(toUrl)} after transfer failed: ${bad.join('; ')}`);
      return sums;
    });
  }

  /** md5 + sha256 + size of whatever is at `url`. */
  async checksum(url: string, baseDir?: string): Promise<Checksums> {
    return checksumStream(await this.openRead(url, baseDir));
  }

  async close(): Promise<void> {
    await this.storage.close();
  }

  // ------------------------------------------------------------------------------------------

  private parse(url: string, baseDir?: string): Location {
    return parseLocation(url, { relativeTo: baseDir ?? process.cwd() });
  }

  private async openRead(url: string, baseDir?: string): Promise<Readable> {
    const loc = this.parse(url, baseDir);
    return this.storage.store(loc).openRead(loc);
  }

  /** Stream `src` into `to` atomically, checking the bytes against `expected` before they are committed. */
  private write(src: Readable, to: Location, what: string, expected: ExpectedChecksums): Promise<{ sums: Checksums }> {
    const tap = new HashTap();
    return writeChecked(this.storage.store(to), to, src, { via: tap }, async () => {
      const sums = tap.result();
      const bad = checksumMismatches(sums, expected);
      if (bad.length) throw new TransferError(`checksum mismatch for ${redactUrl(what)}: ${bad.join('; ')}`);
      return { sums };
    });
  }

  private retry<T>(what: string, locs: Location[], fn: () => Promise<T>): Promise<T> {
    return retryTransfer(what, {
      attempts: this.opts.attempts ?? 3,
      baseDelayMs: this.opts.retryDelayMs ?? 1000,
      logger: this.opts.logger,
      beforeRetry: () => this.storage.reset(...locs),
    }, fn);
  }
}
