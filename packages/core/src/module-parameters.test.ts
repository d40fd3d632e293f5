import fs from 'node:fs';
import path from 'node:path';
import { didYouMean, validateDatasetConfig } from './dataset-config';

const config = (modules: unknown[]) => ({ version: 1, steering: { parameters: { sum: 'ab' } }, tasks: [{ name: 't', trays: [{ name: 'y', modules }] }] });
const issuesOf = (modules: unknown[]) => {
  const r = validateDatasetConfig(config(modules));
  return r.ok ? [] : r.issues;
};

describe('built-in module parameters (schemas/modules/*.json)', () => {
  it('a misspelt shell command is refused at its path with a hint', () => {
    const issues = issuesOf([{ name: 'm', class: 'shell', parameters: { comand: 'echo hi' } }]);
    expect(issues).toEqual(expect.arrayContaining([
      { path: '/tasks/0/trays/0/modules/0/parameters/comand', message: 'is not a parameter of the shell module (did you mean "command"?); its parameters: command, args' },
      { path: '/tasks/0/trays/0/modules/0/parameters', message: 'a shell module needs parameters.command (string) or parameters.args (non-empty array)' },
    ]));
  });

  it('accepts what the pilot runs, expressions included', () => {
    expect(issuesOf([
      { name: 'a', class: 'shell', parameters: { command: 'echo $(job)' } },
      { name: 'b', class: 'shell', parameters: { args: ['python3', '-c', 'print(1)'] } },
      { name: 'c', class: 'transfer', parameters: { from: 'a.txt', to: 'file:///tmp/a.txt', sha256: '$steering(sum)' } },
      { name: 'd', class: 'tarball', parameters: { create: 'out.tar.gz', path: ['a', 'b'] } },
      { name: 'e', class: 'tarball', parameters: { extract: 'in.tar' } },
    ]).filter((i) => i.path.includes('/parameters'))).toEqual([]);
  });

  it('names what each class needs and refuses wrong types', () => {
    const issues = issuesOf([
      { name: 'a', class: 'transfer', parameters: { from: 'x' } },
      { name: 'b', class: 'tarball', parameters: { create: 'a.tar', extract: 'b.tar' } },
      { name: 'c', class: 'shell', parameters: { command: 42 } },
      { name: 'd', class: 'shell' },
    ]);
    expect(issues).toEqual(expect.arrayContaining([
      { path: '/tasks/0/trays/0/modules/0/parameters', message: 'a transfer module needs parameters.from and parameters.to' },
      { path: '/tasks/0/trays/0/modules/1/parameters', message: 'a tarball module needs exactly one of parameters.create or parameters.extract' },
      { path: '/tasks/0/trays/0/modules/2/parameters/command', message: 'must be string' },
      { path: '/tasks/0/trays/0/modules/3/parameters', message: expect.stringMatching(/needs parameters\.command/) },
    ]));
  });

  it('external modules keep free-form parameters', () => {
    expect(issuesOf([{ name: 'x', class: 'mymod', src: 'https://example.org/m.py', parameters: { anything: 1 } }])).toEqual([]);
  });

  it('did-you-mean: within two edits or a case difference, else none', () => {
    expect(didYouMean('comand', ['command', 'args'])).toBe('command');
    expect(didYouMean('ARGS', ['command', 'args'])).toBe('args');
    expect(didYouMean('zzzzzz', ['command', 'args'])).toBeNull();
  });

  it('every example dataset still validates', () => {
    const dir = path.resolve(__dirname, '../../../examples/datasets');
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      const r = validateDatasetConfig(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
      expect([f, r.ok ? [] : r.issues]).toEqual([f, []]);
    }
  });
});
