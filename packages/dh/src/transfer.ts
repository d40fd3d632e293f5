/**
 * Copying one file between storage locations — file://, sftp:// (ssh2) and http(s)://
 * (GET to read, PUT to write, DELETE to remove) — with md5 + sha256 verified at the
 * destination, retries, and an atomic, idempotent protocol:
 *
 *   1. the destination already holds the expected bytes → done (a killed dh, resumed);
 *   2. copy into `<dest>.firn-part` on the destination's storage;
 *   3. read the part back there and compare md5 + sha256 (+ size) with the expected sums;
 *   4. rename the part to `<dest>` (replacing a stale file of that name).
 *
 * So a destination name only ever holds verified bytes, and however often the copy is
 * interrupted and restarted the file ends up there exactly once. (HTTP has no rename: a
 * PUT goes straight to the destination and a mismatching upload is deleted again.)
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import {
  TransferError, backoffDelay, checksumMismatches, checksumStream, coerceError, hostKeyCheck, nullLogger, redactText,
  type Checksums, type HostKeyCheck, type Logger,
} from '@firn/core';

/** Suffix of the partial copy renamed into place once verified. */
export const PART_SUFFIX = '.firn-part';

/** A failure that retrying cannot fix (missing source, refused credentials, bad URL). */
export class UnrecoverableTransferError extends TransferError {}

/** Checksums a file must have; md5 / sha256 / size, any subset. */
export interface ExpectedChecksums {
  md5?: string | null;
  sha256?: string | null;
  size?: number | null;
}

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

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  return redactText(url);
}

// ---------------------------------------------------------------------------------------
// Locations and the stores that reach them

type Location =
  | { scheme: 'file'; path: string }
  | { scheme: 'sftp'; host: string; port: number; username: string; password?: string; path: string }
  | { scheme: 'http'; url: URL };

/** Parse a file://, sftp://, http(s):// URL (or an absolute path). */
function parseLocation(url: string): Location {
  if (url.startsWith('/')) return { scheme: 'file', path: url };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UnrecoverableTransferError(`not a URL: ${redactUrl(url)}`);
  }
  switch (u.protocol) {
    case 'file:':
      return { scheme: 'file', path: fileURLToPath(u) };
    case 'sftp:': {
      const p = decodeURIComponent(u.pathname);
      if (!u.hostname || !p || p === '/') throw new UnrecoverableTransferError(`sftp URL needs a host and a path: ${redactUrl(url)}`);
      return {
        scheme: 'sftp',
        host: u.hostname,
        port: Number(u.port || 22),
        username: decodeURIComponent(u.username) || os.userInfo().username,
        ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
        path: p,
      };
    }
    case 'http:':
    case 'https:':
      return { scheme: 'http', url: u };
    default:
      throw new UnrecoverableTransferError(`unsupported URL scheme ${u.protocol} in ${redactUrl(url)} (file://, sftp://, http(s):// only)`);
  }
}

function withSuffix(loc: Location, suffix: string): Location {
  if (loc.scheme === 'http') {
    const u = new URL(loc.url.href);
    u.pathname += suffix;
    return { scheme: 'http', url: u };
  }
  return { ...loc, path: loc.path + suffix };
}

/** What every backend can do with one location. */
interface Store {
  /** Open for reading; UnrecoverableTransferError when it does not exist. */
  read(loc: Location): Promise<Readable>;
  /** Write the whole stream to `loc` (parent directories created, existing content replaced). */
  write(loc: Location, body: Readable): Promise<void>;
  /** Checksums of what is at `loc`, or null when nothing is. */
  checksum(loc: Location): Promise<Checksums | null>;
  /** Replace `to` with `from`; null when the store has no rename (write straight to the destination). */
  rename: ((from: Location, to: Location) => Promise<void>) | null;
  /** Remove `loc`; a missing file is fine. */
  remove(loc: Location): Promise<void>;
}

function isMissing(e: unknown): boolean {
  return (e as { code?: unknown }).code === 'ENOENT';
}

const fileStore: Store = {
  async read(loc) {
    const p = (loc as { path: string }).path;
    try {
      const st = await fs.promises.stat(p);
      if (!st.isFile()) throw new UnrecoverableTransferError(`${p} is not a regular file`);
    } catch (e) {
      if (isMissing(e)) throw new UnrecoverableTransferError(`source ${p} does not exist`);
      throw e;
    }
    return fs.createReadStream(p, { highWaterMark: 1 << 20 });
  },
  async write(loc, body) {
    const p = (loc as { path: string }).path;
    await fs.promises.mkdir(path.dirname(p), { recursive: true });
    await pipeline(body, fs.createWriteStream(p));
    // on disk before it may be renamed into place
    const h = await fs.promises.open(p, 'r+');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  },
  async checksum(loc) {
    const p = (loc as { path: string }).path;
    let stream: fs.ReadStream;
    try {
      const st = await fs.promises.stat(p);
      if (!st.isFile()) return null;
      stream = fs.createReadStream(p, { highWaterMark: 1 << 20 });
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
    return checksumStream(stream);
  },
  async rename(from, to) {
    await fs.promises.rename((from as { path: string }).path, (to as { path: string }).path);
  },
  async remove(loc) {
    await fs.promises.rm((loc as { path: string }).path, { force: true });
  },
};

/** SFTP status code for "no such file". */
const SFTP_NO_SUCH_FILE = 2;

function sftpCall<T>(what: string, fn: (cb: (err: (Error & { code?: number }) | null | undefined, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    fn((err, v) => {
      if (!err) return resolve(v as T);
      const e = new TransferError(`sftp ${what}: ${err.message}`) as TransferError & { sftpCode?: number };
      e.sftpCode = err.code;
      reject(e);
    }),
  );
}
const sftpMissing = (e: unknown) => (e as { sftpCode?: number }).sftpCode === SFTP_NO_SUCH_FILE;

interface SftpConn {
  client: Client;
  sftp: SFTPWrapper;
}

/** One kept-alive ssh2 connection per user@host:port, reconnected when it drops. */
class SftpStore implements Store {
  private readonly conns = new Map<string, Promise<SftpConn>>();

  constructor(
    private readonly opts: SftpOptions,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  private async conn(loc: Location): Promise<{ sftp: SFTPWrapper; path: string }> {
    if (loc.scheme !== 'sftp') throw new Error('not an sftp location');
    const key = `${loc.username}@${loc.host}:${loc.port}`;
    let c = this.conns.get(key);
    if (!c) {
      c = this.connect(loc);
      this.conns.set(key, c);
      c.then(
        ({ client }) => client.on('close', () => this.conns.get(key) === c && this.conns.delete(key)),
        () => this.conns.get(key) === c && this.conns.delete(key),
      );
    }
    return { sftp: (await c).sftp, path: loc.path };
  }

  /** Drop the connection to `loc`'s host (after an error, so the next attempt reconnects). */
  async reset(loc: Location): Promise<void> {
    if (loc.scheme !== 'sftp') return;
    const key = `${loc.username}@${loc.host}:${loc.port}`;
    const c = this.conns.get(key);
    this.conns.delete(key);
    await c?.then(({ client }) => client.end(), () => undefined);
  }

  private connect(loc: Extract<Location, { scheme: 'sftp' }>): Promise<SftpConn> {
    const cfg: ConnectConfig = {
      host: loc.host,
      port: loc.port,
      username: loc.username,
      readyTimeout: this.timeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
    };
    if (this.opts.privateKeyPath) {
      try {
        cfg.privateKey = fs.readFileSync(this.opts.privateKeyPath);
      } catch (e) {
        return Promise.reject(new UnrecoverableTransferError(`cannot read [dh] ssh_key ${this.opts.privateKeyPath}: ${coerceError(e).message}`));
      }
    }
    else if (loc.password !== undefined) cfg.password = loc.password;
    else if (process.env.SSH_AUTH_SOCK) cfg.agent = process.env.SSH_AUTH_SOCK;
    else {
      const key = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => path.join(os.homedir(), '.ssh', n)).find((p) => fs.existsSync(p));
      if (key) cfg.privateKey = fs.readFileSync(key);
    }
    let check: HostKeyCheck;
    try {
      check = hostKeyCheck(
        { ...(this.opts.knownHostsFile ? { knownHostsFile: this.opts.knownHostsFile } : {}), acceptUnknown: this.opts.acceptUnknownHosts === true },
        loc.host, loc.port, (msg, meta) => this.logger.warn(msg, meta),
      );
    } catch (e) {
      return Promise.reject(new UnrecoverableTransferError(`[dh] ssh_known_hosts: ${coerceError(e).message}`));
    }
    cfg.hostVerifier = (hostKey: Buffer) => check.verify(hostKey);
    const who = `${loc.username}@${loc.host}:${loc.port}`;
    return new Promise((resolve, reject) => {
      const client = new Client();
      let ready = false;
      client.once('ready', () => {
        ready = true;
        client.sftp((err, sftp) => {
          if (err) {
            client.end();
            return reject(new TransferError(`sftp ${who}: ${err.message}`));
          }
          this.logger.debug('sftp connected', { target: who });
          resolve({ client, sftp });
        });
      });
      client.on('error', (e: Error & { level?: string }) => {
        if (ready) return this.logger.debug('sftp connection error', { target: who, error: e.message });
        const refused = check.refusal();
        const msg = `sftp ${who}: ${refused ?? e.message}`;
        const permanent = refused !== null || e.level === 'client-authentication' || /verification failed/i.test(e.message);
        reject(permanent ? new UnrecoverableTransferError(msg) : new TransferError(msg));
      });
      client.connect(cfg);
    });
  }

  async read(loc: Location): Promise<Readable> {
    const { sftp, path: p } = await this.conn(loc);
    try {
      await sftpCall(`stat ${p}`, (cb) => sftp.stat(p, cb));
    } catch (e) {
      if (sftpMissing(e)) throw new UnrecoverableTransferError(`source ${p} does not exist on ${(loc as { host: string }).host}`);
      throw e;
    }
    return sftp.createReadStream(p, { highWaterMark: 256 * 1024 });
  }

  private async mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (dir === '/' || dir === '.' || dir === '') return;
    try {
      const st = await sftpCall<{ isDirectory(): boolean }>(`stat ${dir}`, (cb) => sftp.stat(dir, cb));
      if (!st.isDirectory()) throw new UnrecoverableTransferError(`${dir} exists and is not a directory`);
      return;
    } catch (e) {
      if (!sftpMissing(e)) throw e;
    }
    await this.mkdirs(sftp, path.posix.dirname(dir));
    try {
      await sftpCall(`mkdir ${dir}`, (cb) => sftp.mkdir(dir, cb));
    } catch (e) {
      // created meanwhile by someone else?
      const st = await sftpCall<{ isDirectory(): boolean }>(`stat ${dir}`, (cb) => sftp.stat(dir, cb)).catch(() => null);
      if (!st?.isDirectory()) throw e;
    }
  }

  async write(loc: Location, body: Readable): Promise<void> {
    const { sftp, path: p } = await this.conn(loc);
    await this.mkdirs(sftp, path.posix.dirname(p));
    await pipeline(body, sftp.createWriteStream(p, { flags: 'w' }));
  }

  async checksum(loc: Location): Promise<Checksums | null> {
    const { sftp, path: p } = await this.conn(loc);
    try {
      await sftpCall(`stat ${p}`, (cb) => sftp.stat(p, cb));
    } catch (e) {
      if (sftpMissing(e)) return null;
      throw e;
    }
    return checksumStream(sftp.createReadStream(p, { highWaterMark: 256 * 1024 }));
  }

  readonly rename = async (from: Location, to: Location): Promise<void> => {
    const { sftp, path: a } = await this.conn(from);
    const b = (to as { path: string }).path;
    try {
      // posix-rename@openssh.com replaces the target atomically
      await sftpCall(`rename ${a}`, (cb) => sftp.ext_openssh_rename(a, b, cb));
    } catch {
      await sftpCall(`unlink ${b}`, (cb) => sftp.unlink(b, cb)).catch((e) => {
        if (!sftpMissing(e)) throw e;
      });
      await sftpCall(`rename ${a}`, (cb) => sftp.rename(a, b, cb));
    }
  };

  async remove(loc: Location): Promise<void> {
    const { sftp, path: p } = await this.conn(loc);
    await sftpCall(`unlink ${p}`, (cb) => sftp.unlink(p, cb)).catch((e) => {
      if (!sftpMissing(e)) throw e;
    });
  }

  async close(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(all.map((c) => c.then(({ client }) => client.end(), () => undefined)));
  }
}

/** GET reads, PUT writes, DELETE removes; credentials in the URL go as Basic auth. */
class HttpStore implements Store {
  private readonly agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  readonly rename = null;

  constructor(private readonly timeoutMs: number) {}

  private request(method: string, u: URL, body?: Readable, redirects = 5): Promise<http.IncomingMessage> {
    const secure = u.protocol === 'https:';
    const headers: Record<string, string> = {};
    if (u.username) headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
    const target = new URL(u.href);
    target.username = '';
    target.password = '';
    const what = `${method} ${redactUrl(u.href)}`;
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(target, { method, headers, agent: secure ? this.agents.https : this.agents.http, timeout: this.timeoutMs }, (res) => {
        const status = res.statusCode ?? 0;
        if (method === 'GET' && status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirects <= 0) return reject(new UnrecoverableTransferError(`${what}: too many redirects`));
          return resolve(this.request(method, new URL(res.headers.location, u), undefined, redirects - 1));
        }
        resolve(res);
      });
      req.on('timeout', () => req.destroy(new TransferError(`${what}: timed out`)));
      req.on('error', (e) => reject(e instanceof TransferError ? e : new TransferError(`${what}: ${e.message}`)));
      if (body) {
        body.on('error', (e) => req.destroy(e));
        body.pipe(req);
      } else req.end();
    });
  }

  private static fail(what: string, status: number): TransferError {
    const msg = `${what}: HTTP ${status}`;
    return status >= 400 && status < 500 && status !== 408 && status !== 429 ? new UnrecoverableTransferError(msg) : new TransferError(msg);
  }

  private async get(loc: Location): Promise<Readable | null> {
    const u = (loc as { url: URL }).url;
    const res = await this.request('GET', u);
    const status = res.statusCode ?? 0;
    if (status === 404 || status === 410) {
      res.resume();
      return null;
    }
    if (status !== 200) {
      res.resume();
      throw HttpStore.fail(`GET ${redactUrl(u.href)}`, status);
    }
    const pass = new PassThrough({ highWaterMark: 1 << 20 });
    res.on('aborted', () => pass.destroy(new TransferError(`GET ${redactUrl(u.href)}: connection aborted`)));
    res.on('error', (e) => pass.destroy(e));
    res.pipe(pass);
    return pass;
  }

  async read(loc: Location): Promise<Readable> {
    const s = await this.get(loc);
    if (!s) throw new UnrecoverableTransferError(`source ${redactUrl((loc as { url: URL }).url.href)} does not exist (HTTP 404)`);
    return s;
  }

  async write(loc: Location, body: Readable): Promise<void> {
    const u = (loc as { url: URL }).url;
    const res = await this.request('PUT', u, body);
    res.resume();
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw HttpStore.fail(`PUT ${redactUrl(u.href)}`, status);
  }

  async checksum(loc: Location): Promise<Checksums | null> {
    const s = await this.get(loc);
    return s ? checksumStream(s) : null;
  }

  async remove(loc: Location): Promise<void> {
    const u = (loc as { url: URL }).url;
    const res = await this.request('DELETE', u);
    res.resume();
    const status = res.statusCode ?? 0;
    if (status !== 404 && status !== 410 && (status < 200 || status >= 300)) throw HttpStore.fail(`DELETE ${redactUrl(u.href)}`, status);
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

// ---------------------------------------------------------------------------------------

function hasChecksums(e: ExpectedChecksums): boolean {
  return Boolean(e.md5 || e.sha256);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Copies, verifies and removes files at any supported location. Holds the sftp connections
 * and http agents; `close()` when done.
 */
export class Transfers {
  private readonly logger: Logger;
  private readonly sftp: SftpStore;
  private readonly http: HttpStore;

  constructor(private readonly opts: TransferOptions) {
    if (!Number.isInteger(opts.retries) || opts.retries < 0) throw new TransferError(`[dh] transfer_retries must be a non-negative integer, got ${opts.retries}`);
    this.logger = opts.logger ?? nullLogger;
    const timeout = opts.timeoutMs ?? 60_000;
    this.sftp = new SftpStore(opts.sftp ?? {}, timeout, this.logger);
    this.http = new HttpStore(timeout);
  }

  private store(loc: Location): Store {
    return loc.scheme === 'file' ? fileStore : loc.scheme === 'sftp' ? this.sftp : this.http;
  }

  /** Run `fn` up to retries + 1 times; an UnrecoverableTransferError stops at once. */
  private async withRetries<T>(what: string, locs: Location[], fn: (attempt: number) => Promise<T>): Promise<T> {
    const attempts = this.opts.retries + 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (e) {
        const err = coerceError(e);
        const message = err instanceof TransferError ? err.message : `${what}: ${err.message}`;
        if (err instanceof UnrecoverableTransferError) throw err;
        if (attempt >= attempts) throw new TransferError(`${message} (after ${attempts} attempt${attempts === 1 ? '' : 's'})`);
        this.logger.warn('transfer attempt failed, retrying', { what, attempt, error: message });
        for (const l of locs) await this.sftp.reset(l);
        await sleep(backoffDelay(attempt, { baseMs: this.opts.retryDelayMs ?? 1000, maxMs: 30_000, random: Math.random() }));
      }
    }
  }

  /**
   * Copy `srcUrl` to `destUrl` and verify the bytes at the destination against `expected`
   * (when it names no checksum, against the source's). Idempotent: a destination that
   * already holds the expected bytes is left alone. Throws TransferError after the retries.
   */
  async copyVerified(srcUrl: string, destUrl: string, expected: ExpectedChecksums = {}): Promise<TransferResult> {
    const src = parseLocation(srcUrl);
    const dest = parseLocation(destUrl);
    const part = withSuffix(dest, PART_SUFFIX);
    const to = this.store(dest);
    const what = `copy ${redactUrl(srcUrl)} → ${redactUrl(destUrl)}`;
    let want: ExpectedChecksums | null = hasChecksums(expected) ? expected : null;
    let attempts = 0;
    return this.withRetries(what, [src, dest], async (attempt) => {
      attempts = attempt;
      if (want) {
        const there = await to.checksum(dest);
        if (there && checksumMismatches(there, want).length === 0) return { checksums: there, alreadyPresent: true, attempts };
      } else {
        want = await this.store(src).checksum(src);
        if (!want) throw new UnrecoverableTransferError(`source ${redactUrl(srcUrl)} does not exist`);
      }
      const body = await this.store(src).read(src);
      const target = to.rename ? part : dest;
      try {
        await to.write(target, body);
        const got = await to.checksum(target);
        if (!got) throw new TransferError(`${what}: nothing at the destination after writing it`);
        const bad = checksumMismatches(got, want);
        if (bad.length) throw new TransferError(`checksum mismatch at destination ${redactUrl(destUrl)}: ${bad.join('; ')}`);
        if (to.rename) await to.rename(part, dest);
        return { checksums: got, alreadyPresent: false, attempts };
      } catch (e) {
        body.destroy();
        await to.remove(target).catch(() => undefined);
        throw e;
      }
    });
  }

  /** Verify a file in place (source and destination are one): its checksums must match. */
  async verify(url: string, expected: ExpectedChecksums): Promise<TransferResult> {
    const loc = parseLocation(url);
    let attempts = 0;
    return this.withRetries(`verify ${redactUrl(url)}`, [loc], async (attempt) => {
      attempts = attempt;
      const got = await this.store(loc).checksum(loc);
      if (!got) throw new UnrecoverableTransferError(`${redactUrl(url)} does not exist`);
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
    await this.sftp.close();
    this.http.close();
  }
}
