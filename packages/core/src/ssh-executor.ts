import fs from 'node:fs';
import path from 'node:path';
import { Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import type { ExecOptions, ExecResult, Executor } from './executor';
import { hostKeyCheck, type HostKeyCheck } from './host-key-policy';
import { nullLogger, type Logger } from './logger';

export interface SshExecutorOptions {
  host: string;
  port?: number;
  username: string;
  /** Path of a private key file, or the key itself. */
  privateKeyPath?: string;
  privateKey?: string | Buffer;
  passphrase?: string;
  /** Connection and command timeout base, ms (default 30 s). */
  timeoutMs?: number;
  /**
   * OpenSSH known_hosts file (default ~/.ssh/known_hosts): the host must present a key listed
   * there for host:port, or no connection is made (host-key-policy.ts).
   */
  knownHostsFile?: string;
  /** Accept a host the file does not list, with a warning (explicit opt-in). */
  acceptUnknownHosts?: boolean;
  /** Home directory whose .ssh/known_hosts is the default (default: os.homedir()). */
  homeDir?: string;
  logger?: Logger;
}

/** POSIX-shell quoting of one word. */
export function shellQuote(word: string): string {
  if (word === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs commands on a remote submit host over one kept-alive ssh2 connection, reconnecting
 * when it drops. Arguments are shell-quoted (ssh always goes through the remote shell).
 */
export class SshExecutor implements Executor {
  readonly description: string;
  private conn: Client | null = null;
  private connecting: Promise<Client> | null = null;
  private sftpP: Promise<SFTPWrapper> | null = null;
  private readonly logger: Logger;
  private closed = false;

  constructor(private readonly opts: SshExecutorOptions) {
    this.description = `ssh://${opts.username}@${opts.host}:${opts.port ?? 22}`;
    this.logger = opts.logger ?? nullLogger;
  }

  private connect(): Promise<Client> {
    if (this.conn) return Promise.resolve(this.conn);
    if (this.connecting) return this.connecting;
    if (this.closed) return Promise.reject(new Error('executor closed'));
    this.connecting = new Promise<Client>((resolve, reject) => {
      const port = this.opts.port ?? 22;
      let check: HostKeyCheck;
      try {
        check = hostKeyCheck(
          { ...(this.opts.knownHostsFile ? { knownHostsFile: this.opts.knownHostsFile } : {}), acceptUnknown: this.opts.acceptUnknownHosts === true },
          this.opts.host, port, (msg, meta) => this.logger.warn(msg, { target: this.description, ...meta }), this.opts.homeDir,
        );
      } catch (e) {
        this.connecting = null;
        reject(new Error(`ssh ${this.description}: ${(e as Error).message}`));
        return;
      }
      let keyRejected = false;
      const c = new Client();
      const cfg: ConnectConfig = {
        host: this.opts.host,
        port: this.opts.port ?? 22,
        username: this.opts.username,
        privateKey: this.opts.privateKey ?? (this.opts.privateKeyPath ? fs.readFileSync(this.opts.privateKeyPath) : undefined),
        passphrase: this.opts.passphrase,
        readyTimeout: this.opts.timeoutMs ?? 30_000,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        hostVerifier: (hostKey: Buffer) => {
          keyRejected = !check.verify(hostKey);
          return !keyRejected;
        },
      };
      c.once('ready', () => {
        this.conn = c;
        this.connecting = null;
        this.logger.debug('ssh connected', { target: this.description });
        resolve(c);
      });
      c.once('error', (e) => {
        this.connecting = null;
        if (this.conn === c) this.conn = null;
        this.sftpP = null;
        reject(new Error(keyRejected ? `ssh ${this.description}: ${check.refusal() ?? 'host key refused'}` : `ssh ${this.description}: ${e.message}`));
      });
      c.on('close', () => {
        if (this.conn === c) {
          this.conn = null;
          this.sftpP = null;
          this.logger.debug('ssh connection closed', { target: this.description });
        }
      });
      c.connect(cfg);
    });
    return this.connecting;
  }

  private sftp(): Promise<SFTPWrapper> {
    if (!this.sftpP) {
      this.sftpP = this.connect().then(
        (c) =>
          new Promise<SFTPWrapper>((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s)))),
      );
      this.sftpP.catch(() => (this.sftpP = null));
    }
    return this.sftpP;
  }

  async exec(command: string, args: string[], options: ExecOptions = {}): Promise<ExecResult> {
    let line = [command, ...args].map(shellQuote).join(' ');
    const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`);
    if (env.length) line = `env ${env.join(' ')} ${line}`;
    if (options.cwd) line = `cd ${shellQuote(options.cwd)} && ${line}`;
    // one retry when the kept-alive connection turned out to be dead
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.execOnce(line, options);
      } catch (e) {
        if (attempt >= 2 || this.closed) throw e;
        this.conn?.end();
        this.conn = null;
        this.sftpP = null;
      }
    }
  }

  private async execOnce(line: string, options: ExecOptions): Promise<ExecResult> {
    const c = await this.connect();
    return new Promise((resolve, reject) => {
      c.exec(line, (err, stream) => {
        if (err) return reject(err);
        const out: Buffer[] = [];
        const errb: Buffer[] = [];
        let code: number | null = null;
        const timer = setTimeout(() => {
          stream.close();
          resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errb).toString() + '\n[timed out]', code: null });
        }, options.timeoutMs ?? 60_000);
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errb.push(d));
        stream.on('exit', (c2: number | null) => (code = c2));
        stream.on('close', () => {
          clearTimeout(timer);
          resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errb).toString('utf8'), code });
        });
        stream.end(options.input ?? '');
      });
    });
  }

  async mkdir(dir: string, mode = 0o755): Promise<void> {
    const r = await this.exec('mkdir', ['-p', '-m', mode.toString(8), dir]);
    if (r.code !== 0) throw new Error(`mkdir ${dir} on ${this.description}: ${r.stderr.trim()}`);
  }

  async writeFile(file: string, content: string | Buffer, mode = 0o644): Promise<void> {
    await this.mkdir(path.posix.dirname(file));
    const s = await this.sftp();
    const tmp = `${file}.tmp-${process.pid}`;
    await new Promise<void>((resolve, reject) => {
      const ws = s.createWriteStream(tmp, { mode });
      ws.on('error', reject);
      ws.on('close', () => resolve());
      ws.end(typeof content === 'string' ? Buffer.from(content) : content);
    });
    await new Promise<void>((resolve, reject) => s.chmod(tmp, mode, (e) => (e ? reject(e) : resolve())));
    const r = await this.exec('mv', ['-f', tmp, file]);
    if (r.code !== 0) throw new Error(`write ${file} on ${this.description}: ${r.stderr.trim()}`);
  }

  async readFile(file: string): Promise<Buffer | null> {
    const s = await this.sftp();
    return new Promise((resolve, reject) => {
      s.readFile(file, (err: (Error & { code?: number }) | null | undefined, data: Buffer) => {
        if (err) return err.code === 2 ? resolve(null) : reject(err);
        resolve(data);
      });
    });
  }

  async remove(p: string): Promise<void> {
    await this.exec('rm', ['-rf', '--', p]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.conn?.end();
    this.conn = null;
  }
}
