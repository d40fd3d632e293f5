import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogMeta = Record<string, unknown>;

/** The logger every component takes through its options; scope fields ride along on each line. */
export interface Logger {
  error(message: string, meta?: LogMeta): void;
  warn(message: string, meta?: LogMeta): void;
  info(message: string, meta?: LogMeta): void;
  debug(message: string, meta?: LogMeta): void;
  /** A logger whose lines carry these extra scope fields ({daemon, grid, task}). */
  scope(fields: LogMeta): Logger;
}

/** Keys whose values are never written to a log. */
const SECRET_KEY = /pass(word|key|wd)?|token|secret|authorization|cookie|private|credential|api[_-]?key/i;
const SECRET_TEXT = [
  /(Bearer\s+)[A-Za-z0-9._~+/=-]+/g,
  /(\/\/[^:/@\s]*:)[^@\s]+(?=@)/g, // user:password@ in URLs
  /((?:password|passkey|token|secret)["']?\s*[:=]\s*["']?)[^"'\s,}]+/gi,
];

export function redactText(s: string): string {
  let out = s;
  for (const re of SECRET_TEXT) out = out.replace(re, '$1[REDACTED]');
  return out;
}

/** Deep copy with secret-looking keys replaced and secret-looking text masked. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[…]';
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) return { name: value.name, message: redactText(value.message) };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SECRET_KEY.test(k) && (typeof v === 'string' || typeof v === 'number') ? '[REDACTED]' : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}

const redactFormat = winston.format((info) => {
  const out = info as Record<string | symbol, unknown>;
  for (const k of Object.keys(out)) {
    if (k === 'level' || k === 'timestamp') continue;
    out[k] = SECRET_KEY.test(k) && k !== 'message' ? '[REDACTED]' : redact(out[k]);
  }
  return info;
});

export interface CreateLoggerOptions {
  level?: LogLevel;
  /** json: one JSON object per line (production); text: readable lines; auto: text on a TTY. */
  format?: 'json' | 'text' | 'auto';
  file?: string;
  scope?: LogMeta;
  /** Extra transport (tests capture lines with it). */
  stream?: NodeJS.WritableStream;
  silent?: boolean;
}

class WinstonLogger implements Logger {
  constructor(
    private readonly w: winston.Logger,
    private readonly fields: LogMeta,
  ) {}
  private log(level: LogLevel, message: string, meta?: LogMeta) {
    // a line below the level (or a silent logger) costs nothing: no meta copy, no formatting
    // (winston would run the whole format chain before its transports drop the line)
    if (this.w.silent || !this.w.isLevelEnabled(level)) return;
    this.w.log(level, message, { ...this.fields, ...meta });
  }
  error(m: string, meta?: LogMeta) { this.log('error', m, meta); }
  warn(m: string, meta?: LogMeta) { this.log('warn', m, meta); }
  info(m: string, meta?: LogMeta) { this.log('info', m, meta); }
  debug(m: string, meta?: LogMeta) { this.log('debug', m, meta); }
  scope(fields: LogMeta): Logger {
    return new WinstonLogger(this.w, { ...this.fields, ...fields });
  }
}

export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const fmt = options.format ?? 'auto';
  const text = fmt === 'text' || (fmt === 'auto' && process.stderr.isTTY);
  const lineFormat = text
    ? winston.format.printf((info) => {
        const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
        const extra = Object.entries(rest)
          .filter(([k]) => typeof k === 'string')
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        return `${String(timestamp)} ${String(level).padEnd(5)} ${String(message)}${extra ? ' ' + extra : ''}`;
      })
    : winston.format.json();
  const transports: winston.transport[] = [];
  if (options.stream) transports.push(new winston.transports.Stream({ stream: options.stream }));
  else if (options.file) transports.push(new winston.transports.File({ filename: options.file }));
  else transports.push(new winston.transports.Stream({ stream: process.stderr }));
  const w = winston.createLogger({
    level: options.level ?? 'info',
    silent: options.silent ?? false,
    format: winston.format.combine(winston.format.timestamp(), redactFormat(), lineFormat),
    transports,
  });
  return new WinstonLogger(w, options.scope ?? {});
}

/** A logger that drops everything (for library use without logging). */
export const nullLogger: Logger = {
  error() {}, warn() {}, info() {}, debug() {},
  scope() { return nullLogger; },
};
