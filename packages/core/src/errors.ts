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
