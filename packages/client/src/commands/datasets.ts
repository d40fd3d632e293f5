import fs from 'node:fs';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import { RpcError, RpcErrorCode } from '@firn/core';
import { call, contextOf, datasetId, globals, output, parseIntArg, parseTarget, print, readJsonFile } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { countBars, num, table, time } from '../output';
import { holeLines, type BlackHole } from './grid';

interface DatasetInfo {
  id: number; description: string; type: string; status: string; priority: number; owner: string | null;
  jobs_submitted: number; tasks_per_job: number; created_at: number; grids?: string[]; config_hash?: string;
  /** Absent from a tray older than the list's progress. */
  progress?: { ok: number; failed: number; total: number; percent: number };
}
export interface Progress { percent: number; ok: number; total: number; tasks_per_hour: number; eta: string | null }
interface StatusResult { status: string; tasks: Record<string, number>; jobs: Record<string, number>; progress?: Progress }
interface ControlResult { dataset_id: number; job_index?: number; status: string; changed: number; waiting: number; idle: number }

interface SubmitResult {
  dataset_id: number; jobs: number; tasks: number;
  /** Absent from a tray older than dataset.submit's warnings. */
  grids?: string[]; warnings?: Array<{ path: string; message: string }>;
}

/** What `firn submit` prints: the dataset, the grids it got, and every warning (paths as in the file). */
export function submitLines(r: SubmitResult): string[] {
  const grids = r.grids === undefined ? '' : `; grids: ${r.grids.join(', ') || '(none)'}`;
  return [
    `submitted dataset ${r.dataset_id}: ${r.jobs} jobs, ${r.tasks} tasks${grids}`,
    ...(r.warnings ?? []).map((w) => `warning: ${w.path.replace(/^\/params\/config(?=\/|$)/, '')}: ${w.message}`),
  ];
}

const DATASET_STATUSES = ['PROCESSING', 'SUSPENDED', 'COMPLETE', 'ERRORS', 'OBSOLETE', 'DELETED'];

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function paramIssues(e: unknown): Array<{ path: string; message: string }> {
  if (!(e instanceof RpcError) || e.code !== RpcErrorCode.INVALID_PARAMS) return [];
  return (e.data as { issues?: Array<{ path: string; message: string }> } | undefined)?.issues ?? [];
}

/** Config issues come back under /params/config: show them as paths in the file. */
export function configIssueLines(e: unknown): string[] {
  return paramIssues(e).map((i) => `  ${i.path.replace(/^\/params\/config(?=\/|$)/, '') || '/'}: ${i.message}`);
}

/** `--grid NAME` values the server does not know (issues at /params/grids/N), or []. */
function unknownGrids(e: unknown, grids: readonly string[]): string[] {
  return paramIssues(e).flatMap((i) => {
    const m = /^\/params\/grids\/(\d+)$/.exec(i.path);
    const name = m ? grids[Number(m[1])] : undefined;
    return name === undefined ? [] : [name];
  });
}

/** The grids there are, for a message (empty when they cannot be listed). */
async function gridNamesFor(cmd: Command): Promise<string[]> {
  try {
    return (await call<{ grids: Array<{ name: string }> }>(cmd, 'grid.list')).grids.map((g) => g.name);
  } catch {
    return [];
  }
}

/** The black-holed nodes of the grids a dataset may run on (none from a tray without grid.holes). */
async function holesOf(cmd: Command, id: number): Promise<BlackHole[]> {
  try {
    return (await call<{ holes: BlackHole[] }>(cmd, 'grid.holes', { dataset_id: id })).holes;
  } catch (e) {
    if (e instanceof RpcError && e.code === RpcErrorCode.METHOD_NOT_FOUND) return [];
    throw e;
  }
}

/** `--name stderr` matches `stderr` and any `….stderr` (logs are named `<tray>.<module>.<stream>`). */
export function logNameMatches(name: string, wanted: string): boolean {
  return name === wanted || name.endsWith(`.${wanted}`);
}

/** `60.0% complete (12/20 tasks OK), 6 tasks/h over the last hour, ETA 2026-12-04T20:33:37Z` */
export function progressLine(p: Progress): string {
  const eta = p.ok >= p.total ? 'done' : p.eta === null ? 'unknown' : time(p.eta);
  return `progress: ${p.percent.toFixed(1)}% complete (${p.ok}/${p.total} tasks OK), ${num(p.tasks_per_hour)} tasks/h over the last hour, ETA ${eta}`;
}

/** What `firn status` prints: counts, then progress (`withProgress: false` leaves it to a live bar below). */
export function renderStatus(id: number, s: StatusResult, withProgress = true): string {
  const progress = s.progress && withProgress ? `${progressLine(s.progress)}\n` : '';
  return `dataset ${id}: ${s.status}\n${countBars('tasks', s.tasks)}${countBars('jobs', s.jobs)}${progress}`;
}

/** `firn ls`'s table: with % complete and FAILED tasks when the tray sends them. */
export function renderList(datasets: DatasetInfo[]): string {
  const pct = (d: DatasetInfo) => (d.progress ? `${d.progress.percent.toFixed(1)}%` : '');
  return table(['ID', 'STATUS', 'PRIO', 'TYPE', 'JOBS', 'TASKS/JOB', 'OWNER', 'DONE', 'FAILED', 'CREATED', 'DESCRIPTION'],
    datasets.map((d) => [d.id, d.status, d.priority, d.type, d.jobs_submitted, d.tasks_per_job, d.owner ?? '', pct(d), d.progress?.failed ?? '', time(d.created_at), d.description.slice(0, 60)]));
}

function controlLine(verb: string, r: ControlResult & { unchanged?: boolean }): string {
  const where = r.job_index === undefined ? `dataset ${r.dataset_id}` : `job ${r.dataset_id}.${r.job_index}`;
  // nothing to do: the server left the status alone (resume of a COMPLETE dataset)
  if (r.unchanged) return `${where} is already ${r.status}: nothing ${verb} (no change)`;
  const settled = r.waiting + r.idle > 0 ? ` (${r.waiting} waiting, ${r.idle} idle)` : '';
  return `${where} ${verb}: ${r.changed} tasks${settled}; now ${r.status}`;
}

/** A requirement flag: an integer ≥ min, or (dataset-wide resets) a multiplier `xF` of each task's own value. */
function parseRequirement(name: string, min: number): (v: string) => number | string {
  const int = parseIntArg(name, min);
  return (v: string) => {
    const t = v.trim();
    if (/^x(?:\d{1,2}(?:\.\d{1,3})?)$/.test(t)) {
      if (Number(t.slice(1)) <= 0) throw new CliError(`${name} multiplier must be more than 0, got ${JSON.stringify(v)}`, ExitCode.USAGE);
      return t;
    }
    if (t.startsWith('x')) throw new CliError(`${name} multiplier must be x followed by a number with at most 3 decimals below 100 (x1.5), got ${JSON.stringify(v)}`, ExitCode.USAGE);
    return int(v);
  };
}

function requirementOptions(cmd: Command): Command {
  return cmd
    .option('--cpu <n>', 'new CPU cores for the reset tasks (dataset-wide also xF: F times each task\'s own)', parseRequirement('--cpu', 1))
    .option('--gpu <n>', 'new GPUs', parseRequirement('--gpu', 0))
    .option('--memory <mb>', 'new memory, MB, or xF (e.g. x1.5)', parseRequirement('--memory', 1))
    .option('--disk <mb>', 'new disk, MB, or xF', parseRequirement('--disk', 1))
    .option('--time <min>', 'new wall time, minutes, or xF', parseRequirement('--time', 1))
    .option('--site <name>', 'run only at this site');
}

const RESETTABLE = ['FAILED', 'ERROR', 'SUSPENDED', 'EVICTED', 'OK'];

/**
 * Wait `ms` or until interrupted. The timer is a real (ref'd) one: it is what keeps the process
 * alive between two frames of `status --watch` (an unref'd timer let node exit, rc 0, after the
 * first frame); an interrupt clears it.
 */
async function sleep(ms: number, interrupted?: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, ms))), interrupted ?? new Promise<void>(() => undefined)]);
  } finally {
    clearTimeout(timer);
  }
}

/** The live bar's fields: OK tasks of all tasks, the last hour's rate and the ETA (ISO times). */
export function barPayload(p: Progress): { pct: string; rate: string; eta: string } {
  return { pct: `${p.percent.toFixed(1)}%`, rate: num(p.tasks_per_hour), eta: p.ok >= p.total ? 'done' : p.eta === null ? 'unknown' : time(p.eta) };
}

/**
 * `status --watch` on a terminal: a cli-progress bar scaled to the dataset's tasks (OK of all)
 * under the counts, updated in place each refresh; the counts above it are redrawn when they
 * change (the bar is stopped first, so its line is part of what is cleared).
 */
class LiveBar {
  private bar: cliProgress.SingleBar | null = null;
  constructor(private readonly stream: NodeJS.WritableStream) {}

  /** Lines the bar occupies once stopped (0 while none is shown). */
  stop(): number {
    if (!this.bar) return 0;
    this.bar.stop();
    this.bar = null;
    return 1;
  }

  show(p: Progress): void {
    const payload = barPayload(p);
    const total = Math.max(1, p.total);
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar({
        stream: this.stream as NodeJS.WriteStream, format: 'progress |{bar}| {pct} {value}/{total} tasks OK · {rate} tasks/h · ETA {eta}',
        barsize: 30, hideCursor: false, clearOnComplete: false, gracefulExit: false, fps: 4,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(total, p.ok, payload);
    } else {
      this.bar.setTotal(total);
      this.bar.update(p.ok, payload);
    }
  }
}

/** `status --watch`'s exit code once the dataset stops processing: 0 only when it is COMPLETE. */
export function watchExitCode(status: string): ExitCode {
  return status === 'COMPLETE' ? ExitCode.OK : ExitCode.ERROR;
}

export function register(program: Command): void {
  program
    .command('submit')
    .description('validate a dataset config (JSON) and submit it')
    .argument('<file>', 'dataset config file')
    .option('-n, --jobs <n>', 'number of jobs (0: offline dataset, jobs added later with add-jobs)', parseIntArg('--jobs', 0))
    .option('-g, --grid <name>', 'a grid that may run it (repeat for several)', collect)
    .option('-p, --priority <p>', 'priority, higher first', parseIntArg('--priority', -1000000))
    .option('-d, --description <text>', 'description (default: the config\'s)')
    .addOption(new Option('--type <type>', 'dataset type (default: the config\'s)').choices(['simulation', 'offline']))
    .option('--strict', 'refuse the dataset when no grid can run one of its tasks (instead of warning)')
    .action(async (file: string, opts: { jobs?: number; grid?: string[]; priority?: number; description?: string; type?: string; strict?: boolean }, cmd: Command) => {
      const config = readJsonFile(file);
      const params: Record<string, unknown> = { config };
      if (opts.jobs !== undefined) params.jobs = opts.jobs;
      if (opts.grid) params.grids = opts.grid;
      if (opts.priority !== undefined) params.priority = opts.priority;
      if (opts.description !== undefined) params.description = opts.description;
      if (opts.type !== undefined) params.type = opts.type;
      if (opts.strict) params.strict = true;
      let r: SubmitResult;
      try {
        r = await call(cmd, 'dataset.submit', params);
      } catch (e) {
        // a misspelt --grid is the flag's fault, not the file's
        const missing = unknownGrids(e, opts.grid ?? []);
        if (missing.length) {
          const known = await gridNamesFor(cmd);
          throw new CliError(
            missing.map((g) => `--grid ${g}: no grid named ${JSON.stringify(g)}`).join('; ') + `; grids: ${known.length ? known.join(', ') : '(none)'}`,
            ExitCode.NOT_FOUND,
          );
        }
        const lines = configIssueLines(e);
        if (lines.length && e instanceof RpcError && e.message.includes('(strict)')) throw new CliError(`${file}: refused (--strict): no grid can run it`, ExitCode.ERROR, lines);
        if (lines.length) throw Object.assign(new CliError(`${file}: the dataset config is invalid`, ExitCode.ERROR, lines), { cause: e });
        throw e;
      }
      output(cmd, r, () => submitLines(r).join('\n'));
    });

  program
    .command('ls')
    .description('list datasets, newest first')
    .addOption(new Option('-s, --status <status>', 'only datasets in this status').choices(DATASET_STATUSES))
    .option('--owner <user>', 'only datasets of this user')
    .option('--limit <n>', 'at most this many', parseIntArg('--limit', 1), 100)
    .action(async (opts: { status?: string; owner?: string; limit: number }, cmd: Command) => {
      const params: Record<string, unknown> = { limit: opts.limit };
      if (opts.status) params.status = opts.status;
      if (opts.owner) params.owner = opts.owner;
      const { datasets } = await call<{ datasets: DatasetInfo[] }>(cmd, 'dataset.list', params);
      output(cmd, datasets, () => renderList(datasets));
    });

  program
    .command('status')
    .description('task and job counts per state, with progress bars')
    .argument('<dataset>', 'dataset id', datasetId)
    .option('-w, --watch', 'refresh until the dataset stops processing (Ctrl-C to stop); exits 0 when it is COMPLETE, 1 when ERRORS, SUSPENDED, OBSOLETE or DELETED')
    .option('--interval <seconds>', 'refresh interval with --watch', parseIntArg('--interval', 1), 5)
    .action(async (id: number, opts: { watch?: boolean; interval: number }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const json = Boolean(globals(cmd).json);
      const tty = Boolean(ctx.io.stdout.isTTY) && !json;
      let previous = '';
      let lines = 0;
      let stop = false;
      void ctx.interrupted?.then(() => (stop = true));
      const live = opts.watch && tty ? new LiveBar(ctx.io.stdout) : null;
      try {
        for (;;) {
          const s: StatusResult & { black_holes?: BlackHole[] } = await call<StatusResult>(cmd, 'dataset.status', { dataset_id: id });
          const holes = await holesOf(cmd, id);
          if (holes.length) s.black_holes = holes;
          const barred = Boolean(live && s.progress);
          const text = json ? JSON.stringify(s) : renderStatus(id, s, !barred) + holeLines(holes).map((l) => `warning: ${l}\n`).join('');
          if (!opts.watch) {
            output(cmd, s, () => text);
            return;
          }
          if (text !== previous) {
            lines += live?.stop() ?? 0;
            if (tty && lines > 0) ctx.io.stdout.write(`\x1b[${lines}A\x1b[J`);
            print(cmd, text);
            lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
            previous = text;
          }
          if (barred) live!.show(s.progress!);
          if (stop) return;
          if (s.status !== 'PROCESSING') {
            ctx.exitCode = watchExitCode(s.status);
            return;
          }
          await sleep(opts.interval * 1000, ctx.interrupted);
          if (stop) return;
        }
      } finally {
        live?.stop();
      }
    });

  program
    .command('config')
    .description('download the dataset config exactly as submitted')
    .argument('<dataset>', 'dataset id', datasetId)
    .option('-o, --output <file>', 'write it to this file instead of stdout')
    .action(async (id: number, opts: { output?: string }, cmd: Command) => {
      const r = await call<{ config: unknown; config_hash: string }>(cmd, 'dataset.config', { dataset_id: id });
      const text = JSON.stringify(r.config, null, 2) + '\n';
      if (opts.output) {
        fs.writeFileSync(opts.output, text);
        print(cmd, `wrote ${opts.output} (sha256 of canonical JSON ${r.config_hash})`);
      } else contextOf(cmd).io.stdout.write(text);
    });

  program
    .command('show')
    .description('one dataset: owner, status, grids, retry policy')
    .argument('<dataset>', 'dataset id', datasetId)
    .action(async (id: number, _opts: unknown, cmd: Command) => {
      const { dataset: d } = await call<{ dataset: DatasetInfo & { retry: unknown } }>(cmd, 'dataset.get', { dataset_id: id });
      output(cmd, d, () =>
        [
          `dataset ${d.id}: ${d.status} (${d.type})`, `description: ${d.description}`, `owner: ${d.owner ?? ''}`,
          `priority: ${d.priority}`, `jobs: ${d.jobs_submitted} × ${d.tasks_per_job} tasks`, `grids: ${(d.grids ?? []).join(', ') || '(none)'}`,
          `created: ${time(d.created_at)}`, `config sha256: ${d.config_hash ?? ''}`, `retry: ${JSON.stringify(d.retry)}`,
        ].join('\n'));
    });

  for (const [name, verb, describe] of [
    ['suspend', 'suspended', 'suspend a dataset or one job (every task not OK/FAILED)'],
    ['resume', 'resumed', 'resume a suspended dataset or job'],
    ['reset', 'reset', 'retry the FAILED, ERROR and SUSPENDED tasks of a dataset or job'],
  ] as const) {
    const c = program
      .command(name)
      .description(describe)
      .argument('<target>', 'DATASET or DATASET.JOB', parseTarget)
      .option('-r, --reason <text>', 'why (kept in history)');
    if (name === 'reset') {
      c.option('--include-ok', 'also reset OK tasks (admin only)');
      c.option('--failed', 'only FAILED tasks (same as --status FAILED)');
      c.option('--status <status>', `only tasks in this status: ${RESETTABLE.join(', ')} (repeat for several; dataset-wide)`, (v: string, previous: string[] = []) => {
        if (!RESETTABLE.includes(v)) throw new CliError(`--status must be one of ${RESETTABLE.join(', ')}, got ${JSON.stringify(v)}`, ExitCode.USAGE);
        return [...previous, v];
      });
      c.option('--match <re>', 'only tasks whose last error matches this RE2 pattern (case-insensitive; dataset-wide)');
      requirementOptions(c);
    }
    c.action(async (target: { dataset: number; job?: number }, opts: Record<string, unknown>, cmd: Command) => {
      const params: Record<string, unknown> = { dataset_id: target.dataset };
      if (opts.reason) params.reason = opts.reason;
      if (opts.includeOk) params.include_ok = true;
      const req: Record<string, unknown> = {};
      for (const k of ['cpu', 'gpu', 'memory', 'disk', 'time', 'site']) if (opts[k] !== undefined) req[k] = opts[k];
      const statuses = [...new Set([...(opts.failed ? ['FAILED'] : []), ...((opts.status as string[] | undefined) ?? [])])];
      if (target.job !== undefined && (statuses.length || opts.match !== undefined)) {
        throw new CliError('--failed, --status and --match select tasks across a dataset: use DATASET, not DATASET.JOB', ExitCode.USAGE);
      }
      if (target.job !== undefined && ['cpu', 'gpu', 'memory', 'disk', 'time'].some((k) => typeof req[k] === 'string')) {
        throw new CliError('multipliers (xF) apply to a dataset-wide reset; on one job give absolute values', ExitCode.USAGE);
      }
      if (statuses.length) params.status = statuses;
      if (opts.match !== undefined) params.match = opts.match;
      if (Object.keys(req).length) params.requirements = req;
      let method = `dataset.${name}`;
      if (target.job !== undefined) {
        method = `job.${name}`;
        params.job_index = target.job;
      }
      const r = await call<ControlResult>(cmd, method, params);
      output(cmd, r, () => controlLine(verb, r));
    });
  }

  program
    .command('obsolete')
    .description('retire a dataset: suspend what is unfinished and never schedule it again')
    .argument('<dataset>', 'dataset id', datasetId)
    .option('-r, --reason <text>', 'why (kept in history)')
    .action(async (id: number, opts: { reason?: string }, cmd: Command) => {
      const r = await call<ControlResult>(cmd, 'dataset.obsolete', { dataset_id: id, ...(opts.reason ? { reason: opts.reason } : {}) });
      output(cmd, r, () => controlLine('made obsolete', r));
    });

  program
    .command('priority')
    .description('set a dataset\'s priority (higher runs first)')
    .argument('<dataset>', 'dataset id', datasetId)
    .argument('<priority>', 'new priority', parseIntArg('priority', -1000000))
    .action(async (id: number, priority: number, _opts: unknown, cmd: Command) => {
      const r = await call<{ dataset_id: number; priority: number }>(cmd, 'dataset.set_priority', { dataset_id: id, priority });
      output(cmd, r, () => `dataset ${r.dataset_id} priority ${r.priority}`);
    });

  program
    .command('stats')
    .description('statistics over the dataset\'s tasks: n, sum, mean, stddev, min, max per name')
    .argument('<dataset>', 'dataset id', datasetId)
    .action(async (id: number, _opts: unknown, cmd: Command) => {
      const { stats } = await call<{ stats: Record<string, { n: number; sum: number; mean: number; stddev: number; min: number; max: number }> }>(cmd, 'dataset.stats', { dataset_id: id });
      output(cmd, stats, () =>
        Object.keys(stats).length === 0
          ? `dataset ${id} has no statistics yet`
          : table(['NAME', 'N', 'SUM', 'MEAN', 'STDDEV', 'MIN', 'MAX'],
              Object.entries(stats).map(([k, s]) => [k, s.n, num(s.sum), num(s.mean), num(s.stddev), num(s.min), num(s.max)])));
    });

  program
    .command('jobs')
    .description('jobs of a dataset with their status')
    .argument('<dataset>', 'dataset id', datasetId)
    .addOption(new Option('-s, --status <status>', 'only jobs in this status').choices(['PROCESSING', 'OK', 'FAILED', 'SUSPENDED']))
    .option('--limit <n>', 'at most this many', parseIntArg('--limit', 1), 100)
    .option('--offset <n>', 'skip this many', parseIntArg('--offset', 0), 0)
    .action(async (id: number, opts: { status?: string; limit: number; offset: number }, cmd: Command) => {
      const { jobs } = await call<{ jobs: Array<{ job_index: number; status: string; run_id: number | null; status_changed_at: number }> }>(cmd, 'job.list', {
        dataset_id: id, limit: opts.limit, offset: opts.offset, ...(opts.status ? { status: opts.status } : {}),
      });
      output(cmd, jobs, () => table(['JOB', 'STATUS', 'RUN', 'CHANGED'], jobs.map((j) => [`${id}.${j.job_index}`, j.status, j.run_id ?? '', time(j.status_changed_at)])));
    });

  program
    .command('job')
    .description('one job and its tasks')
    .argument('<target>', 'DATASET.JOB', parseTarget)
    .action(async (target: { dataset: number; job?: number }, _opts: unknown, cmd: Command) => {
      if (target.job === undefined) throw new CliError('expected DATASET.JOB', ExitCode.USAGE);
      const r = await call<{ job: { job_index: number; status: string; args: unknown }; tasks: Array<{ id: number; name: string; status: string; grid: string | null; failures: number; requirements: { cpu: number; gpu: number; memory: number; time: number } }> }>(cmd, 'job.get', { dataset_id: target.dataset, job_index: target.job });
      output(cmd, r, () =>
        `job ${target.dataset}.${r.job.job_index}: ${r.job.status}${r.job.args && Object.keys(r.job.args as object).length ? ` args ${JSON.stringify(r.job.args)}` : ''}\n` +
        table(['TASK', 'NAME', 'STATUS', 'GRID', 'FAILURES', 'CPU', 'GPU', 'MEMORY', 'TIME'],
          r.tasks.map((t) => [t.id, t.name, t.status, t.grid ?? '', t.failures, t.requirements.cpu, t.requirements.gpu, t.requirements.memory, t.requirements.time])));
    });

  program
    .command('task')
    .description('one task: status, requirements, where it ran, last error')
    .argument('<task>', 'task id', parseIntArg('task', 1))
    .action(async (id: number, _opts: unknown, cmd: Command) => {
      const { task: t } = await call<{ task: Record<string, unknown> & { requirements: unknown; usage: unknown } }>(cmd, 'task.get', { task_id: id });
      output(cmd, t, () => Object.entries(t).map(([k, v]) => `${k}: ${v !== null && typeof v === 'object' ? JSON.stringify(v) : k.endsWith('_at') && typeof v === 'number' ? time(v) : String(v ?? '')}`).join('\n'));
    });

  program
    .command('logs')
    .description('the logs a task reported (stdout, stderr, pilot, modules)')
    .argument('<task>', 'task id', parseIntArg('task', 1))
    .option('--name <log>', 'only the logs of this name, or ending in .NAME (stderr matches t.m.stderr); exit 4 when none does')
    .action(async (id: number, opts: { name?: string }, cmd: Command) => {
      const all = (await call<{ logs: Array<{ name: string; data: string; updated_at: number }> }>(cmd, 'task.logs', { task_id: id })).logs;
      const logs = opts.name === undefined ? all : all.filter((l) => logNameMatches(l.name, opts.name!));
      if (opts.name !== undefined && logs.length === 0) {
        throw new CliError(
          `task ${id} has no log named ${JSON.stringify(opts.name)}` + (all.length ? `; its logs: ${all.map((l) => l.name).join(', ')}` : ' (no logs yet)'),
          ExitCode.NOT_FOUND,
        );
      }
      output(cmd, logs, () =>
        logs.length === 0 ? `task ${id} has no logs yet` : logs.map((l) => `==> ${l.name} (${time(l.updated_at)}) <==\n${l.data}${l.data.endsWith('\n') ? '' : '\n'}`).join('\n'));
    });

  program
    .command('add-jobs')
    .description('offline processing: add jobs with input files from a JSON file ({"jobs": [{args, files: [{url, md5}], run}]})')
    .argument('<dataset>', 'dataset id', datasetId)
    .argument('<file>', 'JSON file')
    .action(async (id: number, file: string, _opts: unknown, cmd: Command) => {
      const data = readJsonFile(file) as { jobs?: unknown } | unknown[];
      const jobs = Array.isArray(data) ? data : (data as { jobs?: unknown }).jobs;
      if (!Array.isArray(jobs)) throw new CliError(`${file}: expected {"jobs": [...]} or a list of jobs`);
      const r = await call<{ first_job_index: number; jobs: number; tasks: number; files: number }>(cmd, 'dataset.add_jobs', { dataset_id: id, jobs });
      output(cmd, r, () => `dataset ${id}: added jobs ${r.first_job_index}–${r.first_job_index + r.jobs - 1} (${r.tasks} tasks, ${r.files} input files)`);
    });

  for (const [name, method, describe] of [
    ['add-grid', 'dataset.add_grid', 'allow a grid to run a dataset'],
    ['remove-grid', 'dataset.remove_grid', 'no longer allow a grid to run a dataset'],
  ] as const) {
    program
      .command(name)
      .description(describe)
      .argument('<dataset>', 'dataset id', datasetId)
      .argument('<grid>', 'grid name')
      .action(async (id: number, grid: string, _opts: unknown, cmd: Command) => {
        const r = await call<{ grids: string[] }>(cmd, method, { dataset_id: id, grid });
        output(cmd, r, () => `dataset ${id} grids: ${r.grids.join(', ') || '(none)'}`);
      });
  }
}
