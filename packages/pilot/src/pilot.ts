/**
 * What firn-pilot does with one task, start to finish — the same code in monitored (mon) and
 * unmonitored (report file) mode; only the Reporter differs:
 *
 *   1. start            reporter.start → task, dataset config, job args, inputs, external modules
 *   2. expand           the task's config for this job (expressions; $(iter) per tray iteration)
 *   3. metaprojects     verified cache → unpacked into the task's area
 *   4. inputs           data[] input|both + the job's inputs, checksums verified
 *   5. trays            in order, `iterations` times, modules in order, under memory/time limits;
 *                       heartbeats all along; stdout/stderr tails uploaded after each module
 *   6. outputs          data[] output|both: md5 + sha256, staged to site_temp (or the destination)
 *   7. report           files, stats, own log; scratch removed; finish
 *
 * A refused passkey (-32009) at any point kills the running module, removes the scratch
 * directory and ends the pilot without finishing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MetaprojectCache, parseChecksum, unpackArchive } from './cache';
import { FirnError, checksumFile, coerceError, expandConfig, outputLocation, resolveRemoteUrl, type ExpressionContext, type Logger } from './core-pure';
import type { PilotLogger } from './logger';
import { AbortedError, ModuleExitError, addStats, moduleFor, parseStats, type ModuleContext } from './modules';
import { ResourceLimitError, readTail, timeLimitReached, type Limits, type Sample } from './process-runner';
import type {
  DataEntry,
  DatasetConfig,
  ExternalModuleCopy,
  HostResources,
  ModuleConfig,
  OutputFile,
  Requirements,
  ResourceSummary,
  StartResult,
  Stats,
  TaskConfig,
} from './protocol';
import { MonUnreachableError, StalePasskeyError, type Reporter } from './reporter';
import { diskUsage, gpuUtilization } from './resources';
import { Stager, redactUrl, urlScheme, type StagerOptions } from './staging';

const MB = 1024 * 1024;
/** Bytes of each stdout/stderr uploaded to mon. */
export const LOG_TAIL_BYTES = 64 * 1024;

export const ExitCode = {
  OK: 0,
  TASK_FAILED: 1,
  USAGE: 2,
  STALE_PASSKEY: 3,
  MON_UNREACHABLE: 4,
  SIGNALLED: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface PilotOptions {
  reporter: Reporter;
  logger: PilotLogger;
  /** Parent of the task's scratch area (default os.tmpdir()). */
  scratchRoot?: string;
  /** Metaproject cache directory (default <scratchRoot>/firn-cache). */
  cacheDir?: string;
  keepScratch?: boolean;
  stager?: Omit<StagerOptions, 'logger'>;
  /** Heartbeat period override, seconds (else FIRN_PILOT_HEARTBEAT_SECONDS, else mon's, else 60). */
  heartbeatSeconds?: number;
  /** Process sampling period, ms (default 250). */
  sampleMs?: number;
  /** Base environment of module processes (default process.env). */
  env?: NodeJS.ProcessEnv;
  host?: string;
  /** Stop everything (e.g. SIGTERM). */
  signal?: AbortSignal;
  /**
   * A pilot worker's own task area (a name under scratchRoot): emptied and reused by each of
   * its tasks instead of created and removed (not with keepScratch). Creating and deleting a
   * dozen files and directories per task is most of a short task's cost on some file systems
   * (ext4 scans past recently deleted inodes for every new one).
   */
  reuseArea?: string;
}

export interface PilotOutcome {
  exitCode: ExitCode;
  ok: boolean;
  error?: string;
  stats: Stats;
  outputs: OutputFile[];
  resources: ResourceSummary;
  /** The task's area (removed unless keepScratch). */
  taskDir?: string;
}

/** A task failure with the summary sent to mon (retry rules match on it). */
export class TaskFailedError extends FirnError {}

interface RunState {
  startedAt: number;
  cpuDone: number;
  current: Sample | null;
  maxRss: number;
  maxDisk: number;
  gpuMax?: number;
}

function num(v: unknown): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

let host: HostResources | null = null;
/** What this worker node offers (asked once per process: a pilot worker runs many tasks). */
function hostResources(): HostResources {
  host ??= { cpus: os.availableParallelism?.() ?? os.cpus().length, memory_mb: Math.round(os.totalmem() / MB) };
  return host;
}

/** Find this task's config: by name, else by index. */
export function findTask(config: DatasetConfig, name: string, index: number): TaskConfig {
  const tasks = Array.isArray(config?.tasks) ? config.tasks : [];
  const t = tasks.find((x) => x.name === name) ?? (name ? undefined : tasks[index]);
  if (!t) throw new TaskFailedError(`task ${JSON.stringify(name)} is not in the dataset config (tasks: ${tasks.map((x) => x.name).join(', ') || 'none'})`);
  return t;
}

/** Where a data entry's `remote` lives: a URL as-is, a relative path under site_temp (core's output-locations.ts). */
export function resolveRemote(remote: string, siteTemp: string | undefined): string {
  try {
    return resolveRemoteUrl(remote, siteTemp);
  } catch (e) {
    throw new TaskFailedError(coerceError(e).message);
  }
}

/** A scratch-relative path that stays inside the scratch directory. */
function insideScratch(scratch: string, local: string): string {
  const p = path.resolve(scratch, local);
  if (p !== scratch && !p.startsWith(scratch + path.sep)) throw new TaskFailedError(`data path ${JSON.stringify(local)} leaves the scratch directory`);
  return p;
}

/** Log names mon accepts are at most 64 characters. */
const MAX_LOG_NAME = 64;

/** `<tray>.<module>[.<iteration>].stdout|stderr`, shortened (with a hash) to fit mon's limit. */
export function logName(tray: string, module: string, iteration: number, iterations: number, stream: 'stdout' | 'stderr'): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');
  const suffix = `${iterations > 1 ? `.${iteration}` : ''}.${stream}`;
  const full = `${clean(tray)}.${clean(module)}${suffix}`;
  if (full.length <= MAX_LOG_NAME) return full;
  const hash = crypto.createHash('sha256').update(`${tray}\u0000${module}`).digest('hex').slice(0, 8);
  const room = MAX_LOG_NAME - suffix.length - hash.length - 2;
  return `${clean(`${tray}.${module}`).slice(0, room)}~${hash}${suffix}`;
}

export async function runPilot(opts: PilotOptions): Promise<PilotOutcome> {
  const { reporter } = opts;
  const logger = opts.logger;
  const state: RunState = { startedAt: Date.now(), cpuDone: 0, current: null, maxRss: 0, maxDisk: 0 };
  const stats: Stats = {};
  const outputs: OutputFile[] = [];
  const summary = (): ResourceSummary => ({
    cpu_seconds: round(state.cpuDone + (state.current?.cpuSeconds ?? 0)),
    wall_seconds: round((Date.now() - state.startedAt) / 1000),
    rss_mb: round(state.maxRss / MB),
    disk_mb: round(state.maxDisk / MB),
    ...(state.gpuMax !== undefined ? { gpu_util: state.gpuMax } : {}),
  });
  const outcome = (exitCode: ExitCode, ok: boolean, error?: string, taskDir?: string): PilotOutcome => ({
    exitCode,
    ok,
    ...(error !== undefined ? { error } : {}),
    stats,
    outputs,
    resources: summary(),
    ...(taskDir ? { taskDir } : {}),
  });

  // Stop everything when mon refuses the passkey or the caller aborts.
  const ac = new AbortController();
  let stale: Error | null = null;
  reporter.onFatal((e) => {
    stale = e;
    ac.abort(e);
  });
  const onOuterAbort = () => ac.abort(opts.signal?.reason ?? new Error('aborted'));
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });

  // 1. start (a signal while mon is still being retried ends the attempt)
  let start: StartResult;
  const stopStarting = () => void reporter.close();
  opts.signal?.addEventListener('abort', stopStarting, { once: true });
  try {
    // one nonce per execution: mon fences a second copy of this batch job (same passkey) with it
    start = await reporter.start(opts.host ?? os.hostname(), hostResources(), crypto.randomBytes(16).toString('hex'));
  } catch (e) {
    opts.signal?.removeEventListener('abort', onOuterAbort);
    const err = coerceError(e);
    logger.error('pilot.start failed', { error: err.message });
    await reporter.close();
    const code = e instanceof StalePasskeyError ? ExitCode.STALE_PASSKEY : opts.signal?.aborted ? ExitCode.SIGNALLED : ExitCode.MON_UNREACHABLE;
    return outcome(code, false, err.message);
  } finally {
    opts.signal?.removeEventListener('abort', stopStarting);
  }
  state.startedAt = Date.now();
  const t = start.task;
  const log = logger.scope({ task_id: t.id, dataset: t.dataset_id, job: t.job_index, task: t.name });
  log.info('task started', { host: opts.host ?? os.hostname() });

  // The task's area: work/ is FIRN_SCRATCH (the modules' cwd); pilot/ holds our own files.
  const scratchRoot = path.resolve(opts.scratchRoot ?? os.tmpdir());
  fs.mkdirSync(scratchRoot, { recursive: true });
  let reused = opts.reuseArea && !opts.keepScratch ? path.join(scratchRoot, opts.reuseArea) : null;
  if (reused) {
    try {
      prepareReusedArea(reused);
    } catch (e) {
      log.warn('cannot reuse the task area; using a new one', { dir: reused, error: coerceError(e).message });
      reused = null;
    }
  }
  const taskDir = reused ?? fs.mkdtempSync(path.join(scratchRoot, `firn-${t.dataset_id}-${t.job_index}-${t.name.replace(/[^A-Za-z0-9_-]/g, '_')}-`));
  const work = path.join(taskDir, 'work');
  const privateRoot = path.join(taskDir, 'pilot');
  if (!reused) {
    fs.mkdirSync(work);
    fs.mkdirSync(privateRoot);
  }
  /** Module areas under pilot/ this task used (a reused area keeps them for the next task). */
  const usedPrivate = new Set<string>();
  const stager = new Stager({ ...opts.stager, logger: log });
  const siteTemp = typeof start.system?.site_temp === 'string' && start.system.site_temp ? start.system.site_temp : undefined;

  // Heartbeats
  const hbSeconds =
    opts.heartbeatSeconds ?? num((opts.env ?? process.env).FIRN_PILOT_HEARTBEAT_SECONDS) ?? num(start.system?.heartbeat_seconds) ?? 60;
  let hbBusy = false;
  const heartbeat = async () => {
    if (hbBusy) return;
    hbBusy = true;
    try {
      const disk = await diskUsage(taskDir);
      const gpu = await gpuUtilization();
      state.maxDisk = Math.max(state.maxDisk, disk);
      if (gpu !== undefined) state.gpuMax = Math.max(state.gpuMax ?? 0, gpu);
      reporter.heartbeat({
        cpu_seconds: round(state.cpuDone + (state.current?.cpuSeconds ?? 0)),
        rss_mb: round((state.current?.rssBytes ?? 0) / MB),
        disk_mb: round(disk / MB),
        wall_seconds: round((Date.now() - state.startedAt) / 1000),
        ...(gpu !== undefined ? { gpu_util: gpu } : {}),
      });
    } catch (e) {
      log.warn('heartbeat failed', { error: coerceError(e).message });
    } finally {
      hbBusy = false;
    }
  };
  const hbTimer = setInterval(() => void heartbeat(), Math.max(0.05, hbSeconds) * 1000);

  let cleaned = false;
  const cleanScratch = async () => {
    if (cleaned) return;
    cleaned = true;
    if (opts.keepScratch) log.info('keeping scratch', { dir: taskDir });
    else if (reused) {
      try {
        emptyReusedArea(taskDir, usedPrivate);
      } catch (e) {
        log.warn('cannot empty scratch', { error: coerceError(e).message });
      }
    }
    else await fs.promises.rm(taskDir, { recursive: true, force: true }).catch((e) => log.warn('cannot remove scratch', { error: coerceError(e).message }));
  };

  let failure: string | null = null;
  try {
    // 2. expand
    const config = start.config;
    const taskConfig = findTask(config, t.name, t.task_index);
    const system: Record<string, unknown> = {
      ...start.system,
      scratch: work,
      hostname: os.hostname(),
      ...(siteTemp ? { site_temp: siteTemp } : {}),
    };
    const ctx: ExpressionContext = {
      args: start.args ?? {},
      steering: (config.steering?.parameters ?? {}) as Record<string, unknown>,
      system,
      dataset: t.dataset_id,
      job: t.job_index,
      task: t.name,
      jobs_total: t.jobs_total,
      iter: 0,
    };
    const expand = <T>(v: T, iter = 0): T => {
      try {
        return expandConfig(v, { ...ctx, iter });
      } catch (e) {
        throw new TaskFailedError(`config: ${coerceError(e).message}`);
      }
    };
    const requirements = resolveRequirements(expand(taskConfig.requirements ?? {}), t.requirements);
    const limits: Limits = {
      memoryMb: requirements.memory ?? null,
      time: requirements.time ? { startedAt: state.startedAt, minutes: requirements.time } : null,
    };
    log.info('requirements', { memory_mb: limits.memoryMb ?? undefined, time_min: requirements.time ?? undefined });
    const data = expand(taskConfig.data ?? []);

    // 3. metaprojects
    const metaprojectDirs = await prepareMetaprojects(config, taskConfig, expand, {
      cacheDir: opts.cacheDir ?? path.join(scratchRoot, 'firn-cache'),
      stager,
      log,
      into: path.join(taskDir, 'metaprojects'),
    });
    if (ac.signal.aborted) throw new AbortedError('stopped');

    // 4. inputs
    await stageInputs(data, start, work, siteTemp, stager, log);
    if (ac.signal.aborted) throw new AbortedError('stopped');

    // 5. trays
    const baseEnv: NodeJS.ProcessEnv = {
      ...(opts.env ?? process.env),
      FIRN_DATASET: String(t.dataset_id),
      FIRN_JOB: String(t.job_index),
      FIRN_JOBS_TOTAL: String(t.jobs_total),
      FIRN_TASK: t.name,
      FIRN_TASK_ID: String(t.id),
      FIRN_SCRATCH: work,
    };
    for (const tray of taskConfig.trays ?? []) {
      const iterations = Math.max(1, Math.floor(num(expand(tray.iterations ?? 1)) ?? 1));
      const mpDir = tray.metaproject ? metaprojectDirs.get(expand(tray.metaproject)) : undefined;
      for (let iter = 0; iter < iterations; iter++) {
        const modules = expand(tray.modules ?? [], iter);
        for (const mod of modules) {
          if (ac.signal.aborted) throw new AbortedError('stopped');
          const tl = timeLimitReached(limits);
          if (tl) throw new TaskFailedError(tl.message);
          const modStats = await runOneModule({
            tray: tray.name,
            iteration: iter,
            iterations,
            mod,
            work,
            privateRoot,
            baseEnv,
            metaprojectDir: mpDir,
            limits,
            signal: ac.signal,
            stager,
            log,
            external: start.external_modules?.find((x) => x.tray === tray.name && x.module === mod.name),
            state,
            reporter,
            usedPrivate,
            ...(opts.sampleMs !== undefined ? { sampleMs: opts.sampleMs } : {}),
          });
          addStats(stats, modStats);
        }
      }
    }

    // 6. outputs
    for (const entry of data) {
      if (entry.movement !== 'output' && entry.movement !== 'both') continue;
      if (ac.signal.aborted) throw new AbortedError('stopped');
      const file = insideScratch(work, entry.local);
      if (!fs.existsSync(file)) throw new TaskFailedError(`output ${entry.local} was not produced`);
      const sums = await checksumFile(file);
      // the same derivation firn-mon applies to what we report (core's output-locations.ts)
      let loc: ReturnType<typeof outputLocation>;
      try {
        loc = outputLocation(entry, siteTemp, { dataset: t.dataset_id, job: t.job_index, task: t.name });
      } catch (e) {
        throw new TaskFailedError(coerceError(e).message);
      }
      log.info('staging output', { local: entry.local, to: redactUrl(loc.temp_url), size: sums.size });
      await stager.upload(file, loc.temp_url, sums);
      outputs.push({ local_name: entry.local, url: loc.url, temp_url: loc.temp_url, type: loc.type, size: sums.size, md5: sums.md5, sha256: sums.sha256 });
    }
  } catch (e) {
    if (stale || ac.signal.aborted) {
      failure = null;
    } else if (e instanceof TaskFailedError || e instanceof ResourceLimitError) {
      failure = e.message;
    } else {
      failure = coerceError(e).message;
    }
    if (failure) log.error('task failed', { error: failure });
  } finally {
    clearInterval(hbTimer);
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }

  try {
    if (stale || ac.signal.aborted) {
      const why = stale ? 'passkey refused by mon' : 'stopped by signal';
      log.error('stopping', { reason: why });
      await cleanScratch();
      await stager.close();
      if (!stale) {
        reporter.log('pilot', logger.tail());
        await reporter.flush(5_000);
      }
      return outcome(stale ? ExitCode.STALE_PASSKEY : ExitCode.SIGNALLED, false, why);
    }

    // 7. report: files, stats (only for a successful task: dataset statistics must not mix in
    // partial runs), our own log; then clean up and finish.
    await heartbeat();
    if (!failure) {
      if (outputs.length) reporter.files(outputs);
      if (!('cpu_seconds' in stats)) stats.cpu_seconds = 0;
      reporter.stats(roundStats(stats));
    }
    await stager.close();
    await cleanScratch();
    log.info(failure ? 'task failed; finishing' : 'task done; finishing', summary() as unknown as Record<string, unknown>);
    reporter.log('pilot', logger.tail());
    let status: string | undefined;
    try {
      status = (await reporter.finish(!failure, failure ?? undefined, summary())).status;
    } catch (e) {
      const err = coerceError(e);
      log.error('pilot.finish not delivered', { error: err.message });
      return outcome(e instanceof StalePasskeyError ? ExitCode.STALE_PASSKEY : ExitCode.MON_UNREACHABLE, false, failure ?? err.message, taskDir);
    }
    log.info('finished', { status });
    return outcome(failure ? ExitCode.TASK_FAILED : ExitCode.OK, !failure, failure ?? undefined, taskDir);
  } finally {
    await cleanScratch();
    await stager.close();
    await reporter.close();
  }
}

/** A reused task area, ready for a task: work/ and pilot/ exist, work/ is empty, nothing else is there. */
function prepareReusedArea(dir: string): void {
  for (const d of [dir, path.join(dir, 'work'), path.join(dir, 'pilot')]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  emptyReusedArea(dir, null);
}

/**
 * Empty a reused task area: everything in work/ and beside work/ and pilot/ goes; under pilot/
 * the module areas named in `keep` stay (their files are emptied in place by the next module
 * that uses them), the others go (`keep` null: all stay).
 */
function emptyReusedArea(dir: string, keep: Set<string> | null): void {
  // synchronous: a few entries, and no thread-pool round trip for each
  const rmAll = (parent: string, names: string[]) => {
    for (const n of names) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
  };
  const list = (d: string) => {
    try {
      return fs.readdirSync(d);
    } catch {
      return [] as string[];
    }
  };
  rmAll(path.join(dir, 'work'), list(path.join(dir, 'work')));
  rmAll(dir, list(dir).filter((n) => n !== 'work' && n !== 'pilot'));
  if (keep) rmAll(path.join(dir, 'pilot'), list(path.join(dir, 'pilot')).filter((n) => !keep.has(n)));
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function roundStats(s: Stats): Stats {
  const out: Stats = {};
  for (const [k, v] of Object.entries(s)) out[k] = k === 'cpu_seconds' ? round(v) : v;
  return out;
}

/** Mon's requirements (numbers, possibly bumped by a retry rule) win over the config's. */
export function resolveRequirements(fromConfig: object, fromMon: Requirements | undefined): Requirements {
  const out: Requirements = {};
  for (const k of ['cpu', 'gpu', 'memory', 'disk', 'time'] as const) {
    const v = num(fromMon?.[k]) ?? num((fromConfig as Record<string, unknown>)[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

async function prepareMetaprojects(
  config: DatasetConfig,
  task: TaskConfig,
  expand: <T>(v: T, iter?: number) => T,
  o: { cacheDir: string; stager: Stager; log: Logger; into: string },
): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  const wanted = new Set((task.trays ?? []).map((t) => (t.metaproject ? expand(t.metaproject) : '')).filter(Boolean));
  if (!wanted.size) return dirs;
  const cache = new MetaprojectCache(o.cacheDir, o.stager, o.log);
  const specs = expand(config.steering?.metaprojects ?? []);
  for (const name of wanted) {
    const spec = specs.find((m) => m.name === name);
    if (!spec) throw new TaskFailedError(`metaproject ${JSON.stringify(name)} is not in steering.metaprojects`);
    const got = await cache.fetch(spec);
    const dir = path.join(o.into, name.replace(/[^A-Za-z0-9._-]/g, '_'));
    await unpackArchive(got.path, dir);
    o.log.info('metaproject ready', { metaproject: name, from_cache: !got.downloaded, dir });
    dirs.set(name, dir);
  }
  return dirs;
}

async function stageInputs(
  data: DataEntry[],
  start: StartResult,
  work: string,
  siteTemp: string | undefined,
  stager: Stager,
  log: Logger,
): Promise<void> {
  // The job's inputs (with checksums from the database) win over a data[] entry of the same name.
  const wanted = new Map<string, { url: string; expected: { md5?: string | null; sha256?: string | null; size?: number | null } }>();
  for (const entry of data) {
    if (entry.movement !== 'input' && entry.movement !== 'both') continue;
    wanted.set(entry.local, { url: resolveRemote(entry.remote, siteTemp), expected: parseChecksum({ checksum: entry.checksum ?? null }) });
  }
  for (const input of start.inputs ?? []) {
    wanted.set(input.local_name, { url: input.url, expected: { md5: input.md5 ?? null, sha256: input.sha256 ?? null, size: input.size ?? null } });
  }
  for (const [local, { url, expected }] of wanted) {
    urlScheme(url); // unsupported schemes fail here, with the URL in the message
    const dest = insideScratch(work, local);
    log.info('staging input', { local, from: redactUrl(url) });
    try {
      const sums = await stager.download(url, dest, expected);
      log.info('input ready', { local, size: sums.size, sha256: sums.sha256 });
    } catch (e) {
      throw new TaskFailedError(`input ${local}: ${coerceError(e).message}`);
    }
  }
}

interface OneModule {
  tray: string;
  iteration: number;
  iterations: number;
  mod: ModuleConfig;
  work: string;
  privateRoot: string;
  baseEnv: NodeJS.ProcessEnv;
  metaprojectDir: string | undefined;
  limits: Limits;
  signal: AbortSignal;
  stager: Stager;
  log: Logger;
  external: ExternalModuleCopy | undefined;
  state: RunState;
  reporter: Reporter;
  /** Module areas used by this task (added to here). */
  usedPrivate: Set<string>;
  sampleMs?: number;
}

/** Run one module; returns its statistics (cpu_seconds included) or throws TaskFailedError. */
async function runOneModule(m: OneModule): Promise<Stats> {
  const where = `${m.tray}/${m.mod.name}`;
  const log = m.log.scope({ module: where, ...(m.iterations > 1 ? { iter: m.iteration } : {}) });
  const privateDir = path.join(m.privateRoot, `${m.tray}.${m.mod.name}.${m.iteration}`.replace(/[^A-Za-z0-9._-]/g, '_'));
  fs.mkdirSync(privateDir, { recursive: true });
  m.usedPrivate.add(path.basename(privateDir));
  const statsFile = path.join(privateDir, 'stats');
  const stdoutFile = path.join(privateDir, 'stdout');
  const stderrFile = path.join(privateDir, 'stderr');
  // created empty, or emptied in place when a reused area has them from an earlier task
  for (const f of [statsFile, stdoutFile, stderrFile]) fs.writeFileSync(f, '');
  const env: NodeJS.ProcessEnv = {
    ...m.baseEnv,
    FIRN_STATS: statsFile,
    FIRN_ITER: String(m.iteration),
    FIRN_TRAY: m.tray,
    FIRN_MODULE: m.mod.name,
  };
  if (m.metaprojectDir) {
    env.FIRN_METAPROJECT = m.metaprojectDir;
    const bin = path.join(m.metaprojectDir, 'bin');
    if (fs.existsSync(bin)) env.PATH = `${bin}${path.delimiter}${env.PATH ?? ''}`;
  }
  for (const [k, v] of Object.entries(m.mod.env ?? {})) if (v !== undefined && v !== null) env[k] = String(v);

  const ctx: ModuleContext = {
    tray: m.tray,
    module: m.mod.name,
    iteration: m.iteration,
    config: m.mod,
    parameters: m.mod.parameters ?? {},
    scratch: m.work,
    privateDir,
    env,
    statsFile,
    stdoutFile,
    stderrFile,
    limits: m.limits,
    signal: m.signal,
    stager: m.stager,
    logger: log,
    onSample: (s) => {
      m.state.current = s;
      m.state.maxRss = Math.max(m.state.maxRss, s.rssBytes);
    },
    ...(m.external ? { external: m.external } : {}),
    ...(m.sampleMs !== undefined ? { sampleMs: m.sampleMs } : {}),
  };

  const uploadTails = () => {
    for (const [stream, file] of [['stdout', stdoutFile], ['stderr', stderrFile]] as const) {
      const tail = readTail(file, LOG_TAIL_BYTES);
      if (tail) m.reporter.log(logName(m.tray, m.mod.name, m.iteration, m.iterations, stream), tail);
    }
  };

  log.info('module starting', { class: m.mod.class, ...(m.mod.src ? { src: m.mod.src } : {}) });
  let cpu = 0;
  try {
    const impl = moduleFor(m.mod, where);
    const r = await impl.execute(ctx);
    cpu = r.stats.cpu_seconds ?? 0;
    const fromFile = parseStats(fs.readFileSync(statsFile, 'utf8'));
    if (fromFile.bad.length) log.warn('ignored malformed FIRN_STATS lines', { lines: fromFile.bad.slice(0, 5) });
    const out: Stats = addStats({ ...r.stats }, fromFile.stats);
    // cpu_seconds is the measured CPU time plus whatever the module itself declared under that name.
    out.cpu_seconds = cpu + (fromFile.stats.cpu_seconds ?? 0);
    log.info('module done', { cpu_seconds: round(cpu), wall_seconds: round(r.wallSeconds), max_rss_mb: round(r.maxRssBytes / MB) });
    return out;
  } catch (e) {
    cpu = m.state.current?.cpuSeconds ?? 0;
    if (e instanceof AbortedError) throw e;
    if (e instanceof ResourceLimitError) throw new TaskFailedError(`module ${where}: ${e.message}`);
    if (e instanceof ModuleExitError) throw new TaskFailedError(`module ${where} exited with code ${e.exitCode}: ${e.lastStderrLine}`);
    throw new TaskFailedError(`module ${where}: ${coerceError(e).message}`);
  } finally {
    m.state.cpuDone += cpu;
    m.state.current = null;
    uploadTails();
  }
}

export { MonUnreachableError, StalePasskeyError };
