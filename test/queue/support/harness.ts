/**
 * Shared plumbing of the firn-queue integration tests: starting real services, a stand-in
 * pilot that records what the batch system ran, config files, and running the real CLI.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Db } from '@firn/core';
import { missingService, waitUntil, type DbKind } from '../../helpers/db';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
const REGISTER = path.join(__dirname, 'register.js');
const CLI = path.join(ROOT, 'packages', 'queue', 'src', 'cli.ts');

/** KEY=VALUE lines of /etc/firn-test/<file>.env (empty when missing). */
export function serviceEnv(file = 'services'): Record<string, string> {
  const out: Record<string, string> = {};
  let text = '';
  try {
    text = fs.readFileSync(`/etc/firn-test/${file}.env`, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * Run test/services/start-<name>.sh (idempotent; fast when the service runs already). A
 * service that cannot be started is missing: an error under CI (missingService).
 */
export function startService(name: string): 'ok' | 'skip' {
  const script = path.join(ROOT, 'test', 'services', `start-${name}.sh`);
  if (!fs.existsSync(script)) return missingService(name, `test/services/start-${name}.sh (not found)`);
  const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 15 * 60_000 });
  if (r.status !== 0) {
    return missingService(name, `bash test/services/start-${name}.sh (it failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')})`);
  }
  return 'ok';
}

/** A private directory; `owner` (uid) makes it usable by another account (ssh tests). */
export function tempDir(prefix: string, owner?: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  if (owner !== undefined) fs.chownSync(dir, owner, owner);
  return dir;
}

/**
 * A stand-in pilot: records its arguments, environment, and the passkey file's mode and
 * sha256 into $FIRN_TEST_RECORD/<task>.<pid>.rec, then sleeps $FIRN_TEST_SLEEP seconds and
 * while the file $FIRN_TEST_RECORD/hold exists (at most 4 min). It calls nothing.
 */
export function writeStandInPilot(dir: string): string {
  const file = path.join(dir, 'stand-in-pilot');
  fs.writeFileSync(
    file,
    `#!/bin/sh
rec=\${FIRN_TEST_RECORD:?}
task= ; pk=
prev=
for a in "$@"; do
  case $prev in --task) task=$a ;; --passkey-file) pk=$a ;; esac
  prev=$a
done
out="$rec/$task.$$.rec"
{
  for a in "$@"; do printf 'ARG %s\\n' "$a"; done
  env | sort | sed 's/^/ENV /'
  printf 'PASSKEY_MODE %s\\n' "$(stat -c %a "$pk" 2>/dev/null)"
  printf 'PASSKEY_SHA %s\\n' "$(sha256sum < "$pk" 2>/dev/null | cut -d' ' -f1)"
  printf 'USER %s\\n' "$(id -un)"
} > "$out.tmp" && mv "$out.tmp" "$out"
if [ -n "$FIRN_TEST_SLEEP" ]; then sleep "$FIRN_TEST_SLEEP"; fi
n=0
while [ -e "$rec/hold" ] && [ $n -lt 480 ]; do sleep 0.5; n=$((n + 1)); done
exit 0
`,
    { mode: 0o755 },
  );
  return file;
}

export interface PilotRecord {
  task: number;
  /** pid of the stand-in (its file is <task>.<pid>.rec) */
  pid: number;
  args: string[];
  env: Record<string, string>;
  passkeyMode: string;
  passkeySha: string;
  user: string;
}

export function readRecords(dir: string): PilotRecord[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.rec')).map((f) => {
    const rec: PilotRecord = { task: Number(f.split('.')[0]), pid: Number(f.split('.')[1]), args: [], env: {}, passkeyMode: '', passkeySha: '', user: '' };
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const sp = line.indexOf(' ');
      const [k, v] = sp < 0 ? [line, ''] : [line.slice(0, sp), line.slice(sp + 1)];
      if (k === 'ARG') rec.args.push(v);
      else if (k === 'ENV') {
        const eq = v.indexOf('=');
        if (eq > 0) rec.env[v.slice(0, eq)] = v.slice(eq + 1);
      } else if (k === 'PASSKEY_MODE') rec.passkeyMode = v;
      else if (k === 'PASSKEY_SHA') rec.passkeySha = v;
      else if (k === 'USER') rec.user = v;
    }
    return rec;
  });
}

/** Records per task id. */
export function recordsByTask(dir: string): Map<number, PilotRecord[]> {
  const out = new Map<number, PilotRecord[]>();
  for (const r of readRecords(dir)) out.set(r.task, [...(out.get(r.task) ?? []), r]);
  return out;
}

/** Write an INI file from sections. */
export function writeIni(file: string, sections: Record<string, Record<string, string | number | undefined>>): string {
  const text = Object.entries(sections)
    .map(([name, values]) => `[${name}]\n${Object.entries(values).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} = ${String(v)}`).join('\n')}\n`)
    .join('\n');
  fs.writeFileSync(file, text);
  return file;
}

/**
 * Start task ids at a random high base, so that concurrently running test files (each with
 * its own database, all submitting to the same batch system as the same user) never use
 * the same job names `firn-<taskId>`. Give `base` to make two databases use the same ids
 * (two Firn instances sharing a batch account).
 */
export async function randomTaskIdBase(db: Db, kind: DbKind, base: number = 1_000_000 + crypto.randomInt(0, 2_000_000) * 100): Promise<number> {
  if (kind === 'mariadb') await db.raw('ALTER TABLE task AUTO_INCREMENT = ?', [base]);
  else {
    await db('sqlite_sequence').where('name', 'task').delete();
    await db('sqlite_sequence').insert({ name: 'task', seq: base - 1 });
  }
  return base;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The real firn-queue CLI (TypeScript sources, no build needed) as a child process. */
export function spawnQueue(args: string[], env: Record<string, string | undefined> = {}): ChildProcess & { output: () => CliResult; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ['-r', REGISTER, CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: () => CliResult; done: Promise<CliResult> };
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.output = () => ({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
  child.done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return child;
}

export async function runQueue(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 120_000): Promise<CliResult> {
  const child = spawnQueue(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const r = await child.done;
  clearTimeout(timer);
  return r;
}

/** Run a command, throwing with its output when it fails. */
export function sh(command: string, args: string[], env?: Record<string, string>): string {
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Is this process alive? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL the process groups of the stand-in pilots recorded in `dir` (local-plugin jobs still running). */
export function killRecordedPilots(dir: string): void {
  const own = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2];
  for (const r of readRecords(dir)) {
    let pgrp: string | undefined;
    try {
      pgrp = fs.readFileSync(`/proc/${r.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[2];
    } catch {
      continue; // gone
    }
    try {
      if (pgrp && pgrp !== own && Number(pgrp) > 1) process.kill(-Number(pgrp), 'SIGKILL');
      else process.kill(r.pid, 'SIGKILL');
    } catch {
      /* raced with its exit */
    }
  }
}

export { waitUntil };
