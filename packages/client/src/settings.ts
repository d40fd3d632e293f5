import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Where the CLI keeps the server URL and the login token: $FIRN_CONFIG_DIR, else
 * $XDG_CONFIG_HOME/firn, else ~/.config/firn. The directory is 0700 and the file 0600.
 */
export interface ClientSettings {
  url?: string;
  token?: string;
  username?: string;
  /** ISO time the token expires. */
  expires?: string;
  /** PEM CA file trusted for the server's certificate. */
  ca?: string;
  /** Accept any server certificate (explicit opt-in with --insecure at login). */
  insecure?: boolean;
}

export const SETTINGS_FILE = 'client.json';
export const HISTORY_FILE = 'history';

export function configDir(env: Record<string, string | undefined>): string {
  if (env.FIRN_CONFIG_DIR) return path.resolve(env.FIRN_CONFIG_DIR);
  const base = env.XDG_CONFIG_HOME ? path.resolve(env.XDG_CONFIG_HOME) : path.join(env.HOME ?? os.homedir(), '.config');
  return path.join(base, 'firn');
}

export function loadSettings(env: Record<string, string | undefined>): ClientSettings {
  const file = path.join(configDir(env), SETTINGS_FILE);
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return data && typeof data === 'object' && !Array.isArray(data) ? (data as ClientSettings) : {};
  } catch {
    return {};
  }
}

/** Write atomically with mode 0600 (the token is a secret). */
export function saveSettings(env: Record<string, string | undefined>, settings: ClientSettings): string {
  const dir = configDir(env);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, SETTINGS_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(settings, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
  return file;
}
