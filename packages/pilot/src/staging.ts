/**
 * Moving files in and out of the worker node: file://, plain paths, http(s):// and sftp://
 * (ssh2). Every transfer is streamed through md5 + sha256; a download is checked against
 * the expected checksums before it is renamed into place, an upload is read back from its
 * destination and checked. Transient failures are retried with backoff.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { PassThrough, Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Client, ConnectConfig, SFTPWrapper } from 'ssh2';
import { TransferError, checksumMismatches, checksumStream, coerceError, hostKeyCheck, joinUrl as coreJoinUrl, type Checksums, type HostKeyCheck, type Logger } from './core-pure';

/** Checksums a file is expected to have; any subset (all absent = not checked). */
export interface ExpectedChecksums {
  md5?: string | null;
  sha256?: string | null;
  size?: number | null;
}

export interface SftpAuth {
  username?: string;
  /** Private key file (default: FIRN_SSH_KEY, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa). */
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
  timeoutMs?: number;
}

/** A failure retrying will not fix (missing source, refused credentials). */
export class PermanentTransferError extends TransferError {}

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
  if (/^file:/i.test(url)) return 'file';
  if (/^https?:\/\//i.test(url)) return 'http';
  if (/^sftp:\/\//i.test(url)) return 'sftp';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new PermanentTransferError(`unsupported URL scheme in ${redactUrl(url)} (file://, http(s)://, sftp:// only)`);
  return 'file';
}

/** A local path for a file: URL or a plain (optionally relative) path. */
export function localPathOf(url: string, baseDir = process.cwd()): string {
  if (/^file:/i.test(url)) return fileURLToPath(url);
  return path.resolve(baseDir, url);
}

/** A URL without any password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@\s]*:)[^@\s/]+@/, '$1[REDACTED]@');
}

interface WriteTarget {
  stream: Writable;
  /** Make the written data visible at its final name. */
  commit(): Promise<void>;
  abort(): Promise<void>;
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}


export class Stager {
  private readonly logger: Logger | undefined;
  private readonly sftpConns = new Map<string, Promise<{ client: Client; sftp: SFTPWrapper }>>();
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true });

  constructor(private readonly opts: StagerOptions = {}) {
    this.logger = opts.logger;
    // A given CA is trusted in addition to the system's roots, not instead of them.
    this.httpsAgent = new https.Agent({ keepAlive: true, ca: opts.ca ? [...tls.rootCertificates, opts.ca] : undefined, rejectUnauthorized: !opts.insecure });
  }

  /** Fetch `url` into `dest` (a local file), verifying `expected`; returns the checksums. */
  async download(url: string, dest: string, expected: ExpectedChecksums = {}, baseDir?: string): Promise<Checksums> {
    return this.retry(`download ${redactUrl(url)}`, async () => {
      await fs.promises.mkdir(path.dirname(dest), { recursive: true });
      const part = `${dest}.part-${process.pid}`;
      const tap = new HashTap();
      try {
        const src = await this.openRead(url, baseDir);
        await pipeline(src, tap, fs.createWriteStream(part));
        const sums = tap.result();
        const bad = checksumMismatches(sums, expected);
        if (bad.length) throw new TransferError(`checksum mismatch for ${redactUrl(url)}: ${bad.join('; ')}`);
        await fs.promises.rename(part, dest);
        return sums;
      } catch (e) {
        await fs.promises.rm(part, { force: true });
        throw e;
      }
    });
  }

  /** Store the local file `src` at `url`, then read it back and compare checksums. */
  async upload(src: string, url: string, expected?: ExpectedChecksums): Promise<Checksums> {
    return this.copy(pathToFileURL(src).href, url, expected);
  }

  /** Copy between any two supported locations, verifying source (if expected given) and destination. */
  async copy(fromUrl: string, toUrl: string, expected: ExpectedChecksums = {}, baseDir?: string): Promise<Checksums> {
    return this.retry(`copy ${redactUrl(fromUrl)} → ${redactUrl(toUrl)}`, async () => {
      const src = await this.openRead(fromUrl, baseDir);
      const tap = new HashTap();
      let target: WriteTarget;
      try {
        target = await this.openWrite(toUrl, baseDir);
      } catch (e) {
        src.destroy();
        throw e;
      }
      let sums: Checksums;
      try {
        await pipeline(src, tap, target.stream);
        sums = tap.result();
        const bad = checksumMismatches(sums, expected);
        if (bad.length) throw new TransferError(`checksum mismatch for ${redactUrl(fromUrl)}: ${bad.join('; ')}`);
        await target.commit();
      } catch (e) {
        await target.abort().catch(() => undefined);
        throw e;
      }
      const back = await checksumStream(await this.openRead(toUrl, baseDir));
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
    const conns = [...this.sftpConns.values()];
    this.sftpConns.clear();
    for (const c of conns) {
      try {
        (await c).client.end();
      } catch {
        // never connected
      }
    }
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  // ------------------------------------------------------------------------------------------

  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.opts.attempts ?? 3;
    let delay = this.opts.retryDelayMs ?? 1000;
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (e) {
        const err = coerceError(e);
        if (err instanceof PermanentTransferError || i >= attempts) {
          throw err instanceof TransferError ? err : new TransferError(`${what} failed: ${err.message}`);
        }
        this.logger?.warn('transfer failed, retrying', { what, attempt: i, error: err.message });
        await sleep(delay);
        delay *= 2;
      }
    }
  }

  private async openRead(url: string, baseDir?: string): Promise<Readable> {
    switch (urlScheme(url)) {
      case 'file': {
        const p = localPathOf(url, baseDir);
        try {
          const st = await fs.promises.stat(p);
          if (!st.isFile()) throw new PermanentTransferError(`${p} is not a regular file`);
        } catch (e) {
          if (e instanceof PermanentTransferError) throw e;
          throw new PermanentTransferError(`cannot read ${p}: ${coerceError(e).message}`);
        }
        return fs.createReadStream(p, { highWaterMark: 1 << 20 });
      }
      case 'http':
        return this.httpGet(url, 5);
      case 'sftp': {
        const { sftp, remotePath } = await this.sftpFor(url);
        await new Promise<void>((resolve, reject) =>
          sftp.stat(remotePath, (err) => (err ? reject(new PermanentTransferError(`cannot read ${redactUrl(url)}: ${err.message}`)) : resolve())),
        );
        return sftp.createReadStream(remotePath, { highWaterMark: 64 * 1024 });
      }
    }
  }

  private async openWrite(url: string, baseDir?: string): Promise<WriteTarget> {
    switch (urlScheme(url)) {
      case 'file': {
        const p = localPathOf(url, baseDir);
        await fs.promises.mkdir(path.dirname(p), { recursive: true });
        const part = `${p}.part-${process.pid}`;
        const stream = fs.createWriteStream(part);
        return {
          stream,
          commit: () => fs.promises.rename(part, p),
          abort: () => fs.promises.rm(part, { force: true }),
        };
      }
      case 'http':
        return this.httpPut(url);
      case 'sftp': {
        const { sftp, remotePath } = await this.sftpFor(url);
        await sftpMkdirs(sftp, path.posix.dirname(remotePath));
        const part = `${remotePath}.part-${process.pid}`;
        const stream = sftp.createWriteStream(part);
        return {
          stream,
          commit: () => sftpRename(sftp, part, remotePath),
          abort: () => new Promise<void>((resolve) => sftp.unlink(part, () => resolve())),
        };
      }
    }
  }

  private httpGet(url: string, redirects: number): Promise<Readable> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const mod = u.protocol === 'https:' ? https : http;
      const req = mod.get(u, { agent: u.protocol === 'https:' ? this.httpsAgent : this.httpAgent, timeout: this.opts.timeoutMs ?? 60_000 }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirects <= 0) return reject(new PermanentTransferError(`too many redirects for ${redactUrl(url)}`));
          return resolve(this.httpGet(new URL(res.headers.location, u).href, redirects - 1));
        }
        if (status !== 200) {
          res.resume();
          const msg = `GET ${redactUrl(url)}: HTTP ${status}`;
          return reject(status >= 400 && status < 500 && status !== 408 && status !== 429 ? new PermanentTransferError(msg) : new TransferError(msg));
        }
        const pass = new PassThrough({ highWaterMark: 1 << 20 });
        res.on('error', (e) => pass.destroy(e));
        res.on('aborted', () => pass.destroy(new TransferError(`GET ${redactUrl(url)}: connection aborted`)));
        res.pipe(pass);
        resolve(pass);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e) => reject(new TransferError(`GET ${redactUrl(url)}: ${e.message}`)));
    });
  }

  private async httpPut(url: string): Promise<WriteTarget> {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { method: 'PUT', agent: u.protocol === 'https:' ? this.httpsAgent : this.httpAgent, timeout: this.opts.timeoutMs ?? 60_000 });
    const done = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        const s = res.statusCode ?? 0;
        if (s >= 200 && s < 300) resolve();
        else reject(new TransferError(`PUT ${redactUrl(url)}: HTTP ${s}`));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e) => reject(new TransferError(`PUT ${redactUrl(url)}: ${e.message}`)));
    });
    done.catch(() => undefined); // observed in commit()
    return { stream: req, commit: () => done, abort: async () => void req.destroy() };
  }

  private sftpFor(url: string): Promise<{ sftp: SFTPWrapper; remotePath: string }> {
    const u = new URL(url);
    const auth = this.opts.sftp ?? {};
    const username = decodeURIComponent(u.username) || auth.username || process.env.FIRN_SSH_USER || os.userInfo().username;
    const port = Number(u.port || 22);
    const key = `${username}@${u.hostname}:${port}`;
    let remotePath = decodeURIComponent(u.pathname);
    if (remotePath.startsWith('/~/')) remotePath = remotePath.slice(3); // relative to the login directory
    let conn = this.sftpConns.get(key);
    if (!conn) {
      conn = this.connectSftp(u.hostname, port, username, auth);
      this.sftpConns.set(key, conn);
      conn.catch(() => this.sftpConns.delete(key));
    }
    return conn.then(({ sftp }) => ({ sftp, remotePath }));
  }

  private connectSftp(host: string, port: number, username: string, auth: SftpAuth): Promise<{ client: Client; sftp: SFTPWrapper }> {
    const cfg: ConnectConfig = { host, port, username, readyTimeout: this.opts.timeoutMs ?? 30_000, keepaliveInterval: 15_000 };
    const keyPath = auth.privateKeyPath ?? process.env.FIRN_SSH_KEY;
    if (auth.privateKey) cfg.privateKey = auth.privateKey;
    else if (keyPath) cfg.privateKey = fs.readFileSync(keyPath);
    else {
      for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
        const p = path.join(os.homedir(), '.ssh', name);
        if (fs.existsSync(p)) {
          cfg.privateKey = fs.readFileSync(p);
          break;
        }
      }
    }
    if (auth.passphrase) cfg.passphrase = auth.passphrase;
    if (process.env.SSH_AUTH_SOCK) cfg.agent = process.env.SSH_AUTH_SOCK;
    const knownFile = auth.knownHostsFile ?? process.env.FIRN_SSH_KNOWN_HOSTS;
    let check: HostKeyCheck;
    try {
      check = hostKeyCheck(
        { ...(knownFile ? { knownHostsFile: knownFile } : {}), acceptUnknown: auth.acceptUnknownHosts === true },
        host, port, (msg, meta) => this.logger?.warn(msg, meta),
      );
    } catch (e) {
      return Promise.reject(new PermanentTransferError(`sftp ${username}@${host}:${port}: ${coerceError(e).message}`));
    }
    cfg.hostVerifier = (hostKey: Buffer) => check.verify(hostKey);
    return new Promise((resolve, reject) => {
      // ssh2 is loaded only when an sftp:// URL is used: it is a good part of the pilot's start-up cost
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { Client: SshClient } = require('ssh2') as typeof import('ssh2');
      const client = new SshClient();
      let ready = false;
      client.once('ready', () => {
        ready = true;
        client.sftp((err, sftp) => {
          if (err) {
            client.end();
            return reject(new TransferError(`sftp ${username}@${host}:${port}: ${err.message}`));
          }
          resolve({ client, sftp });
        });
      });
      client.on('error', (e: Error & { level?: string }) => {
        if (ready) return;
        const refused = check.refusal();
        const msg = `sftp ${username}@${host}:${port}: ${refused ?? e.message}`;
        reject(refused !== null || e.level === 'client-authentication' || /verification failed/i.test(e.message) ? new PermanentTransferError(msg) : new TransferError(msg));
      });
      client.on('close', () => {
        for (const [k, v] of this.sftpConns) {
          void v.then((c) => c.client === client && this.sftpConns.delete(k), () => undefined);
        }
      });
      client.connect(cfg);
    });
  }
}

function sftpMkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
  if (dir === '/' || dir === '.' || dir === '') return Promise.resolve();
  return new Promise((resolve, reject) => {
    sftp.stat(dir, (err, st) => {
      if (!err) return st.isDirectory() ? resolve() : reject(new PermanentTransferError(`${dir} exists and is not a directory`));
      sftpMkdirs(sftp, path.posix.dirname(dir)).then(
        () => sftp.mkdir(dir, (e) => (e && !/exist|failure/i.test(e.message) ? reject(new TransferError(`mkdir ${dir}: ${e.message}`)) : resolve())),
        reject,
      );
    });
  });
}

function sftpRename(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // posix-rename@openssh.com replaces an existing file atomically; plain rename fails if it exists.
    const ext = (sftp as unknown as { ext_openssh_rename?: (a: string, b: string, cb: (e?: Error) => void) => void }).ext_openssh_rename;
    const fallback = () =>
      sftp.unlink(to, () => sftp.rename(from, to, (e) => (e ? reject(new TransferError(`rename ${from} → ${to}: ${e.message}`)) : resolve())));
    if (typeof ext === 'function') {
      try {
        ext.call(sftp, from, to, (e?: Error) => (e ? fallback() : resolve()));
        return;
      } catch {
        // server does not support the extension
      }
    }
    fallback();
  });
}
