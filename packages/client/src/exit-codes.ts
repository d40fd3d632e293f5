import { CommanderError } from 'commander';
import { FirnError, RpcError, RpcErrorCode, RpcTransportError } from '@firn/core';

/** Exit codes scripts can trust (also printed by `firn --help`). */
export const ExitCode = {
  OK: 0,
  /** An error, or invalid input (a config that does not validate, a server-side failure). */
  ERROR: 1,
  /** Wrong command line: unknown command or option, missing argument. */
  USAGE: 2,
  /** Not logged in, token expired, role too low, or too many failed logins. */
  AUTH: 3,
  NOT_FOUND: 4,
  /** The change conflicts with the current state (illegal transition, name taken). */
  CONFLICT: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  error or invalid input (e.g. a dataset config that does not validate)
  2  usage error (unknown command or option, missing argument)
  3  not logged in, token expired, forbidden, or rate-limited login
  4  not found (dataset, job, task, grid, user)
  5  conflict (illegal state change, name already taken)
`;

/** An error the CLI itself raises, with the exit code it means. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.ERROR,
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function exitCodeOf(e: unknown): ExitCode {
  if (e instanceof CliError) return e.exitCode;
  if (e instanceof CommanderError) {
    return e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version' ? ExitCode.OK : ExitCode.USAGE;
  }
  if (e instanceof RpcTransportError) return ExitCode.ERROR;
  if (e instanceof RpcError || e instanceof FirnError) {
    switch (e.code) {
      case RpcErrorCode.UNAUTHENTICATED:
      case RpcErrorCode.FORBIDDEN:
      case RpcErrorCode.RATE_LIMITED:
        return ExitCode.AUTH;
      case RpcErrorCode.NOT_FOUND:
        return ExitCode.NOT_FOUND;
      case RpcErrorCode.CONFLICT:
        return ExitCode.CONFLICT;
      default:
        return ExitCode.ERROR;
    }
  }
  return ExitCode.ERROR;
}
