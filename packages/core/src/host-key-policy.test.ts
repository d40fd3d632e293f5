import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostKeyCheck, hostKeyFingerprint } from './host-key-policy';

const keyA = Buffer.from('host-key-a');
const keyB = Buffer.from('host-key-b');
const b64 = (k: Buffer) => k.toString('base64');
const hashed = (name: string) => {
  const salt = crypto.randomBytes(20);
  return `|1|${salt.toString('base64')}|${crypto.createHmac('sha1', salt).update(name).digest('base64')}`;
};

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-hostkey-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('the one host-key policy', () => {
  test('a listed key is accepted, another key for the same host refused, even with acceptUnknown', () => {
    const f = file('kh1', `[h]:2222 ssh-ed25519 ${b64(keyA)}\n`);
    for (const acceptUnknown of [false, true]) {
      const c = hostKeyCheck({ knownHostsFile: f, acceptUnknown }, 'h', 2222);
      expect(c.verify(keyA)).toBe(true);
      expect(c.refusal()).toBeNull();
      expect(c.verify(keyB)).toBe(false);
      expect(c.refusal()).toContain(`presented a key that ${f} does not list for it (${hostKeyFingerprint(keyB)})`);
    }
  });

  test('a host not listed is refused by default and accepted, with a warning, only when asked', () => {
    const f = file('kh2', `other ssh-ed25519 ${b64(keyA)}\n`);
    const refused = hostKeyCheck({ knownHostsFile: f }, 'h', 22);
    expect(refused.verify(keyA)).toBe(false);
    expect(refused.refusal()).toMatch(/^h is not in .*kh2: refused; .*ssh-keyscan -p 22 h.*ssh_accept_unknown_hosts/);
    const warnings: unknown[] = [];
    const accepted = hostKeyCheck({ knownHostsFile: f, acceptUnknown: true }, 'h', 22, (m, meta) => warnings.push([m, meta]));
    expect(accepted.verify(keyB)).toBe(true);
    expect(JSON.stringify(warnings)).toContain(hostKeyFingerprint(keyB));
  });

  test('hashed entries (Debian default) and `[host]:22` count for port 22; hashed for other ports', () => {
    const f = file('kh3', `${hashed('h1')} ssh-ed25519 ${b64(keyA)}\n[h2]:22 ssh-ed25519 ${b64(keyA)}\n${hashed('[h3]:2200')} ssh-ed25519 ${b64(keyB)}\n${hashed('[h4]:22')} ssh-ed25519 ${b64(keyB)}\n`);
    expect(hostKeyCheck({ knownHostsFile: f }, 'h1', 22).verify(keyA)).toBe(true);
    expect(hostKeyCheck({ knownHostsFile: f }, 'h2', 22).verify(keyA)).toBe(true);
    expect(hostKeyCheck({ knownHostsFile: f }, 'h3', 2200).verify(keyB)).toBe(true);
    expect(hostKeyCheck({ knownHostsFile: f }, 'h3', 22).verify(keyB)).toBe(false);
    expect(hostKeyCheck({ knownHostsFile: f }, 'h4', 22).verify(keyB)).toBe(true);
  });

  test('an explicit file that cannot be read is an error; a missing default ~/.ssh/known_hosts lists nothing', () => {
    expect(() => hostKeyCheck({ knownHostsFile: path.join(dir, 'nope') }, 'h', 22)).toThrow(/cannot read known_hosts file .*nope/);
    const home = fs.mkdtempSync(path.join(dir, 'home-'));
    const c = hostKeyCheck({}, 'h', 22, undefined, home);
    expect(c.file).toBe(path.join(home, '.ssh', 'known_hosts'));
    expect(c.verify(keyA)).toBe(false);
    fs.mkdirSync(path.join(home, '.ssh'));
    fs.writeFileSync(path.join(home, '.ssh', 'known_hosts'), `h ssh-ed25519 ${b64(keyA)}\n`);
    expect(hostKeyCheck({}, 'h', 22, undefined, home).verify(keyA)).toBe(true);
  });
});
