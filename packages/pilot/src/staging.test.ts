import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { checksumBuffer } from './core-pure';
import { PermanentTransferError, Stager, joinUrl, urlScheme } from './staging';
import { missingService } from '../../../test/helpers/db';
import { HttpFileServer, portOpen, sshEnv } from '../../../test/pilot/http-file-server';

let dir: string;
let web: HttpFileServer;
let stager: Stager;
const content = crypto.randomBytes(300_000);
const sums = checksumBuffer(content);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-staging-'));
  fs.mkdirSync(path.join(dir, 'www'));
  fs.writeFileSync(path.join(dir, 'www', 'data.bin'), content);
  web = await new HttpFileServer(path.join(dir, 'www')).listen();
});
afterAll(async () => {
  await web.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  stager = new Stager({ attempts: 3, retryDelayMs: 20 });
});
afterEach(async () => {
  await stager.close();
});

describe('joinUrl / urlScheme', () => {
  it('joins with encoded segments and refuses ..', () => {
    expect(joinUrl('file:///tmp/site/', 7, '3', 'my task', 'out/a#b.txt')).toBe('file:///tmp/site/7/3/my%20task/out/a%23b.txt');
    expect(() => joinUrl('file:///x', '../etc/passwd')).toThrow(/\.\./);
  });
  it('knows file, http(s), sftp and plain paths; refuses other schemes', () => {
    expect(urlScheme('file:///a')).toBe('file');
    expect(urlScheme('relative/path')).toBe('file');
    expect(urlScheme('https://x/y')).toBe('http');
    expect(urlScheme('sftp://u@h/p')).toBe('sftp');
    expect(() => urlScheme('gsiftp://h/p')).toThrow(PermanentTransferError);
  });
});

describe('file://', () => {
  it('downloads with checksums verified and copies to a new directory', async () => {
    const dest = path.join(dir, 'f1', 'copy.bin');
    const got = await stager.download(pathToFileURL(path.join(dir, 'www', 'data.bin')).href, dest, { sha256: sums.sha256, md5: sums.md5 });
    expect(got).toEqual(sums);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
    const up = pathToFileURL(path.join(dir, 'f2', 'deep', 'x.bin')).href;
    expect(await stager.upload(dest, up)).toEqual(sums);
    expect(fs.readFileSync(path.join(dir, 'f2', 'deep', 'x.bin')).equals(content)).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'f2', 'deep'))).toEqual(['x.bin']); // no .part left
  });
  it('refuses a file whose checksum differs and leaves nothing behind', async () => {
    const dest = path.join(dir, 'f3', 'bad.bin');
    await expect(stager.download(path.join(dir, 'www', 'data.bin'), dest, { sha256: '0'.repeat(64) })).rejects.toThrow(/checksum mismatch.*sha256/);
    expect(fs.existsSync(dest)).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'f3'))).toEqual([]);
  });
  it('fails at once for a missing source', async () => {
    const t0 = Date.now();
    await expect(stager.download(path.join(dir, 'nope'), path.join(dir, 'x'))).rejects.toThrow(/cannot read/);
    expect(Date.now() - t0).toBeLessThan(500);
  });
});

describe('http://', () => {
  it('downloads, following a redirect, with checksums', async () => {
    const dest = path.join(dir, 'h1', 'data.bin');
    expect(await stager.download(`${web.url}/redirect/data.bin`, dest, sums)).toEqual(sums);
    expect(fs.readFileSync(dest).equals(content)).toBe(true);
  });
  it('retries a server error and succeeds', async () => {
    web.flaky = 2;
    const dest = path.join(dir, 'h2', 'data.bin');
    expect(await stager.download(`${web.url}/flaky/data.bin`, dest, { md5: sums.md5 })).toEqual(sums);
    expect(web.flaky).toBe(0);
  });
  it('does not retry a 404', async () => {
    const before = web.hits.get('/missing.bin') ?? 0;
    await expect(stager.download(`${web.url}/missing.bin`, path.join(dir, 'h3'))).rejects.toThrow(/HTTP 404/);
    expect(web.hits.get('/missing.bin')).toBe(before + 1);
  });
  it('uploads with PUT and verifies by reading back', async () => {
    expect(await stager.upload(path.join(dir, 'www', 'data.bin'), `${web.url}/up/put.bin`)).toEqual(sums);
    expect(fs.readFileSync(path.join(dir, 'www', 'up', 'put.bin')).equals(content)).toBe(true);
  });
});

describe('sftp:// (real sshd)', () => {
  const env = sshEnv();
  let available = false;
  beforeAll(async () => {
    available = Boolean(env.SSH_KEY) && (await portOpen(env.SSH_HOST ?? '127.0.0.1', Number(env.SSH_PORT ?? 2222)));
    if (!available) missingService('sshd', 'bash test/services/start-sshd.sh');
  });
  const remoteDir = `/tmp/firn-pilot-sftp-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  afterAll(() => {
    fs.rmSync(remoteDir, { recursive: true, force: true }); // the sshd is on this machine
  });

  it('uploads (creating directories), downloads and copies with checksums', async () => {
    if (!available) return;
    const s = new Stager({ sftp: { privateKeyPath: env.SSH_KEY as string, knownHostsFile: env.SSH_KNOWN_HOSTS as string } });
    try {
      const base = `sftp://${env.SSH_USER}@${env.SSH_HOST}:${env.SSH_PORT}${remoteDir}`;
      expect(await s.upload(path.join(dir, 'www', 'data.bin'), `${base}/a/b/up.bin`)).toEqual(sums);
      const dest = path.join(dir, 's1', 'down.bin');
      expect(await s.download(`${base}/a/b/up.bin`, dest, sums)).toEqual(sums);
      expect(fs.readFileSync(dest).equals(content)).toBe(true);
      // overwrite an existing remote file
      expect(await s.copy(`${base}/a/b/up.bin`, `${base}/a/b/up.bin.copy`, sums)).toEqual(sums);
      expect(await s.copy(`${base}/a/b/up.bin`, `${base}/a/b/up.bin.copy`)).toEqual(sums);
      expect(fs.readFileSync(path.join(remoteDir, 'a', 'b', 'up.bin.copy')).equals(content)).toBe(true);
      expect(fs.readdirSync(path.join(remoteDir, 'a', 'b')).sort()).toEqual(['up.bin', 'up.bin.copy']);
      await expect(s.download(`${base}/nope.bin`, path.join(dir, 's2'))).rejects.toThrow(/cannot read/);
    } finally {
      await s.close();
    }
  });

  it('refuses a host whose key is not the known one', async () => {
    if (!available) return;
    const kh = path.join(dir, 'known_hosts');
    fs.writeFileSync(kh, `[${env.SSH_HOST}]:${env.SSH_PORT} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
    const s = new Stager({ attempts: 1, sftp: { privateKeyPath: env.SSH_KEY as string, knownHostsFile: kh } });
    try {
      await expect(s.upload(path.join(dir, 'www', 'data.bin'), `sftp://${env.SSH_USER}@${env.SSH_HOST}:${env.SSH_PORT}${remoteDir}/x.bin`)).rejects.toThrow(/sftp/);
      expect(fs.existsSync(path.join(remoteDir, 'x.bin'))).toBe(false);
    } finally {
      await s.close();
    }
  });
});
