/**
 * A MariaDB server of a test's own — its datadir under a temp dir, its own loopback port — for
 * tests that stop and start the database (outages, /healthz while it is down). The shared
 * server on 3306 is never stopped by a test.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitUntil } from './db';

/** A TCP port free on 127.0.0.1 now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface PrivateMariaDbOptions {
  /** Database name in `url` (created by the daemons' migrations or the test). */
  database: string;
  /** Temp directory prefix. */
  prefix?: string;
  bufferPool?: string;
  maxConnections?: number;
}

export class PrivateMariaDb {
  proc: ChildProcess | null = null;
  private constructor(readonly dir: string, readonly port: number, private readonly o: PrivateMariaDbOptions) {}

  static async create(o: PrivateMariaDbOptions): Promise<PrivateMariaDb> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), o.prefix ?? 'firn-private-mariadb-'));
    const m = new PrivateMariaDb(dir, await freePort(), o);
    const r = spawnSync('mariadb-install-db', ['--no-defaults', `--datadir=${path.join(dir, 'data')}`, `--user=${os.userInfo().username}`, '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`mariadb-install-db failed: ${r.stderr || r.stdout}`);
    await m.start();
    return m;
  }

  get url(): string {
    return `mysql://root@127.0.0.1:${this.port}/${this.o.database}`;
  }

  async start(): Promise<void> {
    const log = fs.openSync(path.join(this.dir, 'mariadbd.log'), 'a');
    this.proc = spawn('mariadbd', [
      '--no-defaults', `--datadir=${path.join(this.dir, 'data')}`, `--port=${this.port}`, '--bind-address=127.0.0.1',
      `--socket=${path.join(this.dir, 'sock')}`, `--pid-file=${path.join(this.dir, 'pid')}`, `--user=${os.userInfo().username}`,
      `--innodb-buffer-pool-size=${this.o.bufferPool ?? '64M'}`, '--skip-log-bin', `--max-connections=${this.o.maxConnections ?? 200}`,
    ], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    await waitUntil(() => new Promise<boolean>((resolve) => {
      const c = net.connect(this.port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    }), 60_000, 'private mariadbd to listen', 100);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((resolve) => p.on('exit', resolve));
    p.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
