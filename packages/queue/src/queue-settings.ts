/**
 * What firn-queue needs from the configuration, checked up front with messages that name
 * the key: the grid, the schedule, limits, where to submit from (local or ssh), and the
 * options every batch-system plugin gets (pilot command, mon URL, [environment], …).
 */
import fs from 'node:fs';
import path from 'node:path';
import cron from 'node-cron';
import {
  ConfigError,
  LocalExecutor,
  SshExecutor,
  ValidationError,
  parseCapabilities,
  serverUrl,
  type Executor,
  type FirnConfig,
  type GridCapabilities,
  type Logger,
} from '@firn/core';
import type { PluginOptions } from './plugins/plugin';

type PluginName = FirnConfig['queue']['plugin'];

export interface SshSettings {
  host: string;
  port: number;
  user: string;
  keyFile: string;
  timeoutMs: number;
  /** [queue] ssh_known_hosts (default ~/.ssh/known_hosts): the host's key must be listed there. */
  knownHostsFile?: string;
  /** [queue] ssh_accept_unknown_hosts: accept a host the file does not list, with a warning. */
  acceptUnknownHosts?: boolean;
}

export interface QueueSettings {
  grid: string;
  plugin: PluginName;
  schedule: string;
  maxQueued: number;
  /** [queue] max_submit_per_cycle: the most tasks one claim round (one claimTasks call, then its submissions) takes. */
  maxSubmitPerCycle: number;
  /** [queue] max_claim_per_cycle: the most tasks one cycle claims over all its rounds (absent: max_queued, i.e. every free slot). */
  maxClaimPerCycle?: number;
  leaseMs: number;
  /** Directory on the submit host for scripts, passkeys and batch logs (absolute). */
  submitDir: string;
  /** From `[queue] capabilities` when given (then they are written to the grid row on start). */
  capabilities?: GridCapabilities;
  /** Set when `[queue] ssh_host` is: the batch commands run on that host. */
  ssh?: SshSettings;
  pluginOptions: PluginOptions;
}

/**
 * `node <…/packages/pilot/dist/firn-pilot.js>` when the bundled pilot is installed next to
 * this package (a workspace checkout or a full install), else null.
 */
export function defaultPilotCommand(): string | null {
  const candidates = [path.resolve(__dirname, '..', '..', 'pilot', 'dist', 'firn-pilot.js')];
  try {
    candidates.push(require.resolve('@firn/pilot/dist/firn-pilot.js'));
  } catch {
    /* not installed */
  }
  const found = candidates.find((p) => fs.existsSync(p));
  return found ? `node ${found}` : null;
}

/**
 * `[system] pilot` as a command line: a single path ending in `.js` (the one-file bundle) is
 * run with `node`; anything else (the single executable `firn-pilot`, `node /x/firn-pilot.js`,
 * a wrapper script) is used as written.
 */
export function pilotCommandOf(pilot: string): string {
  const p = pilot.trim();
  return /^[^\s'"]+\.js$/.test(p) ? `node ${p}` : p;
}

/** Validate and resolve the queue daemon's settings (throws ConfigError naming the key). */
export function queueSettings(cfg: FirnConfig): QueueSettings {
  const q = cfg.queue;
  if (!q.grid || !q.grid.trim()) throw new ConfigError('[queue] grid is required (the name of this site)');
  const grid = q.grid.trim();
  if (!cron.validate(q.schedule)) throw new ConfigError(`[queue] schedule is not a valid cron expression: ${JSON.stringify(q.schedule)}`);

  let capabilities: GridCapabilities | undefined;
  if (q.capabilities !== undefined) {
    try {
      capabilities = parseCapabilities(q.capabilities);
    } catch (e) {
      throw new ConfigError(`[queue] capabilities: ${(e as ValidationError).message}`);
    }
  }

  let ssh: SshSettings | undefined;
  if (q.ssh_host) {
    if (!q.ssh_user) throw new ConfigError('[queue] ssh_user is required when ssh_host is set');
    if (!q.ssh_key) throw new ConfigError('[queue] ssh_key (a private key file) is required when ssh_host is set');
    try {
      fs.accessSync(q.ssh_key, fs.constants.R_OK);
    } catch {
      throw new ConfigError(`[queue] ssh_key ${q.ssh_key} is not a readable file`);
    }
    if (q.ssh_known_hosts) {
      try {
        fs.accessSync(q.ssh_known_hosts, fs.constants.R_OK);
      } catch {
        throw new ConfigError(`[queue] ssh_known_hosts ${q.ssh_known_hosts} is not a readable file`);
      }
    }
    ssh = {
      host: q.ssh_host, port: q.ssh_port, user: q.ssh_user, keyFile: q.ssh_key, timeoutMs: q.ssh_timeout * 1000,
      ...(q.ssh_known_hosts ? { knownHostsFile: q.ssh_known_hosts } : {}),
      ...(q.ssh_accept_unknown_hosts ? { acceptUnknownHosts: true } : {}),
    };
  }

  let submitDir: string;
  if (ssh) {
    if (!q.submit_dir || !path.posix.isAbsolute(q.submit_dir)) {
      throw new ConfigError('[queue] submit_dir must be an absolute path on the submit host when ssh_host is set');
    }
    submitDir = q.submit_dir;
  } else {
    submitDir = path.resolve(q.submit_dir ?? path.join(cfg.system.data ?? 'firn-data', 'queue', grid));
  }

  const pilotCommand = cfg.system.pilot ? pilotCommandOf(cfg.system.pilot) : ssh ? null : defaultPilotCommand();
  if (!pilotCommand) {
    throw new ConfigError(
      ssh
        ? '[system] pilot is required when ssh_host is set (the pilot command as the worker nodes see it)'
        : '[system] pilot is not set and no bundled pilot was found (build @firn/pilot or set [system] pilot)',
    );
  }

  const extraDirectives = (q.extra_directives ?? '')
    .split(/[;\n]/)
    .map((s) => s.trim())
    .filter(Boolean);

  return {
    grid,
    plugin: q.plugin,
    schedule: q.schedule,
    maxQueued: q.max_queued,
    maxSubmitPerCycle: q.max_submit_per_cycle,
    maxClaimPerCycle: q.max_claim_per_cycle ?? q.max_queued,
    leaseMs: q.lease_seconds * 1000,
    submitDir,
    capabilities,
    ssh,
    pluginOptions: {
      grid,
      monUrl: serverUrl(cfg.mon),
      pilotCommand,
      scratch: cfg.system.scratch,
      environment: { ...cfg.environment },
      partition: q.partition,
      queue: q.queue,
      account: q.account,
      extraDirectives,
      concurrency: q.concurrency,
      pilotReuse: q.pilot_reuse,
      pilotIdleSeconds: q.pilot_idle_seconds,
      startAfterSubmitted: true,
      submitDir,
    },
  };
}

/** The executor batch commands run through: ssh2 to `[queue] ssh_host`, else this host. */
export function createExecutor(settings: QueueSettings, logger: Logger, env: Record<string, string | undefined> = process.env): Executor {
  if (!settings.ssh) return new LocalExecutor(env);
  return new SshExecutor({
    host: settings.ssh.host,
    port: settings.ssh.port,
    username: settings.ssh.user,
    privateKeyPath: settings.ssh.keyFile,
    timeoutMs: settings.ssh.timeoutMs,
    ...(settings.ssh.knownHostsFile ? { knownHostsFile: settings.ssh.knownHostsFile } : {}),
    ...(settings.ssh.acceptUnknownHosts ? { acceptUnknownHosts: true } : {}),
    ...(env.HOME ? { homeDir: env.HOME } : {}),
    logger,
  });
}
