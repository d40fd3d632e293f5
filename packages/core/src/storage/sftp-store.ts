/**
 * sftp:// over ssh2: one kept-alive connection per user@host:port, opened on first use,
 * dropped when it closes or after an error (`reset`), checked with the one host-key policy
 * (host-key-policy.ts). A refused host key, refused credentials or an unreadable key file
 * are PermanentTransferError: retrying would only knock again.
 *
 * ssh2 is required lazily, on the first sftp:// location: loading it is a good part of the
 * pilot's start-up time, and most pilots never use sftp.
 *
 * Writes go to `<path><partSuffix>` and are renamed into place with posix-rename@openssh.com
 * (atomic replace), or unlink + rename where the server lacks it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Client, ConnectConfig, SFTPWrapper, Stats } from 'ssh2';
import type { Checksums } from '../checksums';
import { MissingFileError, PermanentTransferError, TransferError } from '../errors';
import { hostKeyCheck, type HostKeyCheck } from '../host-key-policy';
import type { Logger } from '../logger';
import { displayLocation, type Location } from './location';
import { checksumOrNull, type FileInfo, type ReadOptions, type Store, type WriteOptions, type WriteTarget } from './store';

export interface SftpStoreOptions {
  /** User when the URL names none (default: this process's user). */
  username?: string;
  /** Private key, or a file holding it; else the ssh agent (SSH_AUTH_SOCK) and ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  privateKey?: Buffer | string;
  privateKeyPath?: string;
  passphrase?: string;
  /** known_hosts file (default ~/.ssh/known_hosts): a host must present a key listed there. */
  knownHostsFile?: string;
  /** Accept a host the file does not list, with a warning (explicit opt-in). */
  acceptUnknownHosts?: boolean;
  /** Connect (handshake) timeout, ms (default 60 s). */
  timeoutMs?: number;
  logger?: Logger;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

type SftpFailure = TransferError & { sftpCode?: number };

function sftpCall<T>(what: string, fn: (cb: (err: (Error & { code?: unknown }) | null | undefined, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    fn((err, v) => {
      if (!err) return resolve(v as T);
      const c = typeof err.code === 'number' ? err.code : undefined;
      const e: SftpFailure = c === PERMISSION_DENIED ? new PermanentTransferError(`sftp ${what}: ${err.message}`) : new TransferError(`sftp ${what}: ${err.message}`);
      e.sftpCode = c;
      reject(e);
    }),
  );
}
const missing = (e: unknown) => (e as SftpFailure).sftpCode === NO_SUCH_FILE;

interface Conn {
  client: Client;
  sftp: SFTPWrapper;
}

type SftpLocation = Extract<Location, { scheme: 'sftp' }>;

export class SftpStore implements Store {
  readonly scheme = 'sftp' as const;
  private readonly conns = new Map<string, Promise<Conn>>();

  constructor(private readonly o: SftpStoreOptions = {}) {}

  private user(loc: SftpLocation): string {
    return loc.username ?? this.o.username ?? os.userInfo().username;
  }

  private key(loc: SftpLocation): string {
    return `${this.user(loc)}@${loc.host}:${loc.port}`;
  }

  private async conn(loc: Location): Promise<{ sftp: SFTPWrapper; path: string; loc: SftpLocation }> {
    if (loc.scheme !== 'sftp') throw new TransferError(`not an sftp location: ${loc.scheme}`);
    const key = this.key(loc);
    let c = this.conns.get(key);
    if (!c) {
      const p = this.connect(loc);
      c = p;
      this.conns.set(key, p);
      const forget = () => {
        if (this.conns.get(key) === p) this.conns.delete(key);
      };
      p.then(({ client }) => client.on('close', forget), forget);
    }
    return { sftp: (await c).sftp, path: loc.path, loc };
  }

  /** The ssh2 settings for one connection: who, which key, which host key is accepted. */
  private connectConfig(loc: SftpLocation, check: HostKeyCheck): ConnectConfig {
    const cfg: ConnectConfig = {
      host: loc.host,
      port: loc.port,
      username: this.user(loc),
      readyTimeout: this.o.timeoutMs ?? 60_000,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier: (hostKey: Buffer) => check.verify(hostKey),
    };
    if (this.o.privateKey !== undefined) cfg.privateKey = this.o.privateKey;
    else if (this.o.privateKeyPath) {
      try {
        cfg.privateKey = fs.readFileSync(this.o.privateKeyPath);
      } catch (e) {
        throw new PermanentTransferError(`cannot read ssh key file ${this.o.privateKeyPath}: ${(e as Error).message}`);
      }
    } else {
      if (process.env.SSH_AUTH_SOCK) cfg.agent = process.env.SSH_AUTH_SOCK;
      const found = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => path.join(os.homedir(), '.ssh', n)).find((p) => fs.existsSync(p));
      if (found) cfg.privateKey = fs.readFileSync(found);
    }
    if (this.o.passphrase) cfg.passphrase = this.o.passphrase;
    if (loc.password !== undefined) cfg.password = loc.password;
    return cfg;
  }

  private connect(loc: SftpLocation): Promise<Conn> {
    const who = this.key(loc);
    let check: HostKeyCheck;
    let cfg: ConnectConfig;
    try {
      check = hostKeyCheck(
        { ...(this.o.knownHostsFile ? { knownHostsFile: this.o.knownHostsFile } : {}), acceptUnknown: this.o.acceptUnknownHosts === true },
        loc.host, loc.port, (msg, meta) => this.o.logger?.warn(msg, meta),
      );
      cfg = this.connectConfig(loc, check);
    } catch (e) {
      return Promise.reject(new PermanentTransferError(`sftp ${who}: ${(e as Error).message}`));
    }
    return new Promise((resolve, reject) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { Client: SshClient } = require('ssh2') as typeof import('ssh2');
      const client = new SshClient();
      let ready = false;
      client.once('ready', () => {
        ready = true;
        client.sftp((err, sftp) => {
          if (err) {
            client.end();
            return reject(new TransferError(`sftp ${who}: ${err.message}`));
          }
          this.o.logger?.debug('sftp connected', { target: who });
          resolve({ client, sftp });
        });
      });
      client.on('error', (e: Error & { level?: string }) => {
        if (ready) return this.o.logger?.debug('sftp connection error', { target: who, error: e.message });
        const refused = check.refusal();
        const msg = `sftp ${who}: ${refused ?? e.message}`;
        reject(refused !== null || e.level === 'client-authentication' ? new PermanentTransferError(msg) : new TransferError(msg));
      });
      client.connect(cfg);
    });
  }

  private async statOf(sftp: SFTPWrapper, p: string, link = false): Promise<Stats | null> {
    try {
      return await sftpCall<Stats>(`stat ${p}`, (cb) => (link ? sftp.lstat(p, cb) : sftp.stat(p, cb)));
    } catch (e) {
      if (missing(e)) return null;
      throw e;
    }
  }

  async stat(loc: Location): Promise<FileInfo | null> {
    const { sftp, path: p } = await this.conn(loc);
    const st = await this.statOf(sftp, p);
    return st?.isFile() ? { size: st.size } : null;
  }

  async openRead(loc: Location, o: ReadOptions = {}): Promise<Readable> {
    const { sftp, path: p, loc: l } = await this.conn(loc);
    const st = await this.statOf(sftp, p, o.noFollow === true);
    if (!st) throw new MissingFileError(`cannot read ${displayLocation(l)}: it does not exist`);
    if (st.isSymbolicLink()) throw new PermanentTransferError(`cannot read ${displayLocation(l)}: it is a symbolic link (refused)`);
    if (!st.isFile()) throw new PermanentTransferError(`cannot read ${displayLocation(l)}: not a regular file`);
    return sftp.createReadStream(p, { highWaterMark: 256 * 1024 });
  }

  checksum(loc: Location, o?: ReadOptions): Promise<Checksums | null> {
    return checksumOrNull(() => this.openRead(loc, o));
  }

  private async mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (dir === '/' || dir === '.' || dir === '') return;
    const st = await this.statOf(sftp, dir);
    if (st) {
      if (!st.isDirectory()) throw new PermanentTransferError(`sftp: ${dir} exists and is not a directory`);
      return;
    }
    await this.mkdirs(sftp, path.posix.dirname(dir));
    try {
      await sftpCall(`mkdir ${dir}`, (cb) => sftp.mkdir(dir, cb));
    } catch (e) {
      // created meanwhile by someone else?
      const again = await this.statOf(sftp, dir).catch(() => null);
      if (!again?.isDirectory()) throw e;
    }
  }

  async openWrite(loc: Location, o: WriteOptions = {}): Promise<WriteTarget> {
    const { sftp, path: p, loc: l } = await this.conn(loc);
    await this.mkdirs(sftp, path.posix.dirname(p));
    const part = p + (o.partSuffix ?? `.part-${process.pid}`);
    const stream = sftp.createWriteStream(part, { flags: 'w' });
    const closed = new Promise<void>((resolve, reject) => {
      stream.once('close', () => resolve());
      stream.once('error', (e: Error) => reject(new TransferError(`sftp write ${displayLocation(l)}: ${e.message}`)));
    });
    closed.catch(() => undefined); // observed in written()
    const remove = () => this.remove({ ...l, path: part });
    return {
      stream,
      staged: { ...l, path: part },
      written: () => closed,
      commit: async () => {
        await closed;
        await this.renameIn(sftp, part, p);
      },
      abort: async () => {
        stream.destroy();
        await remove().catch(() => undefined);
      },
    };
  }

  private async renameIn(sftp: SFTPWrapper, a: string, b: string): Promise<void> {
    try {
      // posix-rename@openssh.com replaces the target atomically (throws when the server lacks it)
      await sftpCall(`rename ${a}`, (cb) => sftp.ext_openssh_rename(a, b, cb));
    } catch {
      await sftpCall(`unlink ${b}`, (cb) => sftp.unlink(b, cb)).catch((e) => {
        if (!missing(e)) throw e;
      });
      await sftpCall(`rename ${a}`, (cb) => sftp.rename(a, b, cb));
    }
  }

  readonly rename = async (from: Location, to: Location): Promise<void> => {
    const { sftp, path: a } = await this.conn(from);
    if (to.scheme !== 'sftp') throw new TransferError('rename across stores');
    await this.renameIn(sftp, a, to.path);
  };

  async remove(loc: Location): Promise<void> {
    const { sftp, path: p } = await this.conn(loc);
    await sftpCall(`unlink ${p}`, (cb) => sftp.unlink(p, cb)).catch((e) => {
      if (!missing(e)) throw e;
    });
  }

  async reset(loc: Location): Promise<void> {
    if (loc.scheme !== 'sftp') return;
    const key = this.key(loc);
    const c = this.conns.get(key);
    this.conns.delete(key);
    await c?.then(({ client }) => client.end(), () => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(all.map((c) => c.then(({ client }) => client.end(), () => undefined)));
  }
}
