/**
 * `task_flow`: the task transitions of `history` counted per (dataset, time bucket, from, to),
 * at three bucket spans — what the web monitor's charts read instead of scanning `history`
 * (a month of a 1M-task dataset is ~5.5M history rows; its flow rows are a few thousand).
 *
 * firn-dh's roll-up cycle adds the history rows past the watermark in
 * `task_flow_state.history_id` and moves the watermark in the same transaction (idempotent);
 * readers add the history rows past the watermark themselves, so what they see is exact
 * whether or not dh has caught up. Which history rows the watermark may pass is decided by
 * the writer (see @firn/dh task-flow.ts): only ids no still-open transaction can commit below.
 *
 * Counted: `history` rows with entity 'task' and action 'transition' — the rows the core
 * transition function writes, one per status change. Other task events (a retry wait, a
 * refused start) change no status and are not counted.
 */
const MINUTE = 60_000;

/** Bucket spans kept, largest first: a chart bucket is summed from the largest that divides it. */
export const TASK_FLOW_SPANS_MS = [24 * 60 * MINUTE, 60 * MINUTE, 5 * MINUTE] as const;

/** The span to read for a chart bucket of `widthMs` (epoch-aligned), or null if none divides it. */
export function taskFlowSpanFor(widthMs: number): number | null {
  return TASK_FLOW_SPANS_MS.find((s) => widthMs % s === 0) ?? null;
}

/** The `history` rows task_flow counts, as a knex-free SQL condition on alias `h`. */
export const TASK_FLOW_HISTORY_WHERE = "h.entity = 'task' AND h.action = 'transition' AND h.dataset_id IS NOT NULL AND h.from_status IS NOT NULL AND h.to_status IS NOT NULL";
