/**
 * Copying one file between storage locations (file://, sftp://, http(s)://: core's storage
 * layer) with md5 + sha256 verified at the destination, retries, and an atomic, idempotent
 * protocol:
 *
 *   1. the destination already holds the expected bytes → done (a killed dh, resumed);
 *   2. copy into `<dest>.firn-part` on the destination's storage;
 *   3. read the part back there and compare md5 + sha256 (+ size) with the expected sums;
 *   4. rename the part to `<dest>` (replacing a stale file of that name).
 *
 * So a destination name only ever holds verified bytes, and however often the copy is
 * interrupted and restarted the file ends up there exactly once. (HTTP has no rename: a
 * PUT goes straight to the destination and a mismatching upload is deleted again.)
 *
 * Sources a job could have written (site temp) are read confined (`source.within`): a
 * symbolic link planted there is refused, never followed (core's file-store.ts).
 */
import {
  PermanentTransferError, Storage, TransferError, checksumMismatches, isUnder, normaliseLocation, nullLogger, parseLocation, redactUrl, retryTransfer, writeChecked,
  type Checksums, type ExpectedChecksums, type Location, type Logger, type ReadOptions, type Store, type StorageRoots,
} from '@firn/core';

export { redactUrl, type ExpectedChecksums };

/** Suffix of the partial copy renamed into place once verified. */
export const PART_SUFFIX = '.firn-part';

/** A failure that retrying cannot fix (missing source, refused credentials, bad URL): core's PermanentTransferError. */
export const UnrecoverableTransferError = PermanentTransferError;
export type UnrecoverableTransferError = PermanentTransferError;


export interface SftpOptions {
  /** Private key file ([dh] ssh_key); else the URL's password, the ssh agent, ~/.ssh/id_*. */
  privateKeyPath?: string;
  /** known_hosts file ([dh] ssh_known_hosts; default ~/.ssh/known_hosts): a host must present a key listed there. */
  knownHostsFile?: string;
  /** [dh] ssh_accept_unknown_hosts: accept a host the file does not list, with a warning. */
  acceptUnknownHosts?: boolean;
}

export interface TransferOptions {
  /** Retries after a failed attempt ([dh] transfer_retries). */
  retries: number;
  /** Delay before the first retry, ms, doubling up to 30 s (default 1000; tests pass 0). */
  retryDelayMs?: number;
  /** Connect / idle timeout for sftp and http, ms (default 60 s). */
  timeoutMs?: number;
  sftp?: SftpOptions;
  logger?: Logger;
}

export interface TransferResult {
  /** What is at the destination now. */
  checksums: Checksums;
  /** The destination already held these bytes; nothing was copied. */
  alreadyPresent: boolean;
  attempts: number;
}

/**
 * How to read a pilot's staged copy (under site temp, where jobs write): never through a
 * symbolic link, and for file:// only below the staging root that holds it (its real path).
 * The storage-roots check (data-mover.ts) has already said the URL is under a staging root;
 * this makes the bytes read be the ones it named.
 */
export function stagedSourceReadOptions(url: string, roots: StorageRoots): ReadOptions {
  let loc;
  try {
    loc = normaliseLocation(url);
  } catch (e) {
    throw new PermanentTransferError(`staged copy ${redactUrl(url)}: ${(e as Error).message}`);
  }
  if (loc.scheme !== 'file') return { noFollow: true };
  const root = roots.stagingRoots.find((r) => isUnder(loc, r));
  if (!root) throw new PermanentTransferError(`staged copy ${redactUrl(url)} is not under site temp`);
  return { noFollow: true, within: root.path };
}

function hasChecksums(e: ExpectedChecksums): boolean {
  return Boolean(e.md5 || e.sha256);
}

/**
 * Copies, verifies and removes files at any supported location. Holds the sftp connections
 * and http agents; `close()` when done.
 */
export class Transfers {
  private readonly logger: Logger;
  private readonly storage: Storage;

  constructor(private readonly opts: TransferOptions) {
    if (!Number.isInteger(opts.retries) || opts.retries < 0) throw new TransferError(`[dh] transfer_retries must be a non-negative integer, got ${opts.retries}`);
    this.logger = opts.logger ?? nullLogger;
    const timeoutMs = opts.timeoutMs ?? 60_000;
    this.storage = new Storage({ sftp: { ...opts.sftp, timeoutMs, logger: this.logger }, http: { timeoutMs } });
  }

  private store(loc: Location): Store {
    return this.storage.store(loc);
  }

  /** Run `fn` up to retries + 1 times; a PermanentTransferError stops at once. */
  private withRetries<T>(what: string, locs: Location[], fn: (attempt: number) => Promise<T>): Promise<T> {
    return retryTransfer(what, {
      attempts: this.opts.retries + 1,
      baseDelayMs: this.opts.retryDelayMs ?? 1000,
      logger: this.logger,
      beforeRetry: () => this.storage.reset(...locs),
    }, fn);
  }

  /**
   * Copy `srcUrl` to `destUrl` and verify the bytes at the destination against `expected`
   * (when it names no checksum, against the source's). Idempotent: a destination that
   * already holds the expected bytes is left alone. `source` confines how the source is read
   * (file://: no symbolic link, real path under `within`). Throws TransferError after the retries.
   */
  async copyVerified(srcUrl: string, destUrl: string, expected: ExpectedChecksums = {}, source: ReadOptions = {}): Promise<TransferResult> {
    const src = parseLocation(srcUrl);
    const dest = parseLocation(destUrl);
    const to = this.store(dest);
    const from = this.store(src);
    const what = `copy ${redactUrl(srcUrl)} → ${redactUrl(destUrl)}`;
    let want: ExpectedChecksums | null = hasChecksums(expected) ? expected : null;
    return this.withRetries(what, [src, dest], async (attempts) => {
      if (want) {
        const there = await to.checksum(dest);
        if (there && checksumMismatches(there, want).length === 0) return { checksums: there, alreadyPresent: true, attempts };
      } else {
        want = await from.checksum(src, source);
        if (!want) throw new PermanentTransferError(`source ${redactUrl(srcUrl)} does not exist`);
      }
      const reference = want;
      const body = await from.openRead(src, source);
      return writeChecked(to, dest, body, { partSuffix: PART_SUFFIX }, async (target) => {
        const got = await to.checksum(target.staged);
        if (!got) throw new TransferError(`${what}: nothing at the destination after writing it`);
        const bad = checksumMismatches(got, reference);
        if (bad.length) throw new TransferError(`checksum mismatch at destination ${redactUrl(destUrl)}: ${bad.join('; ')}`);
        return { checksums: got, alreadyPresent: false, attempts };
      });
    });
  }

  /** Verify a file in place (source and destination are one): its checksums must match. */
  async verify(url: string, expected: ExpectedChecksums): Promise<TransferResult> {
    const loc = parseLocation(url);
    return this.withRetries(`verify ${redactUrl(url)}`, [loc], async (attempts) => {
      const got = await this.store(loc).checksum(loc);
      if (!got) throw new PermanentTransferError(`${redactUrl(url)} does not exist`);
      const bad = checksumMismatches(got, expected);
      if (bad.length) throw new TransferError(`checksum mismatch at ${redactUrl(url)}: ${bad.join('; ')}`);
      return { checksums: got, alreadyPresent: true, attempts };
    });
  }

  /** Checksums of what is at `url`, or null when nothing is. */
  async checksum(url: string): Promise<Checksums | null> {
    const loc = parseLocation(url);
    return this.store(loc).checksum(loc);
  }

  /** Remove the file at `url` (missing is fine), with the retries. */
  async remove(url: string): Promise<void> {
    const loc = parseLocation(url);
    await this.withRetries(`remove ${redactUrl(url)}`, [loc], () => this.store(loc).remove(loc));
  }

  async close(): Promise<void> {
    await this.storage.close();
  }
}
