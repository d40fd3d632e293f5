/**
 * Read one secret line: from a pipe, the first line of stdin; from a terminal, typed without
 * echo. Trailing CR/LF removed. Never echoed, never logged.
 */
export async function readSecretLine(
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown },
  prompt: NodeJS.WritableStream,
  question: string,
): Promise<string> {
  if (stdin.isTTY && typeof stdin.setRawMode === 'function') {
    prompt.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    return new Promise((resolve, reject) => {
      let value = '';
      const onData = (buf: Buffer | string) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            done();
            prompt.write('\n');
            return resolve(value);
          }
          if (ch === '\u0003') {
            done();
            prompt.write('\n');
            return reject(new Error('interrupted'));
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      const done = () => {
        stdin.off('data', onData);
        stdin.setRawMode!(false);
        stdin.pause();
      };
      stdin.on('data', onData);
    });
  }
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = () => {
      cleanup();
      resolve(text.split('\n')[0]!.replace(/\r$/, ''));
    };
    const onData = (buf: Buffer | string) => {
      text += buf.toString();
      if (text.includes('\n')) finish();
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      stdin.off('data', onData);
      stdin.off('end', finish);
      stdin.off('error', onError);
      stdin.pause();
    };
    stdin.on('data', onData);
    stdin.on('end', finish);
    stdin.on('error', onError);
    stdin.resume();
  });
}
