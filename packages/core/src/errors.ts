/**
 * One error class per concept, each with its `name` set, and one table mapping them
 * to JSON-RPC error codes (see ARCHITECTURE.md "RPC").
 */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  UNAUTHENTICATED: -32001,
  FORBIDDEN: -32003,
  NOT_FOUND: -32004,
  CONFLICT: -32009,
  RATE_LIMITED: -32029,
  /** A dependency (the database) is unreachable or the daemon is shutting down: retry later. */
  UNAVAILABLE: -32050,
} as const;
export type RpcErrorCode = (typeof RpcErrorCode)[keyof typeof RpcErrorCode];

export class FirnError extends Error {
  /** JSON-RPC code this error maps to when it crosses the wire. */
  readonly code: RpcErrorCode = RpcErrorCode.INTERNAL_ERROR;
  /** Extra machine-readable detail (e.g. a list of failing JSON paths). */
  readonly data?: unknown;
  constructor(message: string, data?: unknown) {
    super(message);
    this.name = new.target.name;
    if (data !== undefined) this.data = data;
  }
}

/** One problem found in a document: where (a JSON path such as `/tasks/0/depends/1`) and why. */
export interface ValidationIssue {
  path: string;
  message: string;
}

export class ValidationError extends FirnError {
  override readonly code = RpcErrorCode.INVALID_PARAMS;
  readonly issues: ValidationIssue[];
  constructor(message: string, issues: ValidationIssue[] = []) {
    super(
      issues.length ? `${message}: ${issues.map((i) => `${i.path || '/'} ${i.message}`).join('; ')}` : message,
      { issues },
    );
    this.issues = issues;
  }
}
export class ConfigError extends FirnError {
  override readonly code = RpcErrorCode.INVALID_PARAMS;
}
export class ExpressionError extends FirnError {
  override readonly code = RpcErrorCode.INVALID_PARAMS;
  constructor(
    message: string,
    readonly expression: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position} in ${JSON.stringify(expression.length > 200 ? expression.slice(0, 200) + '…' : expression)}`, {
      position,
    });
  }
}
export class UnauthenticatedError extends FirnError {
  override readonly code = RpcErrorCode.UNAUTHENTICATED;
}
export class ForbiddenError extends FirnError {
  override readonly code = RpcErrorCode.FORBIDDEN;
}
export class NotFoundError extends FirnError {
  override readonly code = RpcErrorCode.NOT_FOUND;
}
/** A change that conflicts with the current state: an illegal transition, a lost race, a stale passkey. */
export class ConflictError extends FirnError {
  override readonly code = RpcErrorCode.CONFLICT;
}
export class IllegalTransitionError extends ConflictError {}
export class LostRaceError extends ConflictError {}
export class RateLimitedError extends FirnError {
  override readonly code = RpcErrorCode.RATE_LIMITED;
}
/** The database is unreachable, or the daemon is shutting down: the same call may succeed later. */
export class UnavailableError extends FirnError {
  override readonly code = RpcErrorCode.UNAVAILABLE;
}
/** The batch system (or the shell that reaches it) refused or failed a command. */
export class BatchSystemError extends FirnError {
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}
/** A transfer or checksum failure while moving a file. */
export class TransferError extends FirnError {}
/** A transfer failure retrying cannot fix (missing source, refused credentials or host key, bad URL). */
export class PermanentTransferError extends TransferError {}
/** Nothing is at a location that was to be read (a PermanentTransferError: retrying will not make it appear). */
export class MissingFileError extends PermanentTransferError {}

/** Coerce anything thrown into an Error (graphile-worker's coerceError). */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  if (typeof e === 'string') return new Error(e);
  try {
    return new Error(JSON.stringify(e));
  } catch {
    return new Error(String(e));
  }
}

/**
 * Error codes (and messages) by which knex, mysql2, better-sqlite3 and Node's sockets say "the
 * database cannot be reached right now" — as opposed to "this statement is wrong". The one
 * place that decides whether a failure is an outage (answered -32050, retry) or a bug (-32603).
 */
const DB_UNAVAILABLE_CODES = new Set([
  // sockets
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED',
  // mysql2 / MariaDB
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'ER_CON_COUNT_ERROR', 'ER_TOO_MANY_USER_CONNECTIONS', 'ER_SERVER_SHUTDOWN', 'ER_SERVER_GONE_ERROR', 'CR_SERVER_GONE_ERROR',
  'CR_SERVER_LOST', 'CR_CONNECTION_ERROR', 'CR_CONN_HOST_ERROR', 'ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK',
  'ER_QUERY_INTERRUPTED', 'ER_CONNECTION_KILLED',
  // better-sqlite3
  'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_TIMEOUT', 'SQLITE_BUSY_RECOVERY', 'SQLITE_LOCKED', 'SQLITE_LOCKED_SHAREDCACHE',
  'SQLITE_CANTOPEN', 'SQLITE_IOERR', 'SQLITE_PROTOCOL',
]);
/** MariaDB/MySQL errnos of the same (1040 too many connections, 1053 shutdown, 1205 lock wait, 1213 deadlock, 1927 killed, 2002/2003/2006/2013). */
const DB_UNAVAILABLE_ERRNOS = new Set([1040, 1053, 1203, 1205, 1213, 1927, 2002, 2003, 2006, 2013]);

/** Is this failure the database being unreachable or overloaded (retry later), rather than a bug? */
export function isDatabaseUnavailable(e: unknown, depth = 0): boolean {
  if (e === null || typeof e !== 'object' || depth > 4) return false;
  if (e instanceof UnavailableError) return true;
  const err = e as { name?: unknown; code?: unknown; errno?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  // knex: "Knex: Timeout acquiring a connection. The pool is probably full."
  if (err.name === 'KnexTimeoutError') return true;
  if (typeof err.code === 'string' && (DB_UNAVAILABLE_CODES.has(err.code) || err.code.startsWith('SQLITE_BUSY') || err.code.startsWith('SQLITE_IOERR'))) return true;
  if (typeof err.errno === 'number' && typeof err.code === 'string' && err.code.startsWith('ER_') && DB_UNAVAILABLE_ERRNOS.has(err.errno)) return true;
  if (typeof err.message === 'string' && /Timeout acquiring a connection|Connection lost: The server closed the connection|Can't add new command when connection is in closed state|connect ECONNREFUSED/.test(err.message)) return true;
  // AggregateError (Node's happy-eyeballs connect) and wrapped causes
  if (Array.isArray(err.errors) && err.errors.some((x) => isDatabaseUnavailable(x, depth + 1))) return true;
  return err.cause !== undefined && isDatabaseUnavailable(err.cause, depth + 1);
}
