import { Option, type Command } from 'commander';
import { call, output, parseIntArg } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { table, time } from '../output';

interface GridInfo { id: number; name: string; plugin: string; capabilities: Record<string, unknown>; status: string; last_seen_at: number | null }

function caps(c: Record<string, unknown>): string {
  return Object.entries(c).map(([k, v]) => `${k}=${String(v)}`).join(' ');
}

/** A black-holed node as grid.holes lists it. */
export interface BlackHole { grid: string | null; node: string; reason: string | null; since: number | null; until: number }

/** One line per black-holed node, for `firn grid holes` and `firn status`. */
export function holeLines(holes: readonly BlackHole[]): string[] {
  return holes.map((h) => `${h.grid ?? '(no grid)'} ${h.node}: black-holed until ${time(h.until)}${h.reason ? ` — ${h.reason}` : ''}`);
}

/** firn grid add | ls | enable | disable | rm | holes | clear-hole */
export function register(program: Command): void {
  const grid = program.command('grid').description('grids (sites) that run tasks');

  grid
    .command('add')
    .description('register a grid (admin)')
    .argument('<name>', 'grid name')
    .addOption(new Option('--plugin <plugin>', 'batch system').choices(['local', 'slurm', 'pbs', 'sge', 'condor']).makeOptionMandatory())
    .option('--cpu <n>', 'CPU cores per slot', parseIntArg('--cpu', 1))
    .option('--gpu <n>', 'GPUs per slot', parseIntArg('--gpu', 0))
    .option('--memory <mb>', 'memory per slot, MB', parseIntArg('--memory', 1))
    .option('--disk <mb>', 'disk per slot, MB', parseIntArg('--disk', 1))
    .option('--time <min>', 'longest wall time, minutes', parseIntArg('--time', 1))
    .option('--site <name>', 'site name tasks may ask for')
    .option('--capabilities <json>', 'all capabilities as a JSON object')
    .option('--disabled', 'register it disabled')
    .action(async (name: string, opts: Record<string, unknown>, cmd: Command) => {
      let capabilities: Record<string, unknown> = {};
      if (typeof opts.capabilities === 'string') {
        try {
          capabilities = JSON.parse(opts.capabilities) as Record<string, unknown>;
        } catch (e) {
          throw new CliError(`--capabilities is not JSON: ${(e as Error).message}`, ExitCode.USAGE);
        }
      }
      for (const k of ['cpu', 'gpu', 'memory', 'disk', 'time', 'site']) if (opts[k] !== undefined) capabilities[k] = opts[k];
      const r = await call<{ grid: GridInfo }>(cmd, 'grid.add', { name, plugin: opts.plugin, capabilities, ...(opts.disabled ? { status: 'disabled' } : {}) });
      output(cmd, r.grid, () => `grid ${r.grid.name} added (${r.grid.plugin}, ${r.grid.status}) ${caps(r.grid.capabilities)}`);
    });

  grid
    .command('ls')
    .description('list grids')
    .action(async (_opts: unknown, cmd: Command) => {
      const { grids } = await call<{ grids: GridInfo[] }>(cmd, 'grid.list');
      output(cmd, grids, () => table(['NAME', 'PLUGIN', 'STATUS', 'LAST SEEN', 'CAPABILITIES'], grids.map((g) => [g.name, g.plugin, g.status, time(g.last_seen_at), caps(g.capabilities)])));
    });

  for (const [name, status] of [['enable', 'enabled'], ['disable', 'disabled']] as const) {
    grid
      .command(name)
      .description(`${name} a grid (admin)`)
      .argument('<name>', 'grid name')
      .action(async (gridName: string, _opts: unknown, cmd: Command) => {
        const r = await call<{ grid: GridInfo }>(cmd, 'grid.set_status', { name: gridName, status });
        output(cmd, r.grid, () => `grid ${r.grid.name} ${r.grid.status}`);
      });
  }

  grid
    .command('rm')
    .description('remove a grid (admin; refused while tasks are queued or running there)')
    .argument('<name>', 'grid name')
    .action(async (gridName: string, _opts: unknown, cmd: Command) => {
      const r = await call<{ removed: string }>(cmd, 'grid.remove', { name: gridName });
      output(cmd, r, () => `grid ${r.removed} removed`);
    });

  grid
    .command('holes')
    .description('worker nodes black-holed now (excluded until their cool-down ends)')
    .argument('[grid]', 'only this grid')
    .action(async (gridName: string | undefined, _opts: unknown, cmd: Command) => {
      const r = await call<{ holes: BlackHole[]; more?: number }>(cmd, 'grid.holes', gridName !== undefined ? { grid: gridName } : {});
      output(cmd, r, () =>
        r.holes.length
          ? table(['GRID', 'NODE', 'SINCE', 'UNTIL', 'REASON'], r.holes.map((h) => [h.grid ?? '-', h.node, time(h.since), time(h.until), h.reason ?? ''])) +
            (r.more ? `\n… and ${r.more} more` : '')
          : `no black-holed nodes${gridName !== undefined ? ` on grid ${gridName}` : ''}`,
      );
    });

  grid
    .command('clear-hole')
    .description('end a node\'s black-hole exclusion now (admin)')
    .argument('<grid>', 'the node\'s grid')
    .argument('<node>', 'worker node host name')
    .action(async (gridName: string, node: string, _opts: unknown, cmd: Command) => {
      const r = await call<{ grid: string; node: string; cleared: boolean }>(cmd, 'grid.clear_hole', { grid: gridName, node });
      output(cmd, r, () => (r.cleared ? `black hole ${r.node} on grid ${r.grid} cleared` : `${r.node} on grid ${r.grid} was not black-holed`));
    });
}
