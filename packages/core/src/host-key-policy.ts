/**
 * The one SSH host-key policy, used by every ssh2 connection Firn makes: firn-queue's remote
 * submit host, firn-dh's and the pilot's sftp:// stores, and `firn site`.
 *
 *   - The host's key is checked against an OpenSSH known_hosts file (plain and hashed
 *     `|1|salt|hmac` entries; for port 22 both `host` and `[host]:22`): the configured file,
 *     else `~/.ssh/known_hosts` as ssh itself would.
 *   - A host listed there must present a listed key, always — no setting turns that off.
 *   - A host that is not listed is refused, unless accepting unknown hosts was set explicitly
 *     (`ssh_accept_unknown_hosts = true`, `--ssh-accept-unknown-hosts`); then it is accepted
 *     with a warning naming the key's SHA-256 fingerprint (as ssh prints it), once per host.
 *
 * Imports only node built-ins and known-hosts.ts: the pilot bundle uses it.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { knownHostKeys, readKnownHosts } from './known-hosts';

export interface HostKeyPolicy {
  /** known_hosts file; default `~/.ssh/known_hosts` (a missing default file lists nothing). */
  knownHostsFile?: string;
  /** Accept a host that known_hosts does not list (explicit opt-in; default false). */
  acceptUnknown?: boolean;
}

/** What a connection needs from the policy for one host:port. */
export interface HostKeyCheck {
  /** ssh2's `hostVerifier`. */
  verify(hostKey: Buffer): boolean;
  /** Why the last `verify` refused (null when it accepted or was not called). */
  refusal(): string | null;
  /** The known_hosts file consulted. */
  readonly file: string;
}

/** `SHA256:…` as `ssh-keygen -l` prints it. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The known_hosts name of host:port (`host` for port 22, else `[host]:port`). */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * The check for one host:port. Throws (with the file's name) when an explicitly configured
 * known_hosts file cannot be read — a typo must not silently turn checking off.
 */
export function hostKeyCheck(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  warn: (message: string, meta: Record<string, unknown>) => void = () => undefined,
  home: string = os.homedir(),
): HostKeyCheck {
  const explicit = policy.knownHostsFile;
  const file = explicit ?? path.join(home, '.ssh', 'known_hosts');
  let entries: Map<string, Buffer[]>;
  try {
    entries = readKnownHosts(file);
  } catch (e) {
    if (explicit) throw e;
    entries = new Map();
  }
  const listed = knownHostKeys(entries, host, port);
  // ssh writes port 22 as `host`; some tools write `[host]:22`
  if (port === 22) listed.push(...bracketed22(entries, host));
  const name = knownHostsName(host, port);
  let why: string | null = null;
  return {
    file,
    refusal: () => why,
    verify(hostKey: Buffer): boolean {
      if (listed.length) {
        if (listed.some((k) => k.equals(hostKey))) {
          why = null;
          return true;
        }
        why = `${name} presented a key that ${file} does not list for it (${hostKeyFingerprint(hostKey)}): refused, it may not be the host you mean`;
        return false;
      }
      if (policy.acceptUnknown) {
        why = null;
        warn('ssh host not in known_hosts; accepted because accepting unknown hosts is set', { host: name, known_hosts: file, fingerprint: hostKeyFingerprint(hostKey) });
        return true;
      }
      why = `${name} is not in ${file}: refused; check its key and add it (ssh-keyscan -p ${port} ${host} >> ${file}), or set ssh_accept_unknown_hosts = true to accept unknown hosts`;
      return false;
    },
  };
}

/** Entries written as `[host]:22` (some tools do) for a port-22 host. */
function bracketed22(entries: Map<string, Buffer[]>, host: string): Buffer[] {
  const name = `[${host}]:22`;
  const out: Buffer[] = [...(entries.get(name) ?? [])];
  for (const [pattern, list] of entries) {
    if (!pattern.startsWith('|1|')) continue;
    const [, , salt = '', hash = ''] = pattern.split('|');
    if (crypto.createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash) out.push(...list);
  }
  return out;
}
