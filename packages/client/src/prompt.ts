/**
 * Reading lines and secrets from stdin: a pipe gives one line per read (so `login` can take a
 * user name and then a password from the same pipe); a terminal gets a prompt, the secret
 * typed without echo.
 */
export class LineReader {
  private buffer = '';
  private ended = false;
  private waiters: Array<() => void> = [];
  private attached = false;

  constructor(private readonly stream: NodeJS.ReadableStream) {}

  private attach(): void {
    if (this.attached) return;
    this.attached = true;
    this.stream.on('data', (d: Buffer | string) => {
      this.buffer += d.toString();
      this.wake();
    });
    this.stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.stream.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next line without its newline; null at end of input. */
  async next(): Promise<string | null> {
    this.attach();
    this.stream.resume();
    for (;;) {
      const i = this.buffer.indexOf('\n');
      if (i >= 0) {
        const line = this.buffer.slice(0, i).replace(/\r$/, '');
        this.buffer = this.buffer.slice(i + 1);
        if (!this.buffer) this.stream.pause();
        return line;
      }
      if (this.ended) {
        if (!this.buffer) return null;
        const line = this.buffer;
        this.buffer = '';
        return line;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

type TtyIn = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

/** Prompt on a terminal and read what is typed without echoing it. */
export function readHidden(stdin: TtyIn, out: NodeJS.WritableStream, question: string): Promise<string> {
  out.write(question);
  stdin.setRawMode?.(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      out.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (buf: Buffer | string) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
