/**
 * The node-local cache of metaproject tarballs. A cached copy is verified against the
 * dataset's checksum every time it is used; a corrupt (or truncated) copy is deleted and
 * downloaded again. Downloads land under a temporary name and are renamed into place, so
 * several pilots sharing one cache directory never see a half-written file.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, TransferError, checksumFile, checksumMismatches, type Checksums, type Logger } from './core-pure';
import { redactUrl, type ExpectedChecksums, type Stager } from './staging';

export interface MetaprojectSpec {
  name: string;
  url: string;
  /** `sha256:HEX`, `md5:HEX`, or a bare hex digest (32 chars = md5, 64 = sha256). */
  checksum?: string | { md5?: string; sha256?: string } | null;
  md5?: string | null;
  sha256?: string | null;
}

/** The checksums a metaproject declares, from any of the accepted spellings. */
export function parseChecksum(spec: Pick<MetaprojectSpec, 'checksum' | 'md5' | 'sha256'>): ExpectedChecksums {
  const out: ExpectedChecksums = {};
  if (spec.md5) out.md5 = spec.md5;
  if (spec.sha256) out.sha256 = spec.sha256;
  const c = spec.checksum;
  if (c && typeof c === 'object') {
    if (c.md5) out.md5 = c.md5;
    if (c.sha256) out.sha256 = c.sha256;
  } else if (typeof c === 'string' && c.trim()) {
    const m = /^(?:(md5|sha256)[:=])?([0-9a-fA-F]+)$/.exec(c.trim());
    if (!m) throw new ConfigError(`metaproject checksum ${JSON.stringify(c)} is not "sha256:HEX", "md5:HEX" or a hex digest`);
    const [, algo, hex = ''] = m;
    const kind = algo ?? (hex.length === 32 ? 'md5' : hex.length === 64 ? 'sha256' : null);
    if (kind === 'md5' && hex.length === 32) out.md5 = hex.toLowerCase();
    else if (kind === 'sha256' && hex.length === 64) out.sha256 = hex.toLowerCase();
    else throw new ConfigError(`metaproject checksum ${JSON.stringify(c)} has the wrong length for ${kind ?? 'md5 or sha256'}`);
  }
  return out;
}

export interface CacheResult {
  path: string;
  checksums: Checksums;
  /** False when a verified cached copy was used. */
  downloaded: boolean;
  /** True when a cached copy existed but failed verification. */
  corrupt: boolean;
}

export class MetaprojectCache {
  constructor(
    readonly dir: string,
    private readonly stager: Stager,
    private readonly logger?: Logger,
  ) {}

  /** Where the cached copy of `url` lives. */
  pathFor(url: string): string {
    const base = path.posix.basename(new URL(url, 'file:///').pathname) || 'metaproject';
    const h = crypto.createHash('sha256').update(url).digest('hex').slice(0, 16);
    return path.join(this.dir, `${h}-${base.replace(/[^A-Za-z0-9._-]/g, '_')}`);
  }

  /** A verified local copy of the metaproject tarball, downloading it when needed. */
  async fetch(spec: MetaprojectSpec): Promise<CacheResult> {
    const expected = parseChecksum(spec);
    const verifiable = Boolean(expected.md5 || expected.sha256);
    const file = this.pathFor(spec.url);
    await fs.promises.mkdir(this.dir, { recursive: true });
    let corrupt = false;
    if (fs.existsSync(file)) {
      if (verifiable) {
        const sums = await checksumFile(file);
        const bad = checksumMismatches(sums, expected);
        if (!bad.length) {
          this.logger?.info('metaproject from cache', { metaproject: spec.name, file });
          return { path: file, checksums: sums, downloaded: false, corrupt: false };
        }
        corrupt = true;
        this.logger?.warn('cached metaproject is corrupt; downloading it again', { metaproject: spec.name, file, mismatch: bad.join('; ') });
      } else {
        this.logger?.warn('metaproject has no checksum; the cached copy cannot be trusted, downloading again', { metaproject: spec.name });
      }
      await fs.promises.rm(file, { force: true });
    }
    this.logger?.info('downloading metaproject', { metaproject: spec.name, url: redactUrl(spec.url) });
    let sums: Checksums;
    try {
      sums = await this.stager.download(spec.url, file, expected);
    } catch (e) {
      throw new TransferError(`metaproject ${spec.name}: ${(e as Error).message}`);
    }
    return { path: file, checksums: sums, downloaded: true, corrupt };
  }
}

/** Unpack a (compressed) tar archive into `dest` with the system's tar (format auto-detected). */
export function unpackArchive(file: string, dest: string): Promise<void> {
  fs.mkdirSync(dest, { recursive: true });
  return new Promise((resolve, reject) => {
    execFile('tar', ['-xf', file, '-C', dest], { maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
      if (err) reject(new TransferError(`cannot unpack ${path.basename(file)}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}
