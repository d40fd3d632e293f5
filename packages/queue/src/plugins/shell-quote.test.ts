import { spawnSync } from 'node:child_process';
import { isShellName, shellJoin, shellQuote, splitCommandLine } from './shell-quote';

/** What /bin/sh makes of `printf '%s\0' <text>`: the words, NUL-terminated. */
function shWords(text: string): string[] {
  const r = spawnSync('/bin/sh', ['-c', `printf '%s\\0' ${text}`], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });
  expect(r.status).toBe(0);
  return r.stdout.split('\0').slice(0, -1);
}

const HOSTILE = [
  "a'b; rm -rf /",
  '$(touch /tmp/firn-pwned)',
  '`id`',
  '"double" and \\backslash',
  '*',
  '~',
  'tab\there',
  'line\nbreak',
  '',
  '  spaces  ',
  "''",
  '$HOME ${PATH} $1 $@',
  'ünïcødé',
  '-n',
];

describe('shellQuote', () => {
  it('round-trips hostile values through a real sh as exactly one word', () => {
    for (const value of HOSTILE) expect(shWords(shellQuote(value))).toEqual([value]);
    expect(shWords(shellJoin(HOSTILE))).toEqual(HOSTILE);
  });
  it('leaves safe words bare and quotes the rest', () => {
    expect(shellQuote('http://mon:8080/rpc')).toBe('http://mon:8080/rpc');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("a'b")).toBe("'a'\\''b'");
    expect(shellQuote('')).toBe("''");
  });
  it('refuses NUL bytes', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('splitCommandLine', () => {
  it('splits like sh without expanding anything', () => {
    expect(splitCommandLine('node /opt/firn/firn-pilot.js')).toEqual(['node', '/opt/firn/firn-pilot.js']);
    expect(splitCommandLine(`node '/opt/my firn/pilot.js' "--x=\\"y\\"" a\\ b`)).toEqual(['node', '/opt/my firn/pilot.js', '--x="y"', 'a b']);
    expect(splitCommandLine('  $HOME/pilot   --flag  ')).toEqual(['$HOME/pilot', '--flag']);
    expect(splitCommandLine("''")).toEqual(['']);
    expect(splitCommandLine('')).toEqual([]);
  });
  it('rejects unterminated quotes', () => {
    expect(() => splitCommandLine("node 'x")).toThrow(/unterminated '/);
    expect(() => splitCommandLine('node "x')).toThrow(/unterminated "/);
    expect(() => splitCommandLine('node x\\')).toThrow(/backslash/);
  });
  it('re-quoted words mean the same to sh', () => {
    const words = splitCommandLine(`/usr/bin/env 'a b' "c;d" e\\$f`);
    expect(shWords(shellJoin(words))).toEqual(['/usr/bin/env', 'a b', 'c;d', 'e$f']);
  });
});

describe('isShellName', () => {
  it('accepts portable variable names only', () => {
    expect(isShellName('FIRN_X1')).toBe(true);
    expect(isShellName('_x')).toBe(true);
    expect(isShellName('1X')).toBe(false);
    expect(isShellName('A-B')).toBe(false);
    expect(isShellName('A B')).toBe(false);
    expect(isShellName('')).toBe(false);
  });
});
