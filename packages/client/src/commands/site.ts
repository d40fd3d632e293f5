import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { RpcError, RpcErrorCode } from '@firn/core';
import { PLUGIN_NAMES, type PluginName } from '@firn/queue';
import { call, contextOf, output, parseIntArg, print } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { table, time } from '../output';
import { RemoteSite } from '../site/remote-site';
import { loadSites, parseSshTarget, saveSites, type SiteEntry } from '../site/sites-file';

interface GridInfo { id: number; name: string; plugin: string; capabilities: Record<string, unknown>; status: string; last_seen_at: number | null }

const HELP = `
A site is a grid (registered in firn-tray) plus how to reach its submit host over SSH. The
connection details stay on this machine (sites.json beside the client settings, mode 0600);
the grid row holds the plugin and capabilities. \`install\` copies the one-file firn-queue,
the pilot (the single executable unless --pilot bundle), the JSON Schemas, a generated
queue.ini and a control script into the site's directory (default ~/firn); \`start\` runs
firn-queue there detached (setsid/nohup, pid file, log file) and \`stop\` sends SIGTERM.
A file env.sh in that directory, if you create one, is sourced before starting (PATH …).

Examples:
  firn site add cluster-a --ssh prod@login.cluster-a.org --key ~/.ssh/firn --plugin slurm \\
      --capabilities '{"cpu": 8, "memory": 16000, "time": 1440}' --mon-url https://mon.example.org:8581
  FIRN_SITE_DB_URL=mysql://site_a:secret@db.example.org:3306/firn firn site install cluster-a
  firn site start cluster-a; firn site status cluster-a; firn site logs cluster-a -n 100`;

function collectSet(value: string, previous: Record<string, Record<string, string>> = {}): Record<string, Record<string, string>> {
  const m = /^([a-z]+)\.([A-Za-z0-9_]+)=(.*)$/s.exec(value);
  if (!m) throw new CliError(`--set expects section.key=value (e.g. queue.max_queued=200), got ${JSON.stringify(value)}`, ExitCode.USAGE);
  const [, section, key, v] = m as unknown as [string, string, string, string];
  return { ...previous, [section]: { ...previous[section], [key]: v } };
}

function parseJsonObject(flag: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CliError(`${flag} is not JSON: ${(e as Error).message}`, ExitCode.USAGE);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CliError(`${flag} must be a JSON object`, ExitCode.USAGE);
  return v as Record<string, unknown>;
}

function siteOf(cmd: Command, name: string): SiteEntry {
  const site = loadSites(contextOf(cmd).io.env)[name];
  if (!site) throw new CliError(`no site ${JSON.stringify(name)} on this machine (firn site ls; firn site add)`, ExitCode.NOT_FOUND);
  return site;
}

async function withSite<T>(cmd: Command, name: string, fn: (remote: RemoteSite, site: SiteEntry) => Promise<T>): Promise<T> {
  const site = siteOf(cmd, name);
  const remote = new RemoteSite(site, contextOf(cmd).io.env);
  try {
    return await fn(remote, site);
  } finally {
    await remote.close();
  }
}

/** The grid row from firn-tray, or null (with the reason) when the tray cannot say. */
async function gridInfo(cmd: Command, name: string): Promise<{ grid: GridInfo | null; error?: string }> {
  try {
    const { grids } = await call<{ grids: GridInfo[] }>(cmd, 'grid.list');
    return { grid: grids.find((g) => g.name === name) ?? null };
  } catch (e) {
    return { grid: null, error: (e as Error).message };
  }
}

function ago(ms: number | null | undefined): string {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return `${time(ms)} (${s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`} ago)`;
}

function removeConflict(e: unknown): boolean {
  return e instanceof RpcError && e.code === RpcErrorCode.CONFLICT;
}

/** firn site add | ls | install | start | stop | status | logs | rm */
export function register(program: Command): void {
  const site = program.command('site').description('remote sites: a grid plus its firn-queue, installed and run over SSH').addHelpText('after', HELP);

  site
    .command('add')
    .description('register a grid (admin) and remember how to reach its submit host')
    .argument('<name>', 'site (grid) name')
    .requiredOption('--ssh <user@host[:port]>', 'SSH login on the submit host')
    .option('--key <file>', 'SSH private key (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa)')
    .option('--known-hosts <file>', 'known_hosts file that must list the host\'s key (default ~/.ssh/known_hosts when it lists the host)')
    .addOption(new Option('--plugin <plugin>', 'batch system at the site').choices([...PLUGIN_NAMES]).makeOptionMandatory())
    .option('--capabilities <json>', 'what one slot offers: {"cpu": 8, "gpu": 0, "memory": 16000, "disk": 50000, "time": 1440, "site": "X"}')
    .option('--remote-dir <dir>', 'directory on the site', '~/firn')
    .option('--db-url <url>', 'the central database as the site reaches it (stored 0600; or FIRN_SITE_DB_URL at install)')
    .option('--mon-url <url>', 'firn-mon URL the site\'s pilots report to')
    .option('--node <command>', 'Node.js on the site, for firn-queue', 'node')
    .addOption(new Option('--pilot <kind>', 'pilot to install: the single executable, or the .js bundle (needs node on workers)').choices(['sea', 'bundle']))
    .option('--set <section.key=value>', 'another queue config value (repeat), e.g. queue.max_queued=500', collectSet)
    .option('--existing', 'the grid is registered already: only record how to reach it')
    .action(async (name: string, o: Record<string, any>, cmd: Command) => {
      const { io } = contextOf(cmd);
      let ssh;
      try {
        ssh = parseSshTarget(o.ssh as string);
      } catch (e) {
        throw new CliError((e as Error).message, ExitCode.USAGE);
      }
      const key = o.key ? path.resolve(o.key as string) : undefined;
      if (key) {
        try {
          fs.accessSync(key, fs.constants.R_OK);
        } catch {
          throw new CliError(`--key ${key} is not a readable file`, ExitCode.USAGE);
        }
      }
      const knownHosts = o.knownHosts ? path.resolve(o.knownHosts as string) : undefined;
      if (knownHosts) {
        try {
          fs.accessSync(knownHosts, fs.constants.R_OK);
        } catch {
          throw new CliError(`--known-hosts ${knownHosts} is not a readable file`, ExitCode.USAGE);
        }
      }
      const sites = loadSites(io.env);
      if (sites[name] && !o.existing) throw new CliError(`site ${name} is already on this machine (firn site rm ${name}, or add --existing to replace how it is reached)`, ExitCode.CONFLICT);
      const capabilities = o.capabilities ? parseJsonObject('--capabilities', o.capabilities as string) : undefined;
      let grid: GridInfo | null = null;
      if (!o.existing) {
        try {
          grid = (await call<{ grid: GridInfo }>(cmd, 'grid.add', { name, plugin: o.plugin, ...(capabilities ? { capabilities } : {}) })).grid;
        } catch (e) {
          if (removeConflict(e)) throw new CliError(`grid ${name} exists already; add --existing to use it for this site`, ExitCode.CONFLICT);
          throw e;
        }
      }
      const entry: SiteEntry = {
        name,
        plugin: o.plugin as PluginName,
        ssh: { ...ssh, ...(key ? { key } : {}), ...(knownHosts ? { known_hosts: knownHosts } : {}) },
        remote_dir: o.remoteDir as string,
        ...(capabilities ? { capabilities } : {}),
        ...(o.dbUrl ? { db_url: o.dbUrl as string } : {}),
        ...(o.monUrl ? { mon_url: o.monUrl as string } : {}),
        ...(o.node && o.node !== 'node' ? { node: o.node as string } : {}),
        ...(o.pilot ? { pilot: o.pilot as 'sea' | 'bundle' } : {}),
        ...(o.set ? { settings: o.set as Record<string, Record<string, string>> } : {}),
        added_at: new Date().toISOString(),
      };
      saveSites(io.env, { ...sites, [name]: entry });
      const { db_url: _secret, ...shown } = entry;
      output(cmd, { site: shown, grid }, () => `site ${name} added: ${grid ? `grid registered (${grid.plugin}, ${grid.status})` : 'existing grid'}, ssh://${ssh.user}@${ssh.host}:${ssh.port}, ${entry.remote_dir}\nnext: firn site install ${name}`);
    });

  site
    .command('ls')
    .description('sites on this machine, with their grid status and last heartbeat')
    .action(async (_o: unknown, cmd: Command) => {
      const sites = Object.values(loadSites(contextOf(cmd).io.env));
      let grids: GridInfo[] = [];
      try {
        grids = (await call<{ grids: GridInfo[] }>(cmd, 'grid.list')).grids;
      } catch {
        /* the tray is optional here */
      }
      const rows = sites.map((s) => {
        const g = grids.find((x) => x.name === s.name);
        return { name: s.name, plugin: s.plugin, ssh: `${s.ssh.user}@${s.ssh.host}:${s.ssh.port}`, remote_dir: s.remote_dir, grid_status: g?.status ?? null, last_seen_at: g?.last_seen_at ?? null };
      });
      output(cmd, rows, () => table(['NAME', 'PLUGIN', 'SSH', 'DIR', 'GRID', 'LAST HEARTBEAT'], rows.map((r) => [r.name, r.plugin, r.ssh, r.remote_dir, r.grid_status ?? '?', ago(r.last_seen_at)])));
    });

  site
    .command('install')
    .description('copy firn-queue, the pilot, the schemas, a generated queue.ini and the control script to the site')
    .argument('<name>', 'site name')
    .option('--db-url <url>', 'central database URL as the site reaches it (default: FIRN_SITE_DB_URL, else the one given before)')
    .option('--mon-url <url>', 'firn-mon URL for the site\'s pilots (default: the one given before)')
    .addOption(new Option('--pilot <kind>', 'the single executable (workers need no Node.js) or the .js bundle').choices(['sea', 'bundle']))
    .option('--set <section.key=value>', 'another queue config value (repeat; kept for later installs)', collectSet)
    .action(async (name: string, o: { dbUrl?: string; monUrl?: string; pilot?: 'sea' | 'bundle'; set?: Record<string, Record<string, string>> }, cmd: Command) => {
      const { io } = contextOf(cmd);
      const sites = loadSites(io.env);
      const s = siteOf(cmd, name);
      const dbUrl = o.dbUrl ?? io.env.FIRN_SITE_DB_URL ?? s.db_url;
      const monUrl = o.monUrl ?? s.mon_url;
      if (!dbUrl) throw new CliError('the site needs the central database URL: --db-url URL or FIRN_SITE_DB_URL', ExitCode.USAGE);
      if (!monUrl) throw new CliError('the site needs the firn-mon URL its pilots report to: --mon-url URL', ExitCode.USAGE);
      const settings: Record<string, Record<string, string>> = { ...s.settings };
      for (const [sec, values] of Object.entries(o.set ?? {})) settings[sec] = { ...settings[sec], ...values };
      const updated: SiteEntry = {
        ...s,
        ...(o.dbUrl ? { db_url: o.dbUrl } : {}),
        mon_url: monUrl,
        ...(o.pilot ? { pilot: o.pilot } : {}),
        ...(Object.keys(settings).length ? { settings } : {}),
      };
      saveSites(io.env, { ...sites, [name]: updated });
      const remote = new RemoteSite(updated, io.env);
      try {
        const r = await remote.install({ dbUrl, monUrl, ...(o.pilot ? { pilot: o.pilot } : {}), say: (l) => io.stderr.write(`firn site: ${l}\n`) });
        const running = (await remote.ctl(['status'])).code === 0;
        output(cmd, { site: name, remote_dir: r.remoteDir, pilot: r.pilot, uploaded: r.uploaded, unchanged: r.unchanged, check: r.check, running }, () =>
          [
            `site ${name} installed in ${r.remoteDir} (${r.uploaded.length} files written, ${r.unchanged.length} unchanged)`,
            `pilot: ${r.pilot}`,
            r.check,
            running ? `firn-queue is running: restart it to use what was installed (firn site stop ${name} && firn site start ${name})` : `next: firn site start ${name}`,
          ].join('\n'));
      } finally {
        await remote.close();
      }
    });

  site
    .command('start')
    .description('start firn-queue on the site (detached; pid file and log in its directory)')
    .argument('<name>', 'site name')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await withSite(cmd, name, async (remote) => {
        const r = await remote.ctl(['start']);
        const text = (r.stdout + r.stderr).trim();
        if (r.code !== 0) throw new CliError(`firn-queue did not start on ${name}:\n${text}`);
        const pid = Number(/(?:started|running) (\d+)/.exec(text)?.[1] ?? NaN);
        output(cmd, { site: name, running: true, pid, already: text.startsWith('running') }, () => (text.startsWith('running') ? `firn-queue already runs on ${name} (pid ${pid})` : `firn-queue started on ${name} (pid ${pid})`));
      });
    });

  site
    .command('stop')
    .description('stop firn-queue on the site (SIGTERM; it finishes its cycle; SIGKILL after --timeout)')
    .argument('<name>', 'site name')
    .option('--timeout <seconds>', 'how long to wait before SIGKILL', parseIntArg('--timeout', 1), 60)
    .action(async (name: string, o: { timeout: number }, cmd: Command) => {
      await withSite(cmd, name, async (remote) => {
        const r = await remote.ctl(['stop', String(o.timeout)], (o.timeout + 60) * 1000);
        const text = (r.stdout + r.stderr).trim();
        if (r.code !== 0) throw new CliError(`cannot stop firn-queue on ${name}: ${text}`);
        output(cmd, { site: name, running: false, result: text }, () => `${name}: ${text}`);
      });
    });

  site
    .command('status')
    .description('does firn-queue run on the site, and when did its grid last heartbeat (exit 1 when it does not run)')
    .argument('<name>', 'site name')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      await withSite(cmd, name, async (remote) => {
        const r = await remote.ctl(['status']);
        const running = r.code === 0;
        const pid = running ? Number(/running (\d+)/.exec(r.stdout)?.[1] ?? NaN) : null;
        const { grid, error } = await gridInfo(cmd, name);
        const value = {
          site: name, ssh: remote.description, running, pid,
          grid: grid ? { status: grid.status, plugin: grid.plugin, last_seen_at: grid.last_seen_at } : null,
          heartbeat_age_seconds: grid?.last_seen_at ? Math.round((Date.now() - grid.last_seen_at) / 1000) : null,
          ...(error ? { tray_error: error } : {}),
        };
        output(cmd, value, () => [
          `site ${name} (${remote.description})`,
          `  firn-queue:     ${running ? `running (pid ${pid})` : 'not running'}`,
          `  grid:           ${grid ? `${grid.status}, ${grid.plugin}` : error ? `unknown (tray: ${error})` : 'not registered'}`,
          `  last heartbeat: ${grid ? ago(grid.last_seen_at) : '?'}`,
        ].join('\n'));
        ctx.exitCode = running ? ExitCode.OK : ExitCode.ERROR;
      });
    });

  site
    .command('logs')
    .description('the end of firn-queue\'s log on the site')
    .argument('<name>', 'site name')
    .option('-n, --lines <n>', 'how many lines', parseIntArg('--lines', 1), 50)
    .action(async (name: string, o: { lines: number }, cmd: Command) => {
      await withSite(cmd, name, async (remote) => {
        const r = await remote.ctl(['logs', String(o.lines)]);
        print(cmd, r.stdout.replace(/\n$/, '') || '(empty log)');
      });
    });

  site
    .command('rm')
    .description('remove the grid (admin), stop its firn-queue and forget the site; refused while tasks are queued or running there unless --drain')
    .argument('<name>', 'site name')
    .option('--drain', 'first disable the grid (no new tasks) and wait until its tasks are done')
    .option('--timeout <seconds>', 'with --drain: how long to wait', parseIntArg('--timeout', 1), 3600)
    .option('--poll <seconds>', 'with --drain: how often to look', parseIntArg('--poll', 1), 5)
    .option('--purge', 'also delete the site\'s directory (firn-queue, pilot, config, log, submit files)')
    .action(async (name: string, o: { drain?: boolean; timeout: number; poll: number; purge?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const s = siteOf(cmd, name);
      const removeGrid = async (): Promise<'removed' | 'gone'> => {
        try {
          await call(cmd, 'grid.remove', { name });
          return 'removed';
        } catch (e) {
          if (e instanceof RpcError && e.code === RpcErrorCode.NOT_FOUND) return 'gone';
          throw e;
        }
      };
      let outcome: 'removed' | 'gone';
      if (o.drain) {
        try {
          await call(cmd, 'grid.set_status', { name, status: 'disabled' });
        } catch (e) {
          if (!(e instanceof RpcError && e.code === RpcErrorCode.NOT_FOUND)) throw e;
        }
        ctx.io.stderr.write(`firn site: grid ${name} disabled; waiting for its queued and running tasks to finish (up to ${o.timeout} s)\n`);
        const deadline = Date.now() + o.timeout * 1000;
        let last = '';
        for (;;) {
          try {
            outcome = await removeGrid();
            break;
          } catch (e) {
            if (!removeConflict(e)) throw e;
            last = (e as Error).message;
            if (Date.now() > deadline) throw new CliError(`gave up after ${o.timeout} s: ${last}. The grid stays disabled; run firn site rm ${name} --drain again later`, ExitCode.CONFLICT);
            await new Promise((r) => setTimeout(r, o.poll * 1000));
          }
        }
      } else {
        try {
          outcome = await removeGrid();
        } catch (e) {
          if (removeConflict(e)) throw new CliError(`refused: ${(e as Error).message}. Use --drain to stop new work and wait for it`, ExitCode.CONFLICT);
          throw e;
        }
      }
      let stopped = '';
      try {
        const remote = new RemoteSite(s, ctx.io.env);
        try {
          const r = await remote.ctl(['stop', '60'], 180_000);
          stopped = (r.stdout + r.stderr).trim();
          if (o.purge) {
            const dir = await remote.remoteDir();
            await remote.run('rm', ['-rf', '--', dir]);
            stopped += `; ${dir} deleted`;
          }
        } finally {
          await remote.close();
        }
      } catch (e) {
        stopped = `could not reach the site to stop firn-queue: ${(e as Error).message}`;
        ctx.io.stderr.write(`firn site: warning: ${stopped}\n`);
      }
      const sites = loadSites(ctx.io.env);
      delete sites[name];
      saveSites(ctx.io.env, sites);
      output(cmd, { site: name, grid: outcome, daemon: stopped }, () => `site ${name} removed (grid ${outcome === 'removed' ? 'removed' : 'was not registered'}; firn-queue: ${stopped})`);
    });
}
