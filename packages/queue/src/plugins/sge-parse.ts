/**
 * Pure parsers for (Son of) Grid Engine command output — qsub, qstat, qstat -xml, qacct —
 * checked against transcripts of SGE 8.1.9 (reference fixture sge.txt).
 *
 * Batch ids: `123` for a plain job, `123.4` for task 4 of array job 123 (the form qdel,
 * qstat -j and qacct -t understand).
 */
import { parseIndexList } from './array-plan';
import { BatchState, type BatchJobStatus } from './plugin';

/**
 * Job id (and array task indexes) from qsub: `-terse` prints `123` or `123.1-4:1`;
 * without it `Your job 123 ("name") has been submitted` /
 * `Your job-array 123.1-4:1 ("name") has been submitted`. null when there is none.
 */
export function parseSgeQsubOutput(stdout: string): { jobId: string; tasks?: number[] } | null {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    const m = /^(?:Your job(?:-array)? )?(\d+)(?:\.(\S+?))?(?: \(".*"\) has been submitted)?$/.exec(line);
    if (!m) continue;
    if (m[2] === undefined) return { jobId: m[1] as string };
    const tasks = parseIndexList(m[2]);
    if (tasks.length === 0) continue;
    return { jobId: m[1] as string, tasks };
  }
  return null;
}

/**
 * SGE state codes are combinations of letters: d(eletion) E(rror) h(old) r(unning)
 * R(estarted) s/S(uspended) t(ransferring) T(hreshold) w(aiting) q(ueued) z(ombie).
 * Precedence: an error state (Eqw …) never runs again without help → FAILED; a job being
 * deleted (dr, dt, dqw …) → CANCELLED; running/transferring (also restarted, suspended) →
 * RUNNING; held or waiting → QUEUED.
 */
export function sgeState(code: string): Pick<BatchJobStatus, 'state' | 'rawState' | 'reason'> {
  const raw = code.trim();
  const has = (c: string): boolean => raw.includes(c);
  if (!raw || /[^dEhrRsStTwqz]/.test(raw)) return { state: BatchState.UNKNOWN, rawState: raw };
  if (has('E')) return { state: BatchState.FAILED, rawState: raw, reason: `error state ${raw} (see qstat -j for the reason)` };
  if (has('d')) return { state: BatchState.CANCELLED, rawState: raw, reason: 'being deleted' };
  if (has('z')) return { state: BatchState.COMPLETED, rawState: raw };
  const suspended = has('s') || has('S') || has('T');
  if (has('r') || has('t') || suspended) {
    return suspended ? { state: BatchState.RUNNING, rawState: raw, reason: 'suspended' } : { state: BatchState.RUNNING, rawState: raw };
  }
  if (has('h')) return { state: BatchState.QUEUED, rawState: raw, reason: 'held' };
  if (has('q') || has('w')) return { state: BatchState.QUEUED, rawState: raw };
  return { state: BatchState.UNKNOWN, rawState: raw };
}

export interface SgeQstatJob {
  jobId: string;
  name: string;
  owner: string;
  state: string;
  /** Array task(s) of this entry: `2` (one running task) or `1-4:1` / `5,7` (pending tasks). */
  tasks?: string;
}

function decodeXml(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/g, '&');
}

/** `qstat -xml` (also `qstat -f -xml`): every `<job_list>` entry, running and pending. */
export function parseSgeQstatXml(xml: string): SgeQstatJob[] {
  const jobs: SgeQstatJob[] = [];
  const re = /<job_list\b[^>]*>([\s\S]*?)<\/job_list>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(xml))) {
    const body = m[1] as string;
    const tag = (name: string): string | undefined => {
      const t = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(body);
      return t ? decodeXml((t[1] as string).trim()) : undefined;
    };
    const jobId = tag('JB_job_number');
    if (!jobId) continue;
    const job: SgeQstatJob = { jobId, name: tag('JB_name') ?? '', owner: tag('JB_owner') ?? '', state: tag('state') ?? '' };
    const tasks = tag('tasks');
    if (tasks) job.tasks = tasks;
    jobs.push(job);
  }
  return jobs;
}

/** One status per batch id: array entries are expanded to `<job>.<task>` for every task they hold. */
export function sgeJobStatuses(jobs: readonly SgeQstatJob[]): BatchJobStatus[] {
  const out: BatchJobStatus[] = [];
  for (const job of jobs) {
    const base = { ...sgeState(job.state), name: job.name };
    if (job.tasks === undefined) {
      out.push({ batchId: job.jobId, ...base });
      continue;
    }
    for (const k of parseIndexList(job.tasks)) out.push({ batchId: `${job.jobId}.${k}`, ...base });
  }
  return out;
}

/**
 * Plain `qstat` (and the job lines of `qstat -f`): job-ID prior name user state date time
 * [queue] slots [ja-task-ID]. Names are truncated to 10 characters here, so the plugin
 * itself uses `qstat -xml`.
 */
export function parseSgeQstatTable(stdout: string): SgeQstatJob[] {
  const jobs: SgeQstatJob[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^\d+$/.test(f[0] as string) || !/^\d/.test(f[1] as string)) continue;
    let i = 7;
    if ((f[i] as string).includes('@')) i++; // queue instance
    i++; // slots
    const job: SgeQstatJob = { jobId: f[0] as string, name: f[2] as string, owner: f[3] as string, state: f[4] as string };
    if (f[i] !== undefined) job.tasks = f[i] as string;
    jobs.push(job);
  }
  return jobs;
}

export type QacctRecord = Record<string, string>;

/** `qacct -j` output: blocks separated by `=====` lines, each `key  value` per line. */
export function parseQacct(stdout: string): QacctRecord[] {
  const records: QacctRecord[] = [];
  let current: QacctRecord | null = null;
  for (const line of stdout.split('\n')) {
    if (/^=+\s*$/.test(line)) {
      current = {};
      records.push(current);
      continue;
    }
    const m = /^(\S+)\s+(.*?)\s*$/.exec(line);
    if (!m) continue;
    if (!current) {
      current = {};
      records.push(current);
    }
    current[m[1] as string] = m[2] as string;
  }
  return records.filter((r) => r['jobnumber'] !== undefined);
}

/**
 * Accounting records → final statuses. `failed` ≠ 0 means SGE itself failed or killed the
 * job (e.g. `100 : assumedly after job` for a job killed by a signal: qdel, h_rt, h_vmem);
 * otherwise `exit_status` decides. For a job that ran several times the last record wins.
 */
export function qacctStatuses(records: readonly QacctRecord[]): BatchJobStatus[] {
  const byId = new Map<string, BatchJobStatus>();
  for (const r of records) {
    const job = r['jobnumber'] as string;
    const task = r['taskid'];
    const id = task && /^\d+$/.test(task) && task !== '0' ? `${job}.${task}` : job;
    const failedText = (r['failed'] ?? '').trim();
    const failed = Number.parseInt(failedText, 10);
    const exit = Number.parseInt(r['exit_status'] ?? '', 10);
    const status: BatchJobStatus = {
      batchId: id,
      state: BatchState.UNKNOWN,
      rawState: `failed=${Number.isNaN(failed) ? '?' : failed} exit_status=${Number.isNaN(exit) ? '?' : exit}`,
    };
    if (r['jobname']) status.name = r['jobname'];
    if (!Number.isNaN(exit)) status.exitCode = exit;
    if (Number.isNaN(failed) || Number.isNaN(exit)) {
      status.state = BatchState.UNKNOWN;
    } else if (failed !== 0) {
      status.state = BatchState.FAILED;
      status.reason = `failed ${failedText}${exit !== 0 ? `; exit status ${exit}` : ''}`;
    } else if (exit !== 0) {
      status.state = BatchState.FAILED;
      status.reason = `exit status ${exit}`;
    } else {
      status.state = BatchState.COMPLETED;
    }
    byId.set(id, status);
  }
  return [...byId.values()];
}

/**
 * qdel / qstat -j / qacct saying the job is unknown: `denied: job "9" does not exist`,
 * `Following jobs do not exist`, `error: job id 9 not found`.
 */
/**
 * `qstat -j N` (pure): true when SGE still knows the job (exit 0), false when it says the job
 * does not exist (exit 1, `Following jobs do not exist`: test/fixtures/sge/qstat-j-unknown),
 * null when the command failed otherwise (no answer).
 */
export function sgeQstatJKnown(code: number | null, stdout: string, stderr: string): boolean | null {
  if (code === 0) return true;
  return isSgeUnknownJob(stderr + '\n' + stdout) ? false : null;
}

export function isSgeUnknownJob(text: string): boolean {
  return /does not exist|do not exist|job id \S+ not found/i.test(text);
}

/** What `qstat -j` says when the scheduler keeps no per-job information (`schedd_job_info false`). */
const SGE_NO_JOB_INFO = /collecting of scheduler job information is turned off/i;

/**
 * `qstat -j <ids>` (pure): the `scheduling info:` of each job — why SGE's scheduler does not
 * start it (`(-l arch=sparc64) cannot run at host "localhost" because it offers only
 * hl:arch=lx-amd64`, `Job is in hold state`; test/fixtures/sge/qstat-j-pending) — keyed by job
 * number, its messages (continuation lines included) joined with `; `. Jobs without one, and a
 * scheduler that collects none, are left out.
 */
export function parseSgeSchedulingInfo(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  let job: string | null = null;
  let info: string[] | null = null;
  const flush = () => {
    if (job !== null && info && info.length) out.set(job, info.join('; '));
    info = null;
  };
  for (const line of stdout.split('\n')) {
    if (/^=+\s*$/.test(line)) {
      flush();
      job = null;
      continue;
    }
    const number = /^job_number:\s+(\d+)\s*$/.exec(line);
    if (number) {
      flush();
      job = number[1]!;
      continue;
    }
    const start = /^scheduling info:\s*(.*)$/.exec(line);
    if (start) {
      info = [];
      const text = start[1]!.trim();
      if (text && !SGE_NO_JOB_INFO.test(text)) info.push(text);
      continue;
    }
    // continuation lines are indented; any other `key: value` line ends the block
    if (info && /^\s{2,}\S/.test(line)) {
      const text = line.trim();
      if (!SGE_NO_JOB_INFO.test(text) && !info.includes(text)) info.push(text);
    } else if (info && line.trim()) flush();
  }
  flush();
  return out;
}
