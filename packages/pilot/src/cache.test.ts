import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MetaprojectCache, parseChecksum, unpackArchive } from './cache';
import { checksumFile } from './core-pure';
import { Stager } from './staging';
import { HttpFileServer } from '../../../test/pilot/http-file-server';

let dir: string;
let web: HttpFileServer;
let stager: Stager;
let tarball: string;
let sums: { md5: string; sha256: string; size: number };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-cache-'));
  const src = path.join(dir, 'src', 'bin');
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, 'hello'), '#!/bin/sh\necho hello from the metaproject\n', { mode: 0o755 });
  fs.mkdirSync(path.join(dir, 'www'));
  tarball = path.join(dir, 'www', 'mp.tar.gz');
  execFileSync('tar', ['-czf', tarball, '-C', path.join(dir, 'src'), 'bin']);
  sums = await checksumFile(tarball);
  web = await new HttpFileServer(path.join(dir, 'www')).listen();
  stager = new Stager({ attempts: 2, retryDelayMs: 10 });
});
afterAll(async () => {
  await stager.close();
  await web.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('parseChecksum', () => {
  it('accepts {md5, sha256}, "sha256:HEX", "md5:HEX" and bare digests', () => {
    expect(parseChecksum({ checksum: { sha256: 'a'.repeat(64) } })).toEqual({ sha256: 'a'.repeat(64) });
    expect(parseChecksum({ checksum: `sha256:${'B'.repeat(64)}` })).toEqual({ sha256: 'b'.repeat(64) });
    expect(parseChecksum({ checksum: `md5:${'c'.repeat(32)}` })).toEqual({ md5: 'c'.repeat(32) });
    expect(parseChecksum({ checksum: 'd'.repeat(32) })).toEqual({ md5: 'd'.repeat(32) });
    expect(parseChecksum({ checksum: null })).toEqual({});
    expect(() => parseChecksum({ checksum: 'sha256:abc' })).toThrow(/wrong length/);
    expect(() => parseChecksum({ checksum: 'not hex!' })).toThrow(/not "sha256:HEX"/);
  });
});

describe('MetaprojectCache', () => {
  it('downloads once, then serves the verified cached copy', async () => {
    const cache = new MetaprojectCache(path.join(dir, 'cache1'), stager);
    const spec = { name: 'mp', url: `${web.url}/mp.tar.gz`, checksum: { sha256: sums.sha256 } };
    const first = await cache.fetch(spec);
    expect(first).toMatchObject({ downloaded: true, corrupt: false });
    expect(first.checksums.sha256).toBe(sums.sha256);
    const second = await cache.fetch(spec);
    expect(second).toMatchObject({ downloaded: false, corrupt: false, path: first.path });
    expect(web.hits.get('/mp.tar.gz')).toBe(1);
  });

  it('detects a corrupted cached metaproject and downloads it again', async () => {
    const cache = new MetaprojectCache(path.join(dir, 'cache2'), stager);
    const spec = { name: 'mp', url: `${web.url}/mp.tar.gz`, checksum: { md5: sums.md5, sha256: sums.sha256 } };
    const hits0 = web.hits.get('/mp.tar.gz') ?? 0;
    const first = await cache.fetch(spec);
    // Corrupt the cached copy: flip bytes in the middle (same size, so only the digest can tell).
    const buf = fs.readFileSync(first.path);
    const mid = Math.floor(buf.length / 2);
    buf[mid] = (buf[mid] as number) ^ 0xff;
    fs.writeFileSync(first.path, buf);
    expect((await checksumFile(first.path)).sha256).not.toBe(sums.sha256);

    const again = await cache.fetch(spec);
    expect(again).toMatchObject({ downloaded: true, corrupt: true, path: first.path });
    expect(web.hits.get('/mp.tar.gz')).toBe(hits0 + 2);
    expect(await checksumFile(first.path)).toEqual(sums);
    // and it unpacks into a working tree
    const into = path.join(dir, 'unpacked');
    await unpackArchive(again.path, into);
    expect(execFileSync(path.join(into, 'bin', 'hello'), { encoding: 'utf8' })).toBe('hello from the metaproject\n');
  });

  it('re-downloads a truncated cached copy', async () => {
    const cache = new MetaprojectCache(path.join(dir, 'cache3'), stager);
    const spec = { name: 'mp', url: `${web.url}/mp.tar.gz`, checksum: { sha256: sums.sha256 } };
    const first = await cache.fetch(spec);
    fs.truncateSync(first.path, 10);
    expect(await cache.fetch(spec)).toMatchObject({ downloaded: true, corrupt: true });
    expect(fs.statSync(first.path).size).toBe(sums.size);
  });

  it('fails when the source itself does not match the checksum, leaving no cached copy', async () => {
    const cache = new MetaprojectCache(path.join(dir, 'cache4'), stager);
    const spec = { name: 'mp', url: `${web.url}/mp.tar.gz`, checksum: { sha256: 'e'.repeat(64) } };
    await expect(cache.fetch(spec)).rejects.toThrow(/metaproject mp: checksum mismatch/);
    expect(fs.existsSync(cache.pathFor(spec.url))).toBe(false);
  });

  it('never trusts a cached copy without a checksum', async () => {
    const cache = new MetaprojectCache(path.join(dir, 'cache5'), stager);
    const spec = { name: 'mp', url: `${web.url}/redirect/mp.tar.gz` };
    const hits0 = web.hits.get('/mp.tar.gz') ?? 0;
    await cache.fetch(spec);
    expect(await cache.fetch(spec)).toMatchObject({ downloaded: true });
    expect(web.hits.get('/mp.tar.gz')).toBe(hits0 + 2);
  });
});
