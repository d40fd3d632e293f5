/**
 * How the client reaches each remote site: `sites.json` beside the client settings
 * ($FIRN_CONFIG_DIR, else $XDG_CONFIG_HOME/firn, else ~/.config/firn), mode 0600.
 *
 * Kept on the machine of the person who manages the site, not in the central database: the
 * SSH key path only means something here, and the central database URL with its password
 * (written into the site's queue config) is not something every tray admin should read.
 * The grid row in the central database holds what the scheduler needs (plugin, capabilities).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PluginName } from '@firn/queue';
import { configDir } from '../settings';

export const SITES_FILE = 'sites.json';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** Private key file on this machine; default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa (the first that exists). */
  key?: string;
  /** known_hosts file the host's key must be listed in; default: ~/.ssh/known_hosts when it lists the host. */
  known_hosts?: string;
}

export interface SiteEntry {
  name: string;
  plugin: PluginName;
  ssh: SshTarget;
  /** Directory on the site for firn-queue, the pilot, config, log and submit files ("~/" = the site user's home). */
  remote_dir: string;
  capabilities?: Record<string, unknown>;
  /** The central database as the site reaches it (mysql://user:password@host:port/db). */
  db_url?: string;
  /** firn-mon URL the site's pilots report to. */
  mon_url?: string;
  /** Command that runs Node.js for firn-queue on the site. */
  node?: string;
  /** Which pilot to install: the single executable (workers need no Node.js) or the .js bundle. */
  pilot?: 'sea' | 'bundle';
  /** More queue config values, by section ([queue] schedule, max_queued, partition, [environment] …). */
  settings?: Record<string, Record<string, string>>;
  added_at: string;
}

interface SitesFile {
  sites: Record<string, SiteEntry>;
}

function file(env: Record<string, string | undefined>): string {
  return path.join(configDir(env), SITES_FILE);
}

export function loadSites(env: Record<string, string | undefined>): Record<string, SiteEntry> {
  try {
    const data = JSON.parse(fs.readFileSync(file(env), 'utf8')) as SitesFile;
    return data && typeof data.sites === 'object' && data.sites ? data.sites : {};
  } catch {
    return {};
  }
}

/** Write atomically with mode 0600 (it may hold a database password). */
export function saveSites(env: Record<string, string | undefined>, sites: Record<string, SiteEntry>): string {
  const f = file(env);
  fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
  const tmp = `${f}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ sites }, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, f);
  return f;
}

/** `user@host[:port]` (port 22 by default; `[v6]:port` for IPv6 literals). */
export function parseSshTarget(text: string): Omit<SshTarget, 'key'> {
  const m = /^([A-Za-z0-9._][A-Za-z0-9._-]*)@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`--ssh expects user@host[:port], got ${JSON.stringify(text)}`);
  const port = m[3] === undefined ? 22 : Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`--ssh port must be 1-65535, got ${port}`);
  return { user: m[1] as string, host: (m[2] as string).replace(/^\[|\]$/g, ''), port };
}

/** The key to use: the site's, else the first default key of this user that exists. */
/**
 * The known_hosts file a site's host key is checked against: the one given to `firn site add
 * --known-hosts`, else ~/.ssh/known_hosts (as ssh would check it). A host not listed there is
 * refused (core's host-key policy).
 */
export function knownHostsFor(site: SiteEntry, env: Record<string, string | undefined>): string {
  return site.ssh.known_hosts ?? path.join(env.HOME ?? os.homedir(), '.ssh', 'known_hosts');
}

export function sshKeyFor(site: SiteEntry, env: Record<string, string | undefined>): string {
  if (site.ssh.key) return site.ssh.key;
  const home = env.HOME ?? '';
  for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const p = path.join(home, '.ssh', name);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`site ${site.name}: no --key given and no ~/.ssh/id_ed25519, id_ecdsa or id_rsa found`);
}
