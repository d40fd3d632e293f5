/**
 * Local files. A write goes to `<name><partSuffix>` (created exclusively: a leftover part or
 * a link planted there is removed first, never followed), is fsync'd, then renamed over the
 * destination.
 *
 * Confined reads (`within`, `noFollow`): firn-dh reads pilots' staged outputs from site temp,
 * a directory jobs can write into. A job could leave a symbolic link at its output's path
 * pointing at a secret (/etc/firn/db.ini) and have dh deliver the secret somewhere the manager
 * can read. So the source is opened with O_NOFOLLOW (a link as the last component is refused),
 * the parent directory's real path must lie under `within` (links among the parents that lead
 * out are refused), the opened file must be the one found there (same device and inode,
 * checked after opening: a swap in between is caught) and have no other hard link. The check
 * runs on the open descriptor, which is what is then read.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Checksums } from '../checksums';
import { MissingFileError, PermanentTransferError, TransferError } from '../errors';
import type { Location } from './location';
import { checksumOrNull, type FileInfo, type ReadOptions, type Store, type WriteOptions, type WriteTarget } from './store';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

function filePath(loc: Location): string {
  if (loc.scheme !== 'file') throw new TransferError(`not a file location: ${loc.scheme}`);
  return loc.path;
}

function code(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

/** Is `p` (a real path) `root` or below it? */
function inside(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export class FileStore implements Store {
  readonly scheme = 'file' as const;

  async stat(loc: Location): Promise<FileInfo | null> {
    try {
      const st = await fs.promises.stat(filePath(loc));
      return st.isFile() ? { size: st.size } : null;
    } catch (e) {
      if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return null;
      throw new TransferError(`stat ${filePath(loc)}: ${(e as Error).message}`);
    }
  }

  async openRead(loc: Location, o: ReadOptions = {}): Promise<Readable> {
    const p = filePath(loc);
    const confined = o.within !== undefined;
    let fh: fs.promises.FileHandle;
    try {
      // O_NONBLOCK: a FIFO planted at the path must not hang the open
      fh = await fs.promises.open(p, O_RDONLY | O_NONBLOCK | (o.noFollow || confined ? O_NOFOLLOW : 0));
    } catch (e) {
      switch (code(e)) {
        case 'ENOENT':
        case 'ENOTDIR':
          throw new MissingFileError(`cannot read ${p}: it does not exist`);
        case 'ELOOP':
          throw new PermanentTransferError(`cannot read ${p}: it is a symbolic link (refused)`);
        case 'EACCES':
        case 'EPERM':
        case 'EISDIR':
          throw new PermanentTransferError(`cannot read ${p}: ${(e as Error).message}`);
        default:
          throw new TransferError(`cannot read ${p}: ${(e as Error).message}`);
      }
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new PermanentTransferError(`cannot read ${p}: not a regular file`);
      if (o.within !== undefined) await this.checkWithin(p, o.within, st);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e instanceof TransferError ? e : new TransferError(`cannot read ${p}: ${(e as Error).message}`);
    }
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  }

  /** The opened file (`opened`) is `p`, whose real parent lies under `root`, and has one link. */
  private async checkWithin(p: string, root: string, opened: fs.Stats): Promise<void> {
    let realRoot: string;
    let realParent: string;
    try {
      realRoot = await fs.promises.realpath(root);
      realParent = await fs.promises.realpath(path.dirname(p));
    } catch (e) {
      throw new PermanentTransferError(`cannot read ${p}: cannot resolve its directory or ${root}: ${(e as Error).message}`);
    }
    if (!inside(realParent, realRoot)) throw new PermanentTransferError(`cannot read ${p}: its directory resolves to ${realParent}, outside ${root} (refused)`);
    const there = await fs.promises.lstat(path.join(realParent, path.basename(p))).catch(() => null);
    if (!there || there.dev !== opened.dev || there.ino !== opened.ino) throw new PermanentTransferError(`cannot read ${p}: it changed while being opened (refused)`);
    if (opened.nlink > 1) throw new PermanentTransferError(`cannot read ${p}: it has ${opened.nlink} hard links (refused: it may be a link to a file outside ${root})`);
  }

  checksum(loc: Location, o?: ReadOptions): Promise<Checksums | null> {
    return checksumOrNull(() => this.openRead(loc, o));
  }

  async openWrite(loc: Location, o: WriteOptions = {}): Promise<WriteTarget> {
    const p = filePath(loc);
    const part = p + (o.partSuffix ?? `.part-${process.pid}`);
    let fd: number;
    try {
      await fs.promises.mkdir(path.dirname(p), { recursive: true });
      await fs.promises.rm(part, { force: true });
      fd = await new Promise<number>((resolve, reject) => fs.open(part, O_WRONLY | O_CREAT | O_EXCL, 0o666, (e, n) => (e ? reject(e) : resolve(n))));
    } catch (e) {
      const permanent = ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EISDIR'].includes(code(e) ?? '');
      const msg = `cannot write ${p}: ${(e as Error).message}`;
      throw permanent ? new PermanentTransferError(msg) : new TransferError(msg);
    }
    // A plain descriptor (not a FileHandle: its close() would wait for the stream forever),
    // synced and closed here once the stream has finished.
    const stream = fs.createWriteStream(part, { fd, autoClose: false, highWaterMark: 1 << 20 });
    let closed: Promise<void> | null = null;
    const closeFd = (sync: boolean) => (closed ??= new Promise<void>((resolve, reject) => {
      const close = (err: Error | null) => fs.close(fd, (e) => (err ?? e ? reject(new TransferError(`cannot write ${p}: ${(err ?? e)!.message}`)) : resolve()));
      if (sync) fs.fsync(fd, (e) => close(e));
      else close(null);
    }));
    return {
      stream,
      staged: { scheme: 'file', path: part },
      written: () => closeFd(true),
      async commit() {
        await closeFd(true);
        await fs.promises.rename(part, p);
      },
      async abort() {
        stream.destroy();
        await closeFd(false).catch(() => undefined);
        await fs.promises.rm(part, { force: true }).catch(() => undefined);
      },
    };
  }

  async remove(loc: Location): Promise<void> {
    await fs.promises.rm(filePath(loc), { force: true });
  }

  readonly rename = async (from: Location, to: Location): Promise<void> => {
    await fs.promises.rename(filePath(from), filePath(to));
  };

  async reset(): Promise<void> {}

  async close(): Promise<void> {}
}
