/**
 * firn-queue's ssh2 executor checks the submit host's key against [queue] ssh_known_hosts,
 * on the real sshd of test/services (127.0.0.1:2222, user firnsite): a listed key (plain or
 * hashed entry) connects; a host that is not listed or that presents another key is refused
 * before any command runs, with a message that says which.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SshExecutor, knownHostKeys, parseKnownHosts } from '@firn/core';
import { serviceEnv, startService } from './support/harness';

let available = true;
let dir: string;
let ssh: Record<string, string>;

beforeAll(() => {
  if (startService('sshd') === 'skip') available = false;
  ssh = serviceEnv('services');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-ssh-keys-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const executors: SshExecutor[] = [];
afterEach(async () => {
  for (const e of executors.splice(0)) await e.close();
});

function executor(knownHostsFile?: string, acceptUnknownHosts = false, homeDir?: string): SshExecutor {
  const e = new SshExecutor({
    ...(homeDir ? { homeDir } : {}),
    ...(acceptUnknownHosts ? { acceptUnknownHosts } : {}),
    host: ssh.SSH_HOST ?? '127.0.0.1',
    port: Number(ssh.SSH_PORT ?? 2222),
    username: ssh.SSH_USER ?? 'firnsite',
    privateKeyPath: ssh.SSH_KEY ?? '/etc/firn-test/ssh/id_ed25519',
    timeoutMs: 10_000,
    ...(knownHostsFile ? { knownHostsFile } : {}),
  });
  executors.push(e);
  return e;
}

/** The real known_hosts line of the test sshd. */
function realEntry(): { name: string; type: string; key: string } {
  const line = fs.readFileSync(ssh.SSH_KNOWN_HOSTS ?? '/etc/firn-test/ssh/known_hosts', 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('#'))!;
  const [name = '', type = '', key = ''] = line.trim().split(/\s+/);
  return { name, type, key };
}

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('ssh executor host key checks against a real sshd', () => {
  test('the key listed for [host]:port connects; a plain and a hashed entry both count', async () => {
    if (!available) return;
    const { name, type, key } = realEntry();
    expect(name).toBe(`[${ssh.SSH_HOST ?? '127.0.0.1'}]:${ssh.SSH_PORT ?? 2222}`);
    const plain = await executor(write('plain', `# comment\nother.example ${type} ${key}\n${name} ${type} ${key}\n`)).exec('echo', ['plain ok']);
    expect(plain).toMatchObject({ code: 0, stdout: 'plain ok\n' });
    const salt = crypto.randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${crypto.createHmac('sha1', salt).update(name).digest('base64')}`;
    const r = await executor(write('hashed', `${hashed} ${type} ${key}\n`)).exec('echo', ['hashed ok']);
    expect(r).toMatchObject({ code: 0, stdout: 'hashed ok\n' });
  });

  test('a host not in the file, and a host presenting another key, are refused before any command runs', async () => {
    if (!available) return;
    const { name, type, key } = realEntry();
    const marker = path.join(os.tmpdir(), `firn-ssh-marker-${process.pid}`);
    fs.rmSync(marker, { force: true });
    const notListed = write('not-listed', `[127.0.0.1]:2223 ${type} ${key}\n`);
    await expect(executor(notListed).exec('touch', [marker])).rejects.toThrow(new RegExp(`\\[127\\.0\\.0\\.1\\]:${ssh.SSH_PORT ?? 2222} is not in ${notListed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*ssh-keyscan`));
    // another ed25519 key under the right name: a host that is not the one we know
    const other = crypto.generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), other]);
    const wrong = write('wrong', `${name} ssh-ed25519 ${blob.toString('base64')}\n`);
    await expect(executor(wrong).exec('touch', [marker])).rejects.toThrow(/presented a key that .*wrong does not list for it/);
    expect(fs.existsSync(marker)).toBe(false);
    const unreadable = path.join(dir, 'missing');
    await expect(executor(unreadable).exec('true', [])).rejects.toThrow(/cannot read known_hosts file .*missing/);
  });
});

describe('host keys are checked by default; accepting an unknown host is explicit', () => {
  let home: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(dir, 'home-')); // an empty ~/.ssh: nothing is known
  });

  test('without ssh_known_hosts, ~/.ssh/known_hosts is used: an unlisted host is refused before any command runs', async () => {
    if (!available) return;
    const marker = path.join(os.tmpdir(), `firn-ssh-default-${process.pid}`);
    fs.rmSync(marker, { force: true });
    await expect(executor(undefined, false, home).exec('touch', [marker])).rejects.toThrow(/is not in .*\.ssh\/known_hosts: refused/);
    expect(fs.existsSync(marker)).toBe(false);
    // listed in ~/.ssh/known_hosts: connects with no setting at all
    const { name, type, key } = realEntry();
    fs.mkdirSync(path.join(home, '.ssh'));
    fs.writeFileSync(path.join(home, '.ssh', 'known_hosts'), `${name} ${type} ${key}\n`);
    expect(await executor(undefined, false, home).exec('echo', ['default ok'])).toMatchObject({ code: 0, stdout: 'default ok\n' });
  });

  test('acceptUnknownHosts connects to an unlisted host, but never to a listed host presenting another key', async () => {
    if (!available) return;
    expect(await executor(undefined, true, home).exec('echo', ['accepted'])).toMatchObject({ code: 0, stdout: 'accepted\n' });
    const { name } = realEntry();
    const other = crypto.generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), other]);
    const wrong = write('wrong-accept', `${name} ssh-ed25519 ${blob.toString('base64')}\n`);
    await expect(executor(wrong, true).exec('true', [])).rejects.toThrow(/presented a key that .*wrong-accept does not list for it/);
  });
});

describe('known_hosts parsing', () => {
  test('plain, bracketed, comma lists, hashed; comments and @ markers skipped', () => {
    const k = Buffer.from('key-a').toString('base64');
    const salt = Buffer.from('0123456789abcdefghij');
    const hashed = `|1|${salt.toString('base64')}|${crypto.createHmac('sha1', salt).update('h3').digest('base64')}`;
    const entries = parseKnownHosts(`# c\nh1,[h2]:2222 ssh-ed25519 ${k}\n@revoked h4 ssh-ed25519 ${k}\n${hashed} ssh-ed25519 ${k}\nbroken-line\n`);
    expect(knownHostKeys(entries, 'h1', 22).map(String)).toEqual(['key-a']);
    expect(knownHostKeys(entries, 'h2', 2222).map(String)).toEqual(['key-a']);
    expect(knownHostKeys(entries, 'h2', 22)).toEqual([]);
    expect(knownHostKeys(entries, 'h3', 22).map(String)).toEqual(['key-a']);
    expect(knownHostKeys(entries, 'h4', 22)).toEqual([]);
  });
});
