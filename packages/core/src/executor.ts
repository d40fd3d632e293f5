/**
 * Executors run a command on the submit host: locally (execFile) or over SSH (ssh2).
 * Batch-system plugins shell out only through this interface, so every plugin works
 * through either.
 */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal or a timeout. */
  code: number | null;
}

export interface ExecOptions {
  /** Working directory on the submit host. */
  cwd?: string;
  /** Extra environment variables (merged over the executor's own). */
  env?: Record<string, string>;
  /** Text written to the command's standard input. */
  input?: string;
  /** Milliseconds before the command is killed (default 60 s). */
  timeoutMs?: number;
}

export interface Executor {
  /** Run `command` with `args` (no shell); never throws for a non-zero exit — inspect `code`. */
  exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Write a file on the submit host (creating parent directories), with the given mode. */
  writeFile(path: string, content: string | Buffer, mode?: number): Promise<void>;
  /** Read a file on the submit host; null when it does not exist. */
  readFile(path: string): Promise<Buffer | null>;
  /** Create a directory (and parents) on the submit host. */
  mkdir(path: string, mode?: number): Promise<void>;
  /** Remove a file or directory tree on the submit host; missing is not an error. */
  remove(path: string): Promise<void>;
  /** Human-readable description ("local", "ssh://user@host:22"). */
  readonly description: string;
  close(): Promise<void>;
}
