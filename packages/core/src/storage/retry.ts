/**
 * The retry loop of every transfer (firn-dh's copies, the pilot's staging): `attempts` tries,
 * exponential backoff with jitter between them (backoff.ts, capped at 30 s), a
 * PermanentTransferError stops at once. The last failure is thrown with the number of
 * attempts; anything that is not a TransferError is wrapped in one naming `what`.
 */
import { backoffDelay } from '../backoff';
import { PermanentTransferError, TransferError, coerceError } from '../errors';
import type { Logger } from '../logger';
import { redactUrl } from './location';

export interface RetryOptions {
  /** Tries in all (≥ 1). */
  attempts: number;
  /** Delay before the first retry, ms (doubled each time, up to 30 s). */
  baseDelayMs: number;
  logger?: Logger | undefined;
  /** Before each retry (e.g. drop the connections the failed attempt used). */
  beforeRetry?: () => Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function retryTransfer<T>(what: string, o: RetryOptions, fn: (attempt: number) => Promise<T>): Promise<T> {
  if (!Number.isInteger(o.attempts) || o.attempts < 1) throw new TransferError(`transfer attempts must be a positive integer, got ${o.attempts}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      const err = coerceError(e);
      if (err instanceof PermanentTransferError) throw err;
      const message = redactUrl(err instanceof TransferError ? err.message : `${what}: ${err.message}`);
      if (attempt >= o.attempts) throw new TransferError(`${message} (after ${o.attempts} attempt${o.attempts === 1 ? '' : 's'})`);
      o.logger?.warn('transfer attempt failed, retrying', { what: redactUrl(what), attempt, error: message });
      await o.beforeRetry?.();
      await sleep(backoffDelay(attempt, { baseMs: o.baseDelayMs, maxMs: 30_000, random: Math.random() }));
    }
  }
}
