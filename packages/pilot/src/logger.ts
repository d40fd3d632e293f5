import type { Logger, LogMeta } from './core-pure';

/**
 * The pilot's own logger: readable lines on stderr plus an in-memory tail that is uploaded
 * to mon as the log named "pilot". Winston is not used so the bundle stays small.
 *
 * Secrets: the pilot never hands its passkey to the logger; as a second line of defence every
 * registered secret is masked in every line, and secret-looking meta keys are dropped.
 */
const SECRET_KEY = /pass(word|key|wd)?|token|secret|authorization|private|credential/i;

export interface PilotLoggerOptions {
  /** Where lines go (default process.stderr); null = nowhere (only the tail). */
  stream?: NodeJS.WritableStream | null;
  level?: 'error' | 'warn' | 'info' | 'debug';
  /** Bytes of log kept for upload (default 64 KiB). */
  tailBytes?: number;
}

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;

class LogSink {
  private readonly secrets = new Set<string>();
  private tail = '';
  constructor(
    readonly stream: NodeJS.WritableStream | null,
    readonly level: number,
    readonly tailBytes: number,
  ) {}
  addSecret(s: string) {
    if (s.length >= 4) this.secrets.add(s);
  }
  mask(s: string): string {
    let out = s;
    for (const secret of this.secrets) out = out.split(secret).join('[REDACTED]');
    return out;
  }
  write(line: string) {
    const l = this.mask(line) + '\n';
    this.stream?.write(l);
    this.tail += l;
    if (this.tail.length > this.tailBytes * 2) this.tail = this.tail.slice(-this.tailBytes);
  }
  getTail(): string {
    return this.tail.length > this.tailBytes ? this.tail.slice(-this.tailBytes) : this.tail;
  }
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

export class PilotLogger implements Logger {
  private constructor(
    private readonly sink: LogSink,
    private readonly fields: LogMeta,
  ) {}

  static create(options: PilotLoggerOptions = {}): PilotLogger {
    const stream = options.stream === undefined ? process.stderr : options.stream;
    return new PilotLogger(new LogSink(stream, LEVELS[options.level ?? 'info'], options.tailBytes ?? 64 * 1024), {});
  }

  /** Mask this exact text wherever it appears in a line (the passkey). */
  addSecret(secret: string): void {
    this.sink.addSecret(secret);
  }
  /** The last bytes of everything logged (for pilot.log "pilot"). */
  tail(): string {
    return this.sink.getTail();
  }

  private log(level: keyof typeof LEVELS, message: string, meta?: LogMeta) {
    if (LEVELS[level] > this.sink.level) return;
    const all = { ...this.fields, ...meta };
    const extra = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${SECRET_KEY.test(k) ? '[REDACTED]' : formatValue(v)}`)
      .join(' ');
    this.sink.write(`${new Date().toISOString()} ${level.padEnd(5)} ${message}${extra ? ' ' + extra : ''}`);
  }
  error(m: string, meta?: LogMeta) { this.log('error', m, meta); }
  warn(m: string, meta?: LogMeta) { this.log('warn', m, meta); }
  info(m: string, meta?: LogMeta) { this.log('info', m, meta); }
  debug(m: string, meta?: LogMeta) { this.log('debug', m, meta); }
  scope(fields: LogMeta): PilotLogger {
    return new PilotLogger(this.sink, { ...this.fields, ...fields });
  }
}
