/**
 * How a batch of tasks becomes job arrays, and how an array element maps back to its task.
 *
 * The mapping is carried by the job name alone, so a restarted daemon (or a person with
 * squeue/qstat) can recover it without any file: an array named `firn-a<base>` holds the
 * tasks `base + (index − firstIndex)` where `index` is the element's array index
 * (`$SLURM_ARRAY_TASK_ID`, 0-based; `$SGE_TASK_ID`, 1-based). A chunk of one task is
 * submitted as a plain job named `firn-<taskId>` (jobNameFor).
 *
 * Where names also carry the grid (SGE), the prefix `firn-` becomes `firn-<gridTag>-`
 * (gridJobPrefix): `firn-<tag>-a<base>`, `firn-<tag>-<taskId>`.
 */
/** The prefix of untagged names (Slurm, PBS, and every name before grid tags). */
export const PLAIN_PREFIX = 'firn-';

export interface ArrayChunk {
  /** Smallest task id of the chunk. */
  base: number;
  /** Task ids, ascending. */
  taskIds: number[];
}

/** True when the chunk is submitted as an array (more than one task). */
export function isArray(chunk: ArrayChunk): boolean {
  return chunk.taskIds.length > 1;
}

/** Job name of a chunk: `<prefix><taskId>` for one task, `<prefix>a<base>` for an array (prefix `firn-` or `firn-<tag>-`). */
export function chunkJobName(chunk: ArrayChunk, prefix: string = PLAIN_PREFIX): string {
  return isArray(chunk) ? `${prefix}a${chunk.base}` : `${prefix}${chunk.base}`;
}

function sortedUnique(taskIds: readonly number[]): number[] {
  const sorted = [...taskIds].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[i] as number;
    if (!Number.isSafeInteger(id) || id < 0) throw new Error(`task id must be a non-negative integer, got ${id}`);
    if (i > 0 && sorted[i - 1] === id) throw new Error(`task ${id} appears twice in one batch`);
  }
  return sorted;
}

/**
 * Slurm: arrays take any index list (`--array=0,3,7-9`), bounded by MaxArraySize.
 * Greedy windows: each chunk spans task ids `base … base + maxIndex`.
 */
export function planWindows(taskIds: readonly number[], maxIndex: number): ArrayChunk[] {
  const chunks: ArrayChunk[] = [];
  let current: ArrayChunk | null = null;
  for (const id of sortedUnique(taskIds)) {
    if (current && id - current.base <= maxIndex) current.taskIds.push(id);
    else {
      current = { base: id, taskIds: [id] };
      chunks.push(current);
    }
  }
  return chunks;
}

/**
 * SGE: `-t first-last[:step]` is one range, so an array holds consecutive task ids only.
 * Each run of consecutive ids (at most maxCount long) is one chunk.
 */
export function planRuns(taskIds: readonly number[], maxCount: number): ArrayChunk[] {
  const chunks: ArrayChunk[] = [];
  let current: ArrayChunk | null = null;
  for (const id of sortedUnique(taskIds)) {
    const last: number = current ? (current.taskIds[current.taskIds.length - 1] as number) : NaN;
    if (current && id === last + 1 && current.taskIds.length < maxCount) current.taskIds.push(id);
    else {
      current = { base: id, taskIds: [id] };
      chunks.push(current);
    }
  }
  return chunks;
}

/** `[0,1,2,5,7,8,9]` → `0-2,5,7-9` (Slurm --array syntax). */
export function formatIndexList(indexes: readonly number[]): string {
  const parts: string[] = [];
  const sorted = [...indexes].sort((a, b) => a - b);
  let i = 0;
  while (i < sorted.length) {
    const start = sorted[i] as number;
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1] === end + 1) end = sorted[++i] as number;
    parts.push(start === end ? `${start}` : end === start + 1 ? `${start},${end}` : `${start}-${end}`);
    i++;
  }
  return parts.join(',');
}

/**
 * Expand an index list as batch systems print them: `1-4:1`, `3,5-9:2`, `[0-3,7]`, `5`,
 * Slurm's `[0-3%2]` (a `%` throttle is ignored). Returns [] for anything unparseable.
 */
export function parseIndexList(spec: string): number[] {
  const body = spec.trim().replace(/^\[/, '').replace(/\]$/, '').replace(/%\d+$/, '');
  if (!body) return [];
  const out: number[] = [];
  for (const part of body.split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!m) return [];
    const start = Number(m[1]);
    const end = m[2] !== undefined ? Number(m[2]) : start;
    const step = m[3] !== undefined ? Number(m[3]) : 1;
    if (step < 1 || end < start || end - start > 10_000_000) return [];
    for (let k = start; k <= end; k += step) out.push(k);
  }
  return out;
}

/**
 * Task id of an array element from the array's job name and the element's index, or of a
 * plain job from its name; null when the name is not a Firn name with that prefix (`firn-`
 * by default: untagged names only; `firn-<tag>-` for one grid's names).
 */
export function taskIdForElement(jobName: string, index: number | null, firstIndex: 0 | 1, prefix: string = PLAIN_PREFIX): number | null {
  const name = jobName.trim();
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  const array = /^a(\d+)$/.exec(rest);
  if (array) {
    if (index === null || !Number.isInteger(index) || index < firstIndex) return null;
    return Number(array[1]) + index - firstIndex;
  }
  const single = /^(\d+)$/.exec(rest);
  return single ? Number(single[1]) : null;
}
