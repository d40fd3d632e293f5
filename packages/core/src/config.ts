import fs from 'node:fs';
import path from 'node:path';
import ini from 'ini';
import { ConfigError, type ValidationIssue } from './errors';
import { ajvIssues, schemaValidator } from './schemas';

export interface DbSection { url: string; pool_max: number }
export interface TraySection {
  host: string; port: number; url?: string; tls_cert?: string; tls_key?: string; token_ttl: number; body_limit: number;
  login_attempts: number; login_window: number; ldap_url?: string; ldap_bind_dn: string;
  ldap_default_role: 'admin' | 'manager' | 'viewer'; ldap_tls_ca?: string; fetch_timeout: number;
}
export interface MonSection {
  host: string; port: number; url?: string; tls_cert?: string; tls_key?: string; body_limit: number; flush_ms: number;
  max_pending: number; log_cap: number; tray_url?: string; web: boolean;
}
export interface QueueSection {
  grid?: string; plugin: 'local' | 'slurm' | 'pbs' | 'sge' | 'condor'; schedule: string; max_queued: number;
  max_submit_per_cycle: number; max_claim_per_cycle?: number; submit_dir?: string; lease_seconds: number; capabilities?: string; partition?: string;
  queue?: string; account?: string; extra_directives?: string; concurrency: number; pilot_reuse: number; pilot_idle_seconds: number; ssh_host?: string; ssh_port: number;
  ssh_user?: string; ssh_key?: string; ssh_timeout: number; ssh_known_hosts?: string; ssh_accept_unknown_hosts?: boolean;
  /** /metrics and /healthz (metrics-server.ts); unset: not served. */
  metrics_port?: number; metrics_host: string;
}
export interface DhSection {
  schedule: string; heartbeat_timeout: number; transfer_retries: number; retention_days: number; completion_hook?: string;
  blackhole_window: number; blackhole_threshold: number; blackhole_cooldown: number; batch_size: number;
  ssh_key?: string; ssh_known_hosts?: string; ssh_accept_unknown_hosts?: boolean;
  /** Comma-separated URL prefixes outputs may be delivered under (see storage-roots.ts). */
  destinations?: string;
  /** /metrics and /healthz (metrics-server.ts); unset: not served. */
  metrics_port?: number; metrics_host: string;
}
export interface SystemSection { scratch?: string; download?: string; site_temp?: string; pilot?: string; data?: string }
export interface LogSection { level: 'error' | 'warn' | 'info' | 'debug'; format: 'json' | 'text' | 'auto'; file?: string }

export interface FirnConfig {
  db: DbSection;
  tray: TraySection;
  mon: MonSection;
  queue: QueueSection;
  dh: DhSection;
  system: SystemSection;
  environment: Record<string, string>;
  log: LogSection;
}

export type RawConfig = Record<string, Record<string, unknown>>;

export const SECTIONS = ['db', 'tray', 'mon', 'queue', 'dh', 'system', 'environment', 'log'] as const;

export interface LoadConfigOptions {
  /** INI file; optional (defaults + environment alone are a valid config). */
  file?: string;
  /** Environment to read FIRN_<SECTION>_<KEY> from (pass process.env; tests pass a fake). */
  env?: Record<string, string | undefined>;
  /** Highest precedence: values from command-line flags, by section. */
  overrides?: RawConfig;
  /** Lowest precedence, above schema defaults: values a command supplies (e.g. `firn up --data`). */
  defaults?: RawConfig;
}

/** Parse an INI file into sections (throws ConfigError naming the file). */
export function readIni(file: string): RawConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  const parsed = ini.parse(text) as Record<string, unknown>;
  const out: RawConfig = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (v === null || typeof v !== 'object') {
      throw new ConfigError(`${file}: key ${JSON.stringify(k)} is outside any [section]`);
    }
    out[k] = { ...(v as Record<string, unknown>) };
  }
  return out;
}

/** FIRN_<SECTION>_<KEY>=value → {section: {key: value}} for the known sections. */
export function envOverrides(env: Record<string, string | undefined>): RawConfig {
  const out: RawConfig = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.startsWith('FIRN_')) continue;
    const rest = name.slice(5).toLowerCase();
    const section = SECTIONS.find((s) => rest.startsWith(s + '_'));
    if (!section) continue;
    const key = rest.slice(section.length + 1);
    if (!key) continue;
    // [environment] keys keep their case: FIRN_ENVIRONMENT_MY_VAR → MY_VAR
    const finalKey = section === 'environment' ? name.slice(5 + 'environment_'.length) : key;
    (out[section] ??= {})[finalKey] = value;
  }
  return out;
}

function merge(...layers: Array<RawConfig | undefined>): RawConfig {
  const out: RawConfig = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [section, values] of Object.entries(layer)) {
      if (values === undefined) continue;
      const target = (out[section] ??= {});
      for (const [k, v] of Object.entries(values)) if (v !== undefined) target[k] = v;
    }
  }
  return out;
}

/** `/queue/max_queued` → `[queue] max_queued` */
function sectionKey(p: string): string {
  const parts = p.split('/').filter(Boolean);
  if (parts.length === 0) return 'config';
  if (parts.length === 1) return `[${parts[0]}]`;
  return `[${parts[0]}] ${parts.slice(1).join('.')}`;
}

/** Validate a merged raw config, applying defaults and coercing INI strings. */
export function validateConfig(raw: RawConfig): FirnConfig {
  const data = JSON.parse(JSON.stringify(raw)) as RawConfig;
  for (const s of SECTIONS) data[s] ??= {};
  const validate = schemaValidator('config.schema.json', 'coerce');
  if (!validate(data)) {
    const issues: ValidationIssue[] = ajvIssues(validate.errors, data).map((i) => ({
      path: i.path,
      message: `${sectionKey(i.path)} ${i.message}`,
    }));
    throw new ConfigError(`invalid configuration: ${issues.map((i) => i.message).join('; ')}`, { issues });
  }
  const cfg = data as unknown as FirnConfig;
  if (!cfg.db.url) cfg.db.url = `sqlite://${path.resolve(cfg.system.data ?? 'firn-data', 'firn.sqlite')}`;
  if (cfg.tray.tls_cert && !cfg.tray.tls_key) throw new ConfigError('[tray] tls_key is required when tls_cert is set');
  if (cfg.tray.tls_key && !cfg.tray.tls_cert) throw new ConfigError('[tray] tls_cert is required when tls_key is set');
  if (cfg.mon.tls_cert && !cfg.mon.tls_key) throw new ConfigError('[mon] tls_key is required when tls_cert is set');
  if (cfg.mon.tls_key && !cfg.mon.tls_cert) throw new ConfigError('[mon] tls_cert is required when tls_key is set');
  if (cfg.queue.capabilities !== undefined) {
    try {
      const c = JSON.parse(cfg.queue.capabilities) as unknown;
      if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error('not an object');
    } catch (e) {
      throw new ConfigError(`[queue] capabilities must be a JSON object, ${(e as Error).message}`);
    }
  }
  return cfg;
}

/** defaults < INI file < FIRN_<SECTION>_<KEY> < overrides (flags). */
export function loadConfig(options: LoadConfigOptions = {}): FirnConfig {
  const fileLayer = options.file ? readIni(options.file) : undefined;
  const envLayer = envOverrides(options.env ?? {});
  const cfg = validateConfig(merge(options.defaults, fileLayer, envLayer, options.overrides));
  // relative paths in a config file are relative to the file
  if (options.file) {
    const base = path.dirname(path.resolve(options.file));
    const resolve = (p?: string) => (p && !path.isAbsolute(p) && !p.includes('://') ? path.resolve(base, p) : p);
    cfg.tray.tls_cert = resolve(cfg.tray.tls_cert);
    cfg.tray.tls_key = resolve(cfg.tray.tls_key);
    cfg.mon.tls_cert = resolve(cfg.mon.tls_cert);
    cfg.mon.tls_key = resolve(cfg.mon.tls_key);
    cfg.queue.ssh_key = resolve(cfg.queue.ssh_key);
    cfg.dh.ssh_key = resolve(cfg.dh.ssh_key);
    cfg.dh.ssh_known_hosts = resolve(cfg.dh.ssh_known_hosts);
    if (cfg.db.url.startsWith('sqlite://') && !cfg.db.url.startsWith('sqlite:///') && !cfg.db.url.includes(':memory:')) {
      cfg.db.url = `sqlite://${path.resolve(base, cfg.db.url.slice('sqlite://'.length))}`;
    }
  }
  return cfg;
}

/** URL a server is reachable at, from its section. */
export function serverUrl(s: { host: string; port: number; tls_cert?: string; url?: string }): string {
  if (s.url) return s.url;
  const host = s.host === '0.0.0.0' || s.host === '::' ? '127.0.0.1' : s.host;
  return `${s.tls_cert ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${s.port}`;
}
