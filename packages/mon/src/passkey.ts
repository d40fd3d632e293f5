import crypto from 'node:crypto';
import { ConflictError, digestEquals, isMysql, sha256Hex, type DbOrTrx, type TaskStatus } from '@firn/core';

/**
 * Per-task passkeys (ARCHITECTURE.md "Security"): the queue stores sha256(passkey) in
 * `task.passkey_hash` when it claims a task, and a reset revokes/replaces it. Every pilot call is
 * checked here, in constant time, against the hash AND the task's status.
 *
 * An unknown task, a wrong passkey and a stale passkey (task reset since) all get the same answer
 * — same code, same message, no data — and go through the same path: for an unknown task the
 * digest is compared with a random dummy hash, so neither the answer nor the work done tells
 * whether the task exists.
 *
 * No cache: hot-path calls (heartbeat/stats/log) are checked inside the write batch's transaction,
 * with the task rows locked, in ONE query per flush for all pilots (write-batcher.ts); so a check
 * costs nothing per call and can never be stale. start/files/finish check in their own transaction.
 */
export const STALE_PASSKEY_MESSAGE = 'invalid or stale passkey';

/** -32009 "invalid or stale passkey": the pilot must stop. Always the same object shape (no data). */
export function stalePasskeyError(): ConflictError {
  return new ConflictError(STALE_PASSKEY_MESSAGE);
}

/** Compared against for unknown tasks and cleared hashes; nobody knows its preimage. */
const DUMMY_HASH = sha256Hex(crypto.randomBytes(32).toString('hex'));

/** The passkey's digest (computed once per call; the passkey itself is not kept). */
export function passkeyDigest(passkey: string): string {
  return sha256Hex(passkey);
}

/**
 * Does `digest` match the row's hash, and is the task in one of `statuses`? Constant-time, and
 * the same work whether the row exists, has no hash, or has another one.
 */
export function passkeyValid(
  row: { passkey_hash: string | null; status: string } | undefined,
  digest: string,
  statuses: readonly TaskStatus[],
): boolean {
  const stored = row?.passkey_hash;
  const matches = digestEquals(digest, stored && /^[0-9a-f]{64}$/i.test(stored) ? stored : DUMMY_HASH);
  return matches && row !== undefined && (statuses as readonly string[]).includes(row.status);
}

/**
 * Take the write lock before reading rows that the transaction will write depending on what it
 * read: SELECT … FOR UPDATE on MySQL/MariaDB (done by the caller's query); on SQLite a no-op write
 * makes the transaction a writer up front (BEGIN IMMEDIATE), so another process cannot commit
 * between our read and our write (which would fail our upgrade with SQLITE_BUSY).
 */
export async function takeWriteLock(trx: DbOrTrx): Promise<void> {
  if (!isMysql(trx)) await trx.raw('UPDATE task SET id = id WHERE 0');
}

/** `query.forUpdate()` on MySQL/MariaDB; SQLite relies on takeWriteLock. */
export function forUpdate<T extends { forUpdate(): T }>(db: DbOrTrx, q: T): T {
  return isMysql(db) ? q.forUpdate() : q;
}
