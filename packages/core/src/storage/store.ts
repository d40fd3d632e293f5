/**
 * What every store (file, sftp, http) can do with one location.
 *
 * Writes are atomic where the scheme allows: `openWrite` streams into a partial copy beside
 * the destination (`<name><partSuffix>`); `commit()` makes it durable and renames it over the
 * destination (replacing what was there), `abort()` removes it. Before the commit the bytes
 * are at `staged`, where a caller may read them back to verify them (firn-dh does). HTTP has
 * no rename: a PUT goes straight to the destination, `staged` is the destination itself, and
 * `abort()` after a completed PUT deletes it again.
 *
 * Errors are TransferError (worth a retry) or PermanentTransferError (not: a bad URL, refused
 * credentials or host key, a 4xx); MissingFileError when something to be read is not there.
 */
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checksumStream, type Checksums } from '../checksums';
import { MissingFileError } from '../errors';
import type { Location, LocationScheme } from './location';

/** Checksums a file is expected to have: md5 / sha256 / size, any subset (all absent = not checked). */
export interface ExpectedChecksums {
  md5?: string | null;
  sha256?: string | null;
  size?: number | null;
}

export interface ReadOptions {
  /** file:// only: refuse a symbolic link as the last path component (O_NOFOLLOW). */
  noFollow?: boolean;
  /**
   * file:// only: the file's real location (its parent directory resolved with realpath) must
   * lie under this directory, and the file must have no other hard link. For sources a job
   * could have written (site temp): a planted link to a secret is refused, not copied.
   */
  within?: string;
}

export interface WriteOptions {
  /** Suffix of the partial copy renamed into place by commit() (default `.part-<pid>`). */
  partSuffix?: string;
}

export interface WriteTarget {
  /** Write the bytes here. */
  readonly stream: Writable;
  /** Where the bytes are until commit(): the partial copy (http: the destination itself). */
  readonly staged: Location;
  /** Once `stream` has finished: resolves when what was written is stored (synced; http: the PUT answered 2xx). */
  written(): Promise<void>;
  /** written(), then the partial copy replaces the destination. */
  commit(): Promise<void>;
  /** Remove what was written (never throws). */
  abort(): Promise<void>;
}

export interface FileInfo {
  size: number;
}

export interface Store {
  readonly scheme: LocationScheme;
  /** Size of the regular file at `loc`; null when nothing (or no regular file) is there. */
  stat(loc: Location): Promise<FileInfo | null>;
  /** Open for reading; MissingFileError when there is nothing. */
  openRead(loc: Location, o?: ReadOptions): Promise<Readable>;
  /** Checksums of what is at `loc` (read whole); null when nothing is there. */
  checksum(loc: Location, o?: ReadOptions): Promise<Checksums | null>;
  /** Open for an atomic write (parent directories created). */
  openWrite(loc: Location, o?: WriteOptions): Promise<WriteTarget>;
  /** Remove `loc`; nothing there is fine. */
  remove(loc: Location): Promise<void>;
  /** Replace `to` with `from` (same store); null when the scheme has no rename (http). */
  readonly rename: ((from: Location, to: Location) => Promise<void>) | null;
  /** Drop cached connections for `loc` (after an error, so a retry reconnects). */
  reset(loc: Location): Promise<void>;
  close(): Promise<void>;
}

/** Checksums of what `open` reads; null when it finds nothing (MissingFileError). */
export async function checksumOrNull(open: () => Promise<Readable>): Promise<Checksums | null> {
  let s: Readable;
  try {
    s = await open();
  } catch (e) {
    if (e instanceof MissingFileError) return null;
    throw e;
  }
  return checksumStream(s);
}

/**
 * Stream `src` (through `via`, e.g. a checksum tap) into `loc` atomically. `check` runs once
 * the bytes are stored at `target.staged`, before the commit: when it throws (a checksum
 * mismatch), or anything else fails, the write is aborted, `src` destroyed, and the error
 * rethrown — the destination name never sees unchecked bytes.
 */
export async function writeChecked<T>(
  store: Store, loc: Location, src: Readable, o: WriteOptions & { via?: Transform },
  check: (target: WriteTarget) => Promise<T>,
): Promise<T> {
  let target: WriteTarget;
  try {
    target = await store.openWrite(loc, o);
  } catch (e) {
    src.destroy();
    throw e;
  }
  try {
    await (o.via ? pipeline(src, o.via, target.stream) : pipeline(src, target.stream));
    await target.written();
    const result = await check(target);
    await target.commit();
    return result;
  } catch (e) {
    src.destroy();
    await target.abort();
    throw e;
  }
}
