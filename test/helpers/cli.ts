/** The `firn` CLI run in-process, as the tests drive it: its exit code and what it printed. */
import { PassThrough } from 'node:stream';
import { main } from '@firn/client';

export interface Run { code: number; out: string; err: string }

/** Run `firn argv…` with `env` (its config dir, HOME, …) and `input` on stdin. */
export async function runFirn(argv: string[], env: Record<string, string | undefined>, input = ''): Promise<Run> {
  const stdin = new PassThrough();
  stdin.end(input);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(argv, { stdin, stdout, stderr, env });
  return { code, out, err };
}
