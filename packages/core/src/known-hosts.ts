/**
 * OpenSSH known_hosts files: which host keys a host may present. Plain (`host`, `[host]:port`,
 * comma-separated lists) and hashed (`|1|salt|hmac`) entries; `@revoked` / `@cert-authority`
 * lines and comments are skipped (a revoked key is never accepted because it is never listed).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';

/** Entries of a known_hosts text: host pattern → base64-decoded keys. */
export function parseKnownHosts(text: string): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith('@')) continue;
    const [hosts = '', , key = ''] = l.split(/\s+/);
    if (!key) continue;
    for (const h of hosts.split(',')) out.set(h, [...(out.get(h) ?? []), Buffer.from(key, 'base64')]);
  }
  return out;
}

/** The keys listed for host:port (the name is `host` for port 22, else `[host]:port`, as ssh writes it). */
export function knownHostKeys(entries: Map<string, Buffer[]>, host: string, port: number): Buffer[] {
  const name = port === 22 ? host : `[${host}]:${port}`;
  const keys: Buffer[] = [];
  for (const [pattern, list] of entries) {
    if (pattern === name) keys.push(...list);
    else if (pattern.startsWith('|1|')) {
      const [, , salt = '', hash = ''] = pattern.split('|');
      const mac = crypto.createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
      if (mac === hash) keys.push(...list);
    }
  }
  return keys;
}

/** Read a known_hosts file (throws with the file name when it cannot be read). */
export function readKnownHosts(file: string): Map<string, Buffer[]> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read known_hosts file ${file}: ${(e as Error).message}`);
  }
  return parseKnownHosts(text);
}
