import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StorageRoots, checksumBuffer, TransferError } from '@firn/core';
import { PART_SUFFIX, Transfers, UnrecoverableTransferError, stagedSourceReadOptions } from './transfer';

let dir: string;
let transfers: Transfers;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-transfer-'));
  transfers = new Transfers({ retries: 2, retryDelayMs: 0 });
});
afterEach(async () => {
  await transfers.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function source(name: string, size = 300_000) {
  const data = crypto.randomBytes(size);
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return { url: pathToFileURL(p).href, path: p, data, sums: checksumBuffer(data) };
}

describe('file://', () => {
  test('copies, creating directories, and verifies at the destination', async () => {
    const s = source('a.dat');
    const dest = path.join(dir, 'out/deep/a.dat');
    const r = await transfers.copyVerified(s.url, pathToFileURL(dest).href, s.sums);
    expect(r).toMatchObject({ alreadyPresent: false, attempts: 1, checksums: s.sums });
    expect(fs.readFileSync(dest).equals(s.data)).toBe(true);
    expect(fs.existsSync(dest + PART_SUFFIX)).toBe(false);
  });

  test('a destination already holding the bytes is not copied again', async () => {
    const s = source('a.dat');
    const dest = path.join(dir, 'b.dat');
    fs.writeFileSync(dest, s.data);
    const before = fs.statSync(dest).mtimeMs;
    fs.rmSync(s.path); // the source may even be gone (temp already cleaned)
    const r = await transfers.copyVerified(s.url, pathToFileURL(dest).href, s.sums);
    expect(r.alreadyPresent).toBe(true);
    expect(fs.statSync(dest).mtimeMs).toBe(before);
  });

  test('a stale destination and a leftover part are replaced', async () => {
    const s = source('a.dat');
    const dest = path.join(dir, 'b.dat');
    fs.writeFileSync(dest, 'old');
    fs.writeFileSync(dest + PART_SUFFIX, 'half a copy');
    await transfers.copyVerified(s.url, dest, s.sums);
    expect(fs.readFileSync(dest).equals(s.data)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['a.dat', 'b.dat']);
  });

  test('without expected checksums the source is the reference', async () => {
    const s = source('a.dat');
    const r = await transfers.copyVerified(s.url, path.join(dir, 'c.dat'), {});
    expect(r.checksums).toEqual(s.sums);
  });

  test('a checksum mismatch is retried, then fails, and nothing is left at the destination', async () => {
    const s = source('a.dat');
    const dest = path.join(dir, 'bad.dat');
    const err = await transfers.copyVerified(s.url, dest, { ...s.sums, sha256: '0'.repeat(64) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransferError);
    expect((err as Error).message).toMatch(/checksum mismatch at destination .*sha256 .* != expected 0{64}.*after 3 attempts/);
    expect(fs.existsSync(dest)).toBe(false);
    expect(fs.existsSync(dest + PART_SUFFIX)).toBe(false);
  });

  test('a missing source is not retried', async () => {
    const t0 = Date.now();
    const err = await transfers.copyVerified(pathToFileURL(path.join(dir, 'nope')).href, path.join(dir, 'x'), { md5: 'a'.repeat(32) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnrecoverableTransferError);
    expect((err as Error).message).toMatch(/does not exist/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test('verify in place and remove', async () => {
    const s = source('a.dat');
    await expect(transfers.verify(s.url, s.sums)).resolves.toMatchObject({ checksums: s.sums });
    await expect(transfers.verify(s.url, { md5: '0'.repeat(32) })).rejects.toThrow(/checksum mismatch/);
    await transfers.remove(s.url);
    await transfers.remove(s.url); // missing is fine
    expect(fs.existsSync(s.path)).toBe(false);
  });

  test('a staged copy that is a symbolic link to a secret is refused, not copied', async () => {
    const temp = path.join(dir, 'site-temp');
    fs.mkdirSync(path.join(temp, '7/3'), { recursive: true });
    const secret = path.join(dir, 'db.ini');
    fs.writeFileSync(secret, 'password = hunter2\n');
    const planted = path.join(temp, '7/3/out.dat');
    fs.symlinkSync(secret, planted);
    const roots = new StorageRoots({ siteTemp: pathToFileURL(temp).href, destinations: [pathToFileURL(path.join(dir, 'dest')).href] });
    const dest = path.join(dir, 'dest/out.dat');
    const t0 = Date.now();
    const err = await transfers.copyVerified(pathToFileURL(planted).href, pathToFileURL(dest).href, {}, stagedSourceReadOptions(pathToFileURL(planted).href, roots)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnrecoverableTransferError);
    expect((err as Error).message).toMatch(/symbolic link \(refused\)/);
    expect(Date.now() - t0).toBeLessThan(5000); // not retried
    expect(fs.existsSync(path.join(dir, 'dest'))).toBe(false);
    // a directory link leading out of site temp likewise
    fs.symlinkSync(dir, path.join(temp, '7/3/up'));
    const through = pathToFileURL(path.join(temp, '7/3/up/db.ini')).href;
    await expect(transfers.copyVerified(through, pathToFileURL(dest).href, {}, stagedSourceReadOptions(through, roots))).rejects.toThrow(/outside .* \(refused\)/);
    expect(fs.existsSync(path.join(dir, 'dest'))).toBe(false);
    // and the real file beside them is copied
    const real = path.join(temp, '7/3/real.dat');
    fs.writeFileSync(real, 'fine');
    await transfers.copyVerified(pathToFileURL(real).href, pathToFileURL(dest).href, {}, stagedSourceReadOptions(pathToFileURL(real).href, roots));
    expect(fs.readFileSync(dest, 'utf8')).toBe('fine');
  });

  test('unsupported schemes are refused', async () => {
    await expect(transfers.copyVerified('gsiftp://x/y', path.join(dir, 'z'))).rejects.toThrow(/unsupported URL scheme/);
  });
});

describe('http(s)://', () => {
  let server: http.Server;
  let base: string;
  const store = new Map<string, Buffer>();
  const seen: string[] = [];
  let corruptPuts = 0;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const key = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
      seen.push(`${req.method} ${key} ${req.headers.authorization ?? ''}`);
      if (req.method === 'GET') {
        const b = store.get(key);
        if (!b) return void res.writeHead(404).end();
        return void res.writeHead(200, { 'content-length': b.length }).end(b);
      }
      if (req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks);
          if (corruptPuts > 0) {
            corruptPuts--;
            body[0] = body[0]! ^ 0xff;
          }
          store.set(key, body);
          res.writeHead(201).end();
        });
        return;
      }
      if (req.method === 'DELETE') {
        const had = store.delete(key);
        return void res.writeHead(had ? 204 : 404).end();
      }
      res.writeHead(405).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('GET a source, PUT a destination, read back and verified; credentials as Basic auth', async () => {
    const s = source('h.dat');
    store.set('/src/h.dat', s.data);
    const r = await transfers.copyVerified(`${base}/src/h.dat`, `http://u:secret@127.0.0.1:${new URL(base).port}/dst/h.dat`, s.sums);
    expect(r.alreadyPresent).toBe(false);
    expect(store.get('/dst/h.dat')?.equals(s.data)).toBe(true);
    expect(seen.filter((l) => l.startsWith('PUT'))).toEqual([`PUT /dst/h.dat Basic ${Buffer.from('u:secret').toString('base64')}`]);
    // idempotent: present → nothing is PUT again
    await transfers.copyVerified(`${base}/src/h.dat`, `${base}/dst/h.dat`, s.sums);
    expect(seen.filter((l) => l.startsWith('PUT'))).toHaveLength(1);
  });

  test('a corrupted upload is detected at the destination, retried, and succeeds', async () => {
    const s = source('c.dat', 1000);
    corruptPuts = 1;
    const r = await transfers.copyVerified(s.url, `${base}/dst/c.dat`, s.sums);
    expect(r.attempts).toBe(2);
    expect(store.get('/dst/c.dat')?.equals(s.data)).toBe(true);
  });

  test('a 404 source fails without retries; DELETE removes', async () => {
    await expect(transfers.copyVerified(`${base}/missing`, path.join(dir, 'm'), { md5: 'a'.repeat(32) })).rejects.toThrow(UnrecoverableTransferError);
    store.set('/gone', Buffer.from('x'));
    await transfers.remove(`${base}/gone`);
    await transfers.remove(`${base}/gone`);
    expect(store.has('/gone')).toBe(false);
  });
});
