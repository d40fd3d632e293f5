/**
 * The storage layer against the real thing: local files (with real symbolic and hard links),
 * node http / https servers on loopback, and the real sshd on 127.0.0.1:2222
 * (/etc/firn-test/services.env).
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checksumBuffer, checksumStream } from '../checksums';
import { MissingFileError, PermanentTransferError, TransferError } from '../errors';
import { Storage, parseLocation, redactUrl, retryTransfer, type Location } from './index';

let dir: string;
let storage: Storage;
const data = crypto.randomBytes(200_000);
const sums = checksumBuffer(data);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-storage-'));
  storage = new Storage({ http: { timeoutMs: 5000 } });
});
afterEach(async () => {
  await storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function writeAll(loc: Location, body: Buffer, commit = true) {
  const t = await storage.store(loc).openWrite(loc);
  await pipeline([body], t.stream);
  if (commit) await t.commit();
  return t;
}

describe('parseLocation', () => {
  test('file, absolute and relative paths, sftp with user, password and port, http(s)', () => {
    expect(parseLocation('/data/x')).toEqual({ scheme: 'file', path: '/data/x' });
    expect(parseLocation('file:///data/a%20b')).toEqual({ scheme: 'file', path: '/data/a b' });
    expect(parseLocation('out/x', { relativeTo: '/scratch' })).toEqual({ scheme: 'file', path: '/scratch/out/x' });
    expect(() => parseLocation('out/x')).toThrow(PermanentTransferError);
    expect(parseLocation('sftp://site:pw@h.example:2222/d/x')).toEqual({ scheme: 'sftp', host: 'h.example', port: 2222, username: 'site', password: 'pw', path: '/d/x' });
    expect(parseLocation('sftp://h/~/x')).toEqual({ scheme: 'sftp', host: 'h', port: 22, path: 'x' });
    expect(() => parseLocation('sftp://h/')).toThrow(/needs a host and a path/);
    expect(parseLocation('https://u:p@h/x')).toMatchObject({ scheme: 'http' });
    expect(() => parseLocation('gsiftp://h/x')).toThrow(/unsupported URL scheme/);
  });
  test('messages never hold a password', () => {
    expect(redactUrl('sftp://u:s3cret@h/x and https://a:b%40c@h/y')).toBe('sftp://u:[REDACTED]@h/x and https://a:[REDACTED]@h/y');
    let msg = '';
    try {
      parseLocation('s3://u:s3cret@h/x');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/unsupported/);
    expect(msg).not.toContain('s3cret');
  });
});

describe('file store', () => {
  test('reads, writes atomically (nothing at the name before commit, no part after), removes', async () => {
    const dest = parseLocation(path.join(dir, 'a/b/x.dat'));
    fs.mkdirSync(path.join(dir, 'a/b'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a/b/x.dat'), 'old');
    const t = await writeAll(dest, data, false);
    expect(fs.readFileSync(path.join(dir, 'a/b/x.dat'), 'utf8')).toBe('old'); // not yet
    await t.commit();
    expect(fs.readFileSync(path.join(dir, 'a/b/x.dat')).equals(data)).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'a/b'))).toEqual(['x.dat']);
    expect(await readAll(await storage.file.openRead(dest))).toEqual(data);
    expect(await storage.file.checksum(dest)).toEqual(sums);
    expect(await storage.file.stat(dest)).toEqual({ size: data.length });
    await storage.file.remove(dest);
    await storage.file.remove(dest);
    expect(await storage.file.stat(dest)).toBeNull();
    await expect(storage.file.openRead(dest)).rejects.toThrow(MissingFileError);
  });

  test('abort leaves nothing; a link planted at the part name is replaced, not followed', async () => {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'keep');
    const dest = path.join(dir, 'y.dat');
    fs.symlinkSync(victim, `${dest}.firn-part`);
    const loc = parseLocation(dest);
    const t = await storage.file.openWrite(loc, { partSuffix: '.firn-part' });
    await pipeline([data], t.stream);
    await t.abort();
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep');
    expect(fs.readdirSync(dir)).toEqual(['victim']);
  });

  describe('confined reads (firn-dh reading site temp)', () => {
    let temp: string;
    let secret: string;
    beforeEach(() => {
      temp = path.join(dir, 'site-temp');
      fs.mkdirSync(path.join(temp, '7/3'), { recursive: true });
      secret = path.join(dir, 'db.ini');
      fs.writeFileSync(secret, 'password = hunter2\n');
    });

    test('a regular file under the root is read', async () => {
      fs.writeFileSync(path.join(temp, '7/3/out.dat'), data);
      const s = await storage.file.openRead(parseLocation(path.join(temp, '7/3/out.dat')), { noFollow: true, within: temp });
      expect(await checksumStream(s)).toEqual(sums);
    });

    test('a symbolic link at the output path is refused', async () => {
      fs.symlinkSync(secret, path.join(temp, '7/3/out.dat'));
      const loc = parseLocation(path.join(temp, '7/3/out.dat'));
      await expect(storage.file.openRead(loc, { noFollow: true, within: temp })).rejects.toThrow(/symbolic link \(refused\)/);
      await expect(storage.file.checksum(loc, { noFollow: true })).rejects.toThrow(PermanentTransferError);
      // unconfined it would have been read: the test would catch a store that ignores the option
      expect((await readAll(await storage.file.openRead(loc))).toString()).toContain('hunter2');
    });

    test('a symbolic link among the parents leading out of the root is refused', async () => {
      fs.symlinkSync(dir, path.join(temp, '7/3/up'));
      const loc = parseLocation(path.join(temp, '7/3/up/db.ini'));
      await expect(storage.file.openRead(loc, { noFollow: true, within: temp })).rejects.toThrow(/outside .* \(refused\)/);
    });

    test('a hard link to a file outside is refused', async () => {
      fs.linkSync(secret, path.join(temp, '7/3/out.dat'));
      await expect(storage.file.openRead(parseLocation(path.join(temp, '7/3/out.dat')), { within: temp })).rejects.toThrow(/hard links \(refused/);
    });

    test('a FIFO planted at the output path is refused, without hanging', async () => {
      execFileSync('mkfifo', [path.join(temp, '7/3/out.dat')]);
      await expect(storage.file.openRead(parseLocation(path.join(temp, '7/3/out.dat')), { noFollow: true, within: temp })).rejects.toThrow(/not a regular file/);
    });
  });
});

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function selfSigned(into: string): { key: Buffer; cert: Buffer } {
  const key = path.join(into, 'key.pem');
  const cert = path.join(into, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}

describe('http store (node http and https servers on loopback)', () => {
  const files = new Map<string, Buffer>();
  const seen: string[] = [];
  let plain: http.Server;
  let secure: https.Server;
  let httpBase: string;
  let httpsBase: string;
  let cert: Buffer;
  let certDir: string;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    seen.push(`${req.method} ${p} ${req.headers.authorization ?? '-'}`);
    if (p.startsWith('/to-http/')) return void res.writeHead(302, { location: `${httpBase}/${p.slice('/to-http/'.length)}` }).end();
    if (p.startsWith('/to-https/')) return void res.writeHead(301, { location: `${httpsBase}/${p.slice('/to-https/'.length)}` }).end();
    if (p === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
    if (req.method === 'GET') {
      const b = files.get(p);
      return void (b ? res.writeHead(200, { 'content-length': b.length }).end(b) : res.writeHead(404).end());
    }
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        files.set(p, Buffer.concat(chunks));
        res.writeHead(201).end();
      });
      return;
    }
    if (req.method === 'DELETE') return void res.writeHead(files.delete(p) ? 204 : 404).end();
    res.writeHead(405).end();
  };
  beforeAll(async () => {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-storage-tls-'));
    const tlsFiles = selfSigned(certDir);
    cert = tlsFiles.cert;
    plain = http.createServer(handler);
    secure = https.createServer(tlsFiles, handler);
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
    httpBase = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
    httpsBase = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    plain.closeAllConnections();
    secure.closeAllConnections();
    await new Promise<void>((r) => plain.close(() => r()));
    await new Promise<void>((r) => secure.close(() => r()));
    fs.rmSync(certDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    files.clear();
    seen.length = 0;
    storage = new Storage({ http: { timeoutMs: 5000, ca: cert } });
  });

  test('PUT writes (credentials as Basic auth), GET reads, DELETE removes', async () => {
    const loc = parseLocation(`http://u:secret@127.0.0.1:${new URL(httpBase).port}/d/x.dat`);
    await writeAll(loc, data);
    expect(files.get('/d/x.dat')?.equals(data)).toBe(true);
    expect(seen).toEqual([`PUT /d/x.dat Basic ${Buffer.from('u:secret').toString('base64')}`]);
    expect(await storage.http.checksum(loc)).toEqual(sums);
    await storage.http.remove(loc);
    await storage.http.remove(loc);
    expect(files.has('/d/x.dat')).toBe(false);
    expect(await storage.http.checksum(loc)).toBeNull();
    await expect(storage.http.openRead(loc)).rejects.toThrow(MissingFileError);
  });

  test('abort after a completed PUT deletes the upload again', async () => {
    const loc = parseLocation(`${httpBase}/d/bad.dat`);
    const t = await writeAll(loc, data, false);
    await t.written();
    expect(files.has('/d/bad.dat')).toBe(true);
    await t.abort();
    expect(files.has('/d/bad.dat')).toBe(false);
  });

  test('https → http redirect is refused; http → https is followed; more than 5 redirects fail', async () => {
    files.set('/x.dat', data);
    const down = storage.http.openRead(parseLocation(`${httpsBase}/to-http/x.dat`));
    await expect(down).rejects.toThrow(PermanentTransferError);
    await expect(storage.http.openRead(parseLocation(`${httpsBase}/to-http/x.dat`))).rejects.toThrow(/redirect to http:.* refused/);
    expect(seen.filter((l) => l.startsWith('GET /x.dat'))).toEqual([]); // the plain-http location was never asked
    expect(await checksumStream(await storage.http.openRead(parseLocation(`${httpBase}/to-https/x.dat`)))).toEqual(sums);
    await expect(storage.http.openRead(parseLocation(`${httpBase}/loop`))).rejects.toThrow(/more than 5 redirects/);
    expect(seen.filter((l) => l.startsWith('GET /loop'))).toHaveLength(6);
  });

  test('credentials are not sent to another origin on a redirect', async () => {
    files.set('/x.dat', data);
    const port = new URL(httpBase).port;
    await checksumStream(await storage.http.openRead(parseLocation(`http://u:pw@127.0.0.1:${port}/to-https/x.dat`)));
    expect(seen).toEqual([`GET /to-https/x.dat Basic ${Buffer.from('u:pw').toString('base64')}`, 'GET /x.dat -']);
  });

  test('a body over the size cap is refused', async () => {
    files.set('/big.dat', data);
    const capped = new Storage({ http: { maxBytes: 1000 } });
    try {
      await expect(capped.http.openRead(parseLocation(`${httpBase}/big.dat`))).rejects.toThrow(/more than the 1000 allowed/);
    } finally {
      await capped.close();
    }
  });

  test('a server that never answers times out (a TransferError, worth a retry)', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const quick = new Storage({ http: { timeoutMs: 300 } });
    try {
      const err = await quick.http.openRead(parseLocation(`http://127.0.0.1:${(silent.address() as AddressInfo).port}/x`)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransferError);
      expect(err).not.toBeInstanceOf(PermanentTransferError);
      expect((err as Error).message).toMatch(/timed out/);
    } finally {
      await quick.close();
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('retryTransfer', () => {
  test('retries a TransferError, stops at a permanent one, names the attempts', async () => {
    let n = 0;
    await expect(retryTransfer('x', { attempts: 3, baseDelayMs: 0 }, async () => {
      n++;
      throw new TransferError('flaky');
    })).rejects.toThrow('flaky (after 3 attempts)');
    expect(n).toBe(3);
    n = 0;
    await expect(retryTransfer('x', { attempts: 3, baseDelayMs: 0 }, async () => {
      n++;
      throw new PermanentTransferError('gone');
    })).rejects.toThrow(PermanentTransferError);
    expect(n).toBe(1);
  });
});

function servicesEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of fs.readFileSync('/etc/firn-test/services.env', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) out[m[1]!] = m[2]!;
    }
  } catch {
    // no services
  }
  return out;
}

describe('sftp store (the real sshd)', () => {
  const env = servicesEnv();
  const available = env.SSH_AVAILABLE === 'yes' && Boolean(env.SSH_KEY);
  let remote: string;
  beforeEach(() => {
    if (!available) return;
    remote = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-storage-sftp-'));
    fs.chownSync(remote, Number(execFileSync('id', ['-u', env.SSH_USER!]).toString()), Number(execFileSync('id', ['-g', env.SSH_USER!]).toString()));
    storage = new Storage({ sftp: { privateKeyPath: env.SSH_KEY!, knownHostsFile: env.SSH_KNOWN_HOSTS! } });
  });
  afterEach(() => {
    if (available) fs.rmSync(remote, { recursive: true, force: true });
  });
  const at = (p: string) => parseLocation(`sftp://${env.SSH_USER}@${env.SSH_HOST}:${env.SSH_PORT}${p}`);

  test('writes atomically (creating directories), reads, renames over, removes', async () => {
    if (!available) return console.warn('sshd not available: skipped');
    const loc = at(path.join(remote, 'a/b/x.dat'));
    const t = await writeAll(loc, data, false);
    await t.written();
    expect(fs.existsSync(path.join(remote, 'a/b/x.dat'))).toBe(false); // not before commit
    await t.commit();
    expect(fs.readFileSync(path.join(remote, 'a/b/x.dat')).equals(data)).toBe(true);
    expect(fs.statSync(path.join(remote, 'a/b/x.dat')).uid).toBe(fs.statSync(remote).uid); // written by the ssh account
    expect(fs.readdirSync(path.join(remote, 'a/b'))).toEqual(['x.dat']);
    expect(await checksumStream(await storage.sftp.openRead(loc))).toEqual(sums);
    expect(await storage.sftp.stat(loc)).toEqual({ size: data.length });
    await writeAll(loc, Buffer.from('second')); // replaces
    expect(fs.readFileSync(path.join(remote, 'a/b/x.dat'), 'utf8')).toBe('second');
    await storage.sftp.remove(loc);
    await storage.sftp.remove(loc);
    expect(fs.existsSync(path.join(remote, 'a/b/x.dat'))).toBe(false);
    await expect(storage.sftp.openRead(loc)).rejects.toThrow(MissingFileError);
    expect(await storage.sftp.checksum(loc)).toBeNull();
  });

  test('a host key known_hosts does not list is refused, permanently, and nothing is written', async () => {
    if (!available) return console.warn('sshd not available: skipped');
    const kh = path.join(dir, 'known_hosts');
    fs.writeFileSync(kh, `[${env.SSH_HOST}]:${env.SSH_PORT} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
    const other = new Storage({ sftp: { privateKeyPath: env.SSH_KEY!, knownHostsFile: kh } });
    try {
      await expect(other.sftp.openWrite(at(path.join(remote, 'x.dat')))).rejects.toThrow(/presented a key that .* does not list/);
      await expect(other.sftp.openWrite(at(path.join(remote, 'x.dat')))).rejects.toThrow(PermanentTransferError);
      expect(fs.readdirSync(remote)).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
