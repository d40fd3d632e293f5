/**
 * A remote site over SSH (ssh2 through @firn/core's SshExecutor): install firn-queue and the
 * pilot there, and drive the control script that starts, stops and watches the daemon.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SshExecutor, findSchemasDir, type ExecResult } from '@firn/core';
import { pilotCommandOf, shellQuote } from '@firn/queue';
import { pilotDistDirs, seaIsCurrent } from '../unmonitored/pilot-command';
import { CTL_SCRIPT, QUEUE_BUNDLE, QUEUE_INI, renderCtlScript, renderQueueIni } from './remote-files';
import { knownHostsFor, sshKeyFor, type SiteEntry } from './sites-file';

/** The firn-queue bundle built by `npm run bundle -w @firn/queue` (part of `npm run build`). */
export function queueBundlePath(): string | null {
  const candidates = [path.resolve(__dirname, '..', '..', '..', 'queue', 'dist', QUEUE_BUNDLE)];
  try {
    candidates.push(path.join(path.dirname(require.resolve('@firn/queue/package.json')), 'dist', QUEUE_BUNDLE));
  } catch {
    /* not installed */
  }
  return candidates.find((p) => fs.existsSync(p)) ?? null;
}

/** The pilot to install: the single executable when asked for (or by default when it is built and current), else the bundle. */
export function pilotArtifact(kind: 'sea' | 'bundle' | undefined): { kind: 'sea' | 'bundle'; file: string } {
  for (const dist of pilotDistDirs()) {
    const sea = path.join(dist, 'firn-pilot');
    const bundle = path.join(dist, 'firn-pilot.js');
    if (kind !== 'bundle' && fs.existsSync(sea) && seaIsCurrent(dist)) return { kind: 'sea', file: sea };
    if (kind !== 'sea' && fs.existsSync(bundle)) return { kind: 'bundle', file: bundle };
  }
  throw new Error(kind === 'sea'
    ? 'the single-executable pilot (packages/pilot/dist/firn-pilot) is not built or out of date: npm run build'
    : 'the pilot bundle (packages/pilot/dist/firn-pilot.js) is not built: npm run build');
}

/** Files up to this size go in one shell script rather than one sftp upload each. */
const SMALL_FILE = 256 * 1024;

function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export interface InstallOptions {
  dbUrl: string;
  monUrl: string;
  pilot?: 'sea' | 'bundle';
  /** Progress lines for people. */
  say?: (line: string) => void;
}

export interface InstallResult {
  remoteDir: string;
  pilot: string;
  uploaded: string[];
  unchanged: string[];
  check: string;
}

export class RemoteSite {
  private readonly exec: SshExecutor;
  private dir: string | null = null;

  constructor(
    readonly site: SiteEntry,
    env: Record<string, string | undefined>,
  ) {
    const knownHostsFile = knownHostsFor(site, env);
    this.exec = new SshExecutor({
      host: site.ssh.host,
      port: site.ssh.port,
      username: site.ssh.user,
      privateKeyPath: sshKeyFor(site, env),
      timeoutMs: 30_000,
      knownHostsFile,
    });
  }

  get description(): string {
    return this.exec.description;
  }

  async run(command: string, args: string[], timeoutMs = 120_000): Promise<ExecResult> {
    return this.exec.exec(command, args, { timeoutMs });
  }

  /** remote_dir with a leading `~/` replaced by the site user's home. */
  async remoteDir(): Promise<string> {
    if (this.dir) return this.dir;
    const d = this.site.remote_dir;
    if (d === '~' || d.startsWith('~/')) {
      const r = await this.run('sh', ['-c', 'printf %s "$HOME"']);
      const home = r.stdout.trim();
      if (r.code !== 0 || !home.startsWith('/')) throw new Error(`cannot find the home directory of ${this.description}: ${r.stderr.trim()}`);
      this.dir = d === '~' ? home : path.posix.join(home, d.slice(2));
    } else {
      if (!d.startsWith('/')) throw new Error(`remote_dir must be absolute or start with ~/, got ${JSON.stringify(d)}`);
      this.dir = d;
    }
    return this.dir;
  }

  /** sha256 of remote files (one round trip); files that are not there are left out. */
  private async remoteSha256(files: string[]): Promise<Map<string, string>> {
    const r = await this.run('sh', ['-c', 'for f; do [ -f "$f" ] && sha256sum -- "$f"; done; true', 'sh', ...files]);
    const out = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
      if (m) out.set(m[2] as string, m[1] as string);
    }
    return out;
  }

  /**
   * Upload files unless the site has them already (same sha256): large ones over sftp, the
   * small ones (schemas) together in one shell script (base64 here-documents), so an install
   * costs a few round trips rather than several per file.
   */
  private async uploadAll(files: Array<{ local: string; remote: string; mode: number }>, result: InstallResult): Promise<void> {
    const have = await this.remoteSha256(files.map((f) => f.remote));
    const small: string[] = [];
    for (const f of files) {
      if (have.get(f.remote) === sha256File(f.local)) {
        result.unchanged.push(f.remote);
        continue;
      }
      const data = fs.readFileSync(f.local);
      if (data.length > SMALL_FILE) await this.exec.writeFile(f.remote, data, f.mode);
      else small.push(`put ${shellQuote(f.remote)} ${f.mode.toString(8)} <<'FIRN_EOF'\n${data.toString('base64').replace(/.{1,76}/g, '$&\n')}FIRN_EOF`);
      result.uploaded.push(f.remote);
    }
    if (small.length === 0) return;
    const script = [
      'set -e',
      'put() { mkdir -p "${1%/*}"; base64 -d >"$1.firn-tmp"; chmod "$2" "$1.firn-tmp"; mv -f "$1.firn-tmp" "$1"; }',
      ...small,
      '',
    ].join('\n');
    const r = await this.exec.exec('sh', ['-s'], { input: script, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`cannot write files on ${this.description}: ${r.stderr.trim()}`);
  }

  async install(o: InstallOptions): Promise<InstallResult> {
    const say = o.say ?? (() => undefined);
    const queue = queueBundlePath();
    if (!queue) throw new Error('the firn-queue bundle (packages/queue/dist/firn-queue.js) is not built: npm run build');
    const pilot = pilotArtifact(o.pilot ?? this.site.pilot);
    const dir = await this.remoteDir();
    await this.exec.mkdir(dir, 0o700);
    const result: InstallResult = { remoteDir: dir, pilot: '', uploaded: [], unchanged: [], check: '' };

    say(`installing into ${this.description}${dir}`);
    const pilotName = pilot.kind === 'sea' ? 'firn-pilot' : 'firn-pilot.js';
    const files = [
      { local: queue, remote: `${dir}/${QUEUE_BUNDLE}`, mode: 0o644 },
      { local: pilot.file, remote: `${dir}/${pilotName}`, mode: 0o755 },
    ];
    const schemas = findSchemasDir();
    for (const f of fs.readdirSync(schemas, { recursive: true }) as string[]) {
      const local = path.join(schemas, f);
      if (f.endsWith('.json') && fs.statSync(local).isFile()) files.push({ local, remote: `${dir}/schemas/${f.split(path.sep).join('/')}`, mode: 0o644 });
    }
    await this.uploadAll(files, result);

    const node = this.site.node ?? 'node';
    // the executable runs as it is; the bundle needs Node.js on the worker nodes
    result.pilot = pilot.kind === 'sea' ? `${dir}/firn-pilot` : node === 'node' ? pilotCommandOf(`${dir}/firn-pilot.js`) : `${node} ${dir}/firn-pilot.js`;
    const ini = renderQueueIni({ site: this.site, remoteDir: dir, dbUrl: o.dbUrl, monUrl: o.monUrl, pilot: result.pilot, writtenAt: new Date().toISOString() });
    await this.exec.writeFile(`${dir}/${QUEUE_INI}`, ini, 0o600);
    await this.exec.writeFile(`${dir}/${CTL_SCRIPT}`, renderCtlScript({ site: this.site.name, remoteDir: dir, node }), 0o755);
    result.uploaded.push(`${dir}/${QUEUE_INI}`, `${dir}/${CTL_SCRIPT}`);

    const check = await this.ctl(['check']);
    result.check = (check.stdout + check.stderr).trim();
    if (check.code !== 0) throw new Error(`installed, but firn-queue rejects its configuration on ${this.site.name}: ${result.check}`);
    return result;
  }

  /** Run the control script; a missing script means the site was never installed. */
  async ctl(args: string[], timeoutMs = 180_000): Promise<ExecResult> {
    const dir = await this.remoteDir();
    const r = await this.run('/bin/sh', [`${dir}/${CTL_SCRIPT}`, ...args], timeoutMs);
    if (r.code === 127 || (/No such file/.test(r.stderr) && r.stderr.includes(CTL_SCRIPT))) {
      throw new Error(`site ${this.site.name} is not installed (${dir}/${CTL_SCRIPT} is missing): run firn site install ${this.site.name}`);
    }
    return r;
  }

  async close(): Promise<void> {
    await this.exec.close();
  }
}
