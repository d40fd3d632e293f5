import { spawn } from 'node:child_process';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ExecOptions, ExecResult, Executor } from './executor';

/** Runs commands on this host with spawn (no shell). */
export class LocalExecutor implements Executor {
  readonly description = 'local';
  constructor(private readonly baseEnv: Record<string, string | undefined> = process.env) {}

  exec(command: string, args: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn(command, args, {
        cwd: options.cwd,
        env: { ...this.baseEnv, ...options.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let settled = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, options.timeoutMs ?? 60_000);
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.on('error', (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ stdout: '', stderr: `${command}: ${e.message}`, code: 127 });
      });
      child.on('close', (code) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code });
      });
      child.stdin.on('error', () => {});
      child.stdin.end(options.input ?? '');
    });
  }

  /**
   * Written atomically (temp file + rename). Synchronous calls: a daemon writes many small
   * files (passkeys, scripts), and four thread-pool round trips per file cost more CPU than the
   * writes themselves.
   */
  async writeFile(file: string, content: string | Buffer, mode = 0o644): Promise<void> {
    fsSync.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fsSync.writeFileSync(tmp, content, { mode });
    fsSync.chmodSync(tmp, mode);
    fsSync.renameSync(tmp, file);
  }

  async readFile(file: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async mkdir(dir: string, mode = 0o755): Promise<void> {
    await fs.mkdir(dir, { recursive: true, mode });
  }

  async remove(p: string): Promise<void> {
    await fs.rm(p, { recursive: true, force: true });
  }

  async close(): Promise<void> {}
}
