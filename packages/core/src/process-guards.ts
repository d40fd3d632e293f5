/**
 * Process-level handlers for a daemon: an `unhandledRejection` or `uncaughtException` is
 * logged and the daemon keeps serving. Without them, one stray throw in a callback (a
 * socket, a timer, a library) ends a process that serves many users and sites; every
 * request path already answers its own errors, so what reaches here is a bug to log, not a
 * reason to drop everyone's connections.
 *
 * What is logged is the coerced error's name, message and the top of its stack, with
 * credentials in URLs (`scheme://user:secret@`) masked and lengths cut; never the error's
 * other properties (a request or a config object may hang off it). Logging is rate-limited
 * so a fault in a hot loop cannot flood the log: at most LOG_BURST lines per minute, then
 * one line with the count of the suppressed ones.
 */
import { coerceError } from './errors';
import type { Logger } from './logger';

const LOG_BURST = 20;
const WINDOW_MS = 60_000;
const MAX_MESSAGE = 1000;
const STACK_LINES = 12;

export interface ProcessGuards {
  /** Faults seen since installed (logged or not). */
  readonly count: number;
  /** Remove the handlers (tests; a daemon leaves them for its lifetime). */
  uninstall(): void;
}

/** Mask `user:password@` in URLs, cut to `max` characters. */
function scrub(text: string, max: number): string {
  const masked = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s:@]*:[^/\s@]*@/gi, '$1***:***@');
  return masked.length > max ? `${masked.slice(0, max)}…` : masked;
}

let installed: ProcessGuards | undefined;

/**
 * Install the handlers once per process (a second call returns the first installation).
 * `proc` is injectable for tests.
 */
export function installProcessGuards(logger: Logger, proc: NodeJS.EventEmitter = process): ProcessGuards {
  if (installed && proc === process) return installed;
  let count = 0;
  let windowStart = 0;
  let inWindow = 0;
  let suppressed = 0;
  const report = (kind: 'unhandledRejection' | 'uncaughtException', reason: unknown): void => {
    count++;
    try {
      const now = Date.now();
      if (now - windowStart >= WINDOW_MS) {
        if (suppressed > 0) logger.error('process faults not logged (rate limit)', { suppressed });
        windowStart = now;
        inWindow = 0;
        suppressed = 0;
      }
      if (inWindow >= LOG_BURST) {
        suppressed++;
        return;
      }
      inWindow++;
      const e = coerceError(reason);
      const stack = (e.stack ?? '').split('\n').slice(1, STACK_LINES + 1).map((l) => l.trim()).join(' | ');
      logger.error(`${kind}: logged, still serving`, {
        error: scrub(`${e.name}: ${e.message}`, MAX_MESSAGE),
        ...(stack ? { stack: scrub(stack, 2 * MAX_MESSAGE) } : {}),
      });
    } catch {
      // the logger itself failed: nothing safe is left to do
    }
  };
  const onRejection = (reason: unknown): void => report('unhandledRejection', reason);
  const onException = (error: unknown): void => report('uncaughtException', error);
  proc.on('unhandledRejection', onRejection);
  proc.on('uncaughtException', onException);
  const guards: ProcessGuards = {
    get count() {
      return count;
    },
    uninstall() {
      proc.off('unhandledRejection', onRejection);
      proc.off('uncaughtException', onException);
      if (installed === guards) installed = undefined;
    },
  };
  if (proc === process) installed = guards;
  return guards;
}
