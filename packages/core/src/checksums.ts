import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Readable } from 'node:stream';

export interface Checksums {
  md5: string;
  sha256: string;
  size: number;
}

/** md5 + sha256 + size of a stream, in one pass. */
export function checksumStream(stream: Readable): Promise<Checksums> {
  return new Promise((resolve, reject) => {
    const md5 = crypto.createHash('md5');
    const sha = crypto.createHash('sha256');
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      md5.update(chunk);
      sha.update(chunk);
      size += chunk.length;
    });
    stream.on('error', reject);
    stream.on('end', () => resolve({ md5: md5.digest('hex'), sha256: sha.digest('hex'), size }));
  });
}

/** md5 + sha256 + size of a file, streamed (never loaded whole). */
export function checksumFile(file: string): Promise<Checksums> {
  return checksumStream(fs.createReadStream(file, { highWaterMark: 1 << 20 }));
}

export function checksumBuffer(data: Buffer | string): Checksums {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return {
    md5: crypto.createHash('md5').update(buf).digest('hex'),
    sha256: crypto.createHash('sha256').update(buf).digest('hex'),
    size: buf.length,
  };
}

/** Which of the expected checksums differ (empty when everything given matches). */
export function checksumMismatches(actual: Checksums, expected: { md5?: string | null; sha256?: string | null; size?: number | null }): string[] {
  const bad: string[] = [];
  if (expected.md5 && expected.md5.toLowerCase() !== actual.md5) bad.push(`md5 ${actual.md5} != expected ${expected.md5}`);
  if (expected.sha256 && expected.sha256.toLowerCase() !== actual.sha256) bad.push(`sha256 ${actual.sha256} != expected ${expected.sha256}`);
  if (expected.size != null && Number(expected.size) !== actual.size) bad.push(`size ${actual.size} != expected ${expected.size}`);
  return bad;
}

/** sha256 hex of a secret (tokens, passkeys are stored this way). */
export function sha256Hex(s: string): string {
  return crypto.createHash('sha256').update(s).digest('hex');
}

/** Constant-time comparison of two hex digests. */
export function digestEquals(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  if (x.length !== y.length || x.length === 0) {
    crypto.timingSafeEqual(x, x); // same work either way
    return false;
  }
  return crypto.timingSafeEqual(x, y);
}

/** A random URL-safe secret (tokens, passkeys). */
export function randomSecret(bytes = 32): string {
  return crypto.randomBytes(bytes).toString('base64url');
}
