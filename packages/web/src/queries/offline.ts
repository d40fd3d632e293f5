import { NotFoundError, type DbOrTrx, type JobStatus } from '@firn/core';
import { JOB_STATUSES, PER_PAGE, num, pageOf, zeroJobCounts, type Page } from './common';

/** `YYYY-MM` → first and last day; null when not a month. */
export function monthBounds(month: string): { first: string; last: string; year: number; month: number } | null {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m) return null;
  const year = Number(m[1]);
  const mon = Number(m[2]);
  if (mon < 1 || mon > 12 || year < 1900 || year > 9999) return null;
  const days = new Date(Date.UTC(year, mon, 0)).getUTCDate();
  const p = (n: number) => String(n).padStart(2, '0');
  return { first: `${year}-${p(mon)}-01`, last: `${year}-${p(mon)}-${p(days)}`, year, month: mon };
}

/** Is `date` a real calendar day `YYYY-MM-DD`? */
export function isDay(date: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

export interface CalendarDay {
  date: string;
  runs: number;
  jobs: Record<JobStatus, number>;
}

/** The month of the newest run (the calendar's default), or null when there are no runs. */
export async function latestRunMonth(db: DbOrTrx, datasetId?: number): Promise<string | null> {
  const q = db('run').max({ d: 'date' });
  if (datasetId !== undefined) q.where('dataset_id', datasetId);
  const row = (await q.first()) as { d: string | null } | undefined;
  return row?.d ? row.d.slice(0, 7) : null;
}

/** Per day of data taking in the month: runs and their jobs by (stored) status. */
export async function calendarMonth(db: DbOrTrx, month: string, datasetId?: number): Promise<Map<string, CalendarDay>> {
  const b = monthBounds(month);
  if (!b) throw new NotFoundError(`not a month: ${JSON.stringify(month)} (use YYYY-MM)`);
  const runs = db('run as r').select('r.date').count({ n: '*' }).whereBetween('r.date', [b.first, b.last]).groupBy('r.date');
  const jobs = db('run as r').join('job as j', 'j.run_id', 'r.id').select('r.date', 'j.status').count({ n: '*' }).whereBetween('r.date', [b.first, b.last]).groupBy('r.date', 'j.status');
  if (datasetId !== undefined) {
    runs.where('r.dataset_id', datasetId);
    jobs.where('r.dataset_id', datasetId);
  }
  const out = new Map<string, CalendarDay>();
  for (const r of (await runs) as Array<{ date: string; n: number | string }>) out.set(r.date, { date: r.date, runs: num(r.n), jobs: zeroJobCounts() });
  for (const r of (await jobs) as Array<{ date: string; status: string; n: number | string }>) {
    const d = out.get(r.date);
    if (d && r.status in d.jobs) d.jobs[r.status as JobStatus] += num(r.n);
  }
  return out;
}

export interface RunRow {
  id: number;
  dataset_id: number;
  dataset_description: string;
  run_number: number;
  date: string;
  jobs: Record<JobStatus, number>;
  total: number;
}

async function runRows(db: DbOrTrx, where: (q: ReturnType<DbOrTrx>) => void): Promise<RunRow[]> {
  const q = db('run as r').join('dataset as d', 'd.id', 'r.dataset_id').select('r.id', 'r.dataset_id', 'd.description', 'r.run_number', 'r.date').orderBy('r.run_number').limit(10_000);
  where(q);
  const runs = (await q) as Array<Record<string, unknown>>;
  const ids = runs.map((r) => Number(r.id));
  const counts = new Map<number, Record<JobStatus, number>>(ids.map((id) => [id, zeroJobCounts()]));
  for (let i = 0; i < ids.length; i += 500) {
    const part = ids.slice(i, i + 500);
    const rows = (await db('job').select('run_id', 'status').count({ n: '*' }).whereIn('run_id', part).groupBy('run_id', 'status')) as Array<{ run_id: number; status: string; n: number | string }>;
    for (const r of rows) {
      const c = counts.get(Number(r.run_id));
      if (c && r.status in c) c[r.status as JobStatus] += num(r.n);
    }
  }
  return runs.map((r) => {
    const jobs = counts.get(Number(r.id))!;
    return {
      id: Number(r.id), dataset_id: Number(r.dataset_id), dataset_description: String(r.description ?? ''), run_number: num(r.run_number), date: String(r.date),
      jobs, total: JOB_STATUSES.reduce((a, s) => a + jobs[s], 0),
    };
  });
}

/** `/days/YYYY-MM-DD`: the runs taken that day (run_date_idx), with their jobs by status. */
export async function dayRuns(db: DbOrTrx, date: string): Promise<RunRow[]> {
  if (!isDay(date)) throw new NotFoundError(`not a date: ${JSON.stringify(date)} (use YYYY-MM-DD)`);
  return runRows(db, (q) => q.where('r.date', date));
}

export interface RunView {
  run: RunRow;
  jobs: Page<{ job_index: number; status: string; status_changed_at: number; inputs: number }>;
}

/** `/runs/ID`: the run and one page of its jobs (job_run_idx). */
export async function runView(db: DbOrTrx, runId: number, options: { page?: number; perPage?: number } = {}): Promise<RunView> {
  const [run] = await runRows(db, (q) => q.where('r.id', runId));
  if (!run) throw new NotFoundError(`no run ${runId}`);
  const perPage = options.perPage ?? PER_PAGE;
  const page = Math.max(1, options.page ?? 1);
  const rows = (await db('job').select('id', 'job_index', 'status', 'status_changed_at').where('run_id', runId).orderBy('job_index').limit(perPage).offset((page - 1) * perPage)) as Array<Record<string, unknown>>;
  const ids = rows.map((r) => Number(r.id));
  const inputs = ids.length
    ? ((await db('file').select('job_id').count({ n: '*' }).whereIn('job_id', ids).andWhere('kind', 'input').groupBy('job_id')) as Array<{ job_id: number; n: number | string }>)
    : [];
  return {
    run,
    jobs: pageOf(
      rows.map((r) => ({
        job_index: num(r.job_index), status: String(r.status), status_changed_at: num(r.status_changed_at),
        inputs: num(inputs.find((i) => Number(i.job_id) === Number(r.id))?.n),
      })),
      run.total,
      page,
      perPage,
    ),
  };
}
