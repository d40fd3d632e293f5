import crypto from 'node:crypto';

/** Resource requirements of one task, after defaults. memory and disk in MB, time in minutes. */
export interface Requirements {
  cpu: number;
  gpu: number;
  memory: number;
  disk: number;
  time: number;
  site?: string | null;
}

/** One task handed to a plugin for submission. */
export interface SubmitTask {
  taskId: number;
  datasetId: number;
  jobIndex: number;
  taskName: string;
  requirements: Requirements;
  /** Absolute path (on the submit host) of the file holding this task's passkey, mode 0600. */
  passkeyFile: string;
  /** Directory (on the submit host) reserved for this task's script, logs and outputs of the batch system. */
  taskDir: string;
  /**
   * Run this argument vector instead of the monitored pilot (`<pilotCommand> --mon … --task …
   * --passkey-file …`); the passkey file is then not read. Used by `firn run` (unmonitored
   * mode: no mon, no passkey), whose command is the job's own script running the pilot.
   */
  command?: string[];
}

/** A group of tasks with identical requirements, submitted as one batch submission (array) where possible. */
export interface SubmitBatch {
  tasks: SubmitTask[];
  /** Directory (on the submit host) for this submission's files. */
  dir: string;
  /**
   * Worker hosts these jobs must not run on: the grid's black-holed nodes, as pilots reported
   * their hostnames (filled by the queue daemon each cycle). Slurm (`--exclude`, only nodes
   * sinfo knows), SGE (`-l hostname=…`) and HTCondor (`requirements`) honour it; PBS and
   * local cannot (see their files). Names that are not plain hostnames are ignored.
   */
  excludeHosts?: string[];
}

/** What a plugin needs from the daemon's configuration. */
export interface PluginOptions {
  grid: string;
  /** URL of firn-mon that pilots report to. */
  monUrl: string;
  /** Command that runs the pilot on a worker node, e.g. `node /opt/firn/firn-pilot.js` or `/opt/firn/firn-pilot`. */
  pilotCommand: string;
  /** Scratch directory on the worker node ('' = batch system default / $TMPDIR). */
  scratch?: string;
  /** Variables exported in every job ([environment] section). */
  environment: Record<string, string>;
  /** Plugin-specific options: partition, queue, account, extra directives (one per line), … */
  partition?: string;
  queue?: string;
  account?: string;
  extraDirectives?: string[];
  /** Maximum number of concurrently running local processes (local plugin). */
  concurrency?: number;
  /**
   * Local plugin: tasks one long-lived `firn-pilot --worker` runs before it is replaced
   * (default 1: a new pilot process per task). Used only when the pilot is Firn's firn-pilot.
   */
  pilotReuse?: number;
  /** Local plugin: an idle pilot worker exits after this many seconds (default 30). */
  pilotIdleSeconds?: number;
  /**
   * Local plugin: submit() only records jobs; they start when the daemon calls submitted()
   * (or at the next status check). Set by firn-queue; `firn run` has no daemon and leaves it off.
   */
  startAfterSubmitted?: boolean;
  /** Where a plugin reports a problem it works around (the daemon's logger). */
  onWarning?: (message: string) => void;
  /**
   * The daemon's `[queue] submit_dir` on the submit host. The local plugin keeps its job
   * registry under `<submitDir>/.firn-local/` so that a restarted daemon still finds
   * (and can kill) the processes it started; required by the local plugin only.
   */
  submitDir?: string;
  /** Directory holding the batch system's commands (default: looked up on PATH), e.g. `/opt/slurm-torque/usr/bin`. */
  binDir?: string;
  /** SGE parallel environment used to request more than one slot (`-pe <name> <cpus>`); without it SGE jobs get one slot. */
  parallelEnvironment?: string;
  /** Largest array index the batch system accepts (Slurm MaxArraySize − 1, SGE max_aj_tasks); default 1000. */
  maxArrayIndex?: number;
}

/** Result of a submission: the batch id of each task (e.g. `1234_5` for an array element). */
export interface SubmitResult {
  /** taskId → batch id */
  batchIds: Map<number, string>;
}

/** Coarse state of a batch job as the batch system reports it. */
export const BatchState = {
  QUEUED: 'QUEUED',
  RUNNING: 'RUNNING',
  /** Finished with exit code 0 (the pilot will have reported; nothing to do). */
  COMPLETED: 'COMPLETED',
  /** Finished non-zero, node failure, out of memory, timeout … */
  FAILED: 'FAILED',
  /** Cancelled / removed / preempted. */
  CANCELLED: 'CANCELLED',
  /**
   * Not known to the batch system (any more) — confirmed: missing from the queue listing,
   * unknown when asked by its id, and not in accounting (see confirm-lost.ts).
   */
  UNKNOWN: 'UNKNOWN',
  /**
   * Could not be confirmed this cycle: a look-up failed, the batch system still knows the id
   * without reporting a state, or the job belongs to another submit host (a local job of
   * another submit directory). Never judged lost; asked again next cycle.
   */
  UNOBSERVED: 'UNOBSERVED',
} as const;
export type BatchState = (typeof BatchState)[keyof typeof BatchState];

export interface BatchJobStatus {
  batchId: string;
  state: BatchState;
  /** The batch system's own state word (e.g. `PD`, `qw`, `OUT_OF_MEMORY`). */
  rawState: string;
  /** Reason for failure / cancellation, in the batch system's words, when known. */
  reason?: string;
  exitCode?: number;
  /** The job name (carries the task id: `firn-<taskId>`), when the system reports it. */
  name?: string;
}

/** A batch job of this grid found by listing the queue (used to adopt or remove orphans). */
export interface ListedJob {
  batchId: string;
  name: string;
  state: BatchState;
}

/**
 * The batch-system plugin interface (names after the IceProd paper).
 * Implementations shell out through an Executor and parse output with pure functions.
 */
export interface BatchPlugin {
  readonly name: string;
  /**
   * Set when every job of this plugin runs on one known host (the local plugin: this
   * machine). While that host is black-holed the daemon claims nothing.
   */
  readonly workerHost?: string;
  /** Write the submit script(s) for the batch; returns the path of the script to submit. */
  writeConfig(batch: SubmitBatch): Promise<string>;
  /** Submit the script written by writeConfig; throws BatchSystemError with the tool's message on failure. */
  submit(batch: SubmitBatch, scriptPath: string): Promise<SubmitResult>;
  /**
   * Status of each given batch id. UNKNOWN only when confirmed (missing from the listing, unknown
   * by id, not in accounting: `confirmJobStatuses`); UNOBSERVED when that could not be settled.
   */
  checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>>;
  /** Cancel batch jobs; unknown ids are not an error. */
  remove(batchIds: string[]): Promise<void>;
  /**
   * Every Firn job of this grid in the batch queue, to find orphans to adopt; `name` is the
   * canonical `firn-<taskId>` whatever the batch name. Jobs of other grids or Firn instances
   * on the same batch account are not listed where the plugin can tell them apart (see
   * `gridTag`): Slurm by the job comment, SGE by the job name, HTCondor by `FirnGrid`,
   * local by its submit directory. PBS cannot (one batch account per grid there).
   */
  listJobs(): Promise<ListedJob[]>;
  /**
   * Remove every Firn job in the queue for which `keep` answers false (its task is no
   * longer active: suspended, reset, obsolete, unknown). Returns the jobs removed.
   */
  cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]>;
  /**
   * The daemon has recorded a submission (its tasks are QUEUED). A plugin that starts jobs
   * itself (local, with `startAfterSubmitted`) starts them now, so that no pilot asks mon for
   * a task that is still QUEUEING.
   */
  submitted?(): Promise<void>;
  close?(): Promise<void>;
}

/** Job name carrying the task id, so a restarted daemon can find what it submitted. */
export function jobNameFor(taskId: number): string {
  return `firn-${taskId}`;
}
/** The task id of a canonical (untagged) job name `firn-<taskId>`; null for anything else. */
export function taskIdFromJobName(name: string): number | null {
  const m = /^firn-(\d+)$/.exec(name.trim());
  return m ? Number(m[1]) : null;
}

/**
 * A grid's name as it can appear inside a batch job name: letters, digits, `_` and `.`
 * (valid in Slurm, SGE and PBS names and in shell `case` patterns, never `-`, so that
 * `firn-<tag>-<taskId>` parses unambiguously). A name that is already that and at most 32
 * characters long is its own tag; any other gets its first 23 characters with the others
 * replaced by `_`, then `_` and 8 hex digits of the name's sha256 (so `a b` and `a/b`
 * differ).
 */
export function gridTag(grid: string): string {
  if (/^[A-Za-z0-9_.]{1,32}$/.test(grid)) return grid;
  const hash = crypto.createHash('sha256').update(grid, 'utf8').digest('hex').slice(0, 8);
  return `${grid.replace(/[^A-Za-z0-9_.]/g, '_').slice(0, 23)}_${hash}`;
}

/** `firn-<gridTag>-`: the prefix of every batch job name of a grid where names carry it (SGE). */
export function gridJobPrefix(grid: string): string {
  return `firn-${gridTag(grid)}-`;
}
