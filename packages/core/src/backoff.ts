import { ValidationError } from './errors';

export interface BackoffOptions {
  /** `exponential` (default): base × 2^(attempt − 1); `fixed`: base every time. */
  type?: 'fixed' | 'exponential';
  /** Delay before the first retry, ms. */
  baseMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
  /**
   * Fraction of the delay that is randomised away, 0..1 (default 0.2): the delay is
   * `capped × (1 − jitter × random)`, so it never exceeds the cap and never drops below
   * `capped × (1 − jitter)`.
   */
  jitter?: number;
  /**
   * A number in [0, 1) driving the jitter. Pass a value derived from the thing being retried
   * (e.g. task id and attempt) so the same retry always gets the same delay; default 0.5.
   */
  random?: number;
}

/**
 * Delay (ms) before retry number `attempt` (1 = the first retry): exponential or fixed,
 * capped, with jitter. Pure: the same arguments always give the same delay. An attempt
 * below 1 means "nothing failed yet" and gives 0.
 */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const jitter = o.jitter ?? 0.2;
  const random = o.random ?? 0.5;
  if (!Number.isFinite(o.baseMs) || o.baseMs < 0) throw new ValidationError(`backoff baseMs must be a non-negative number, got ${o.baseMs}`);
  if (!Number.isFinite(o.maxMs) || o.maxMs < 0) throw new ValidationError(`backoff maxMs must be a non-negative number, got ${o.maxMs}`);
  if (!(jitter >= 0 && jitter <= 1)) throw new ValidationError(`backoff jitter must be between 0 and 1, got ${jitter}`);
  if (!(random >= 0 && random < 1)) throw new ValidationError(`backoff random must be in [0, 1), got ${random}`);
  if (!(attempt >= 1)) return 0;
  const raw = o.type === 'fixed' ? o.baseMs : o.baseMs * 2 ** (Math.floor(attempt) - 1);
  const capped = Math.min(raw, o.maxMs); // 2 ** 2000 is Infinity: still capped
  return Math.round(capped * (1 - jitter * random));
}
