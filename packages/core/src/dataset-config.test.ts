import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  assertValidDatasetConfig,
  canonicalJson,
  configHash,
  defaultRequirements,
  resolveRequirements,
  resolveRetryPolicy,
  topoOrder,
  validateDatasetConfig,
  type DatasetConfig,
  type TaskConfig,
} from './dataset-config';
import { ValidationError, type ValidationIssue } from './errors';
import { expandConfig, type ExpressionContext } from './expression-parser';
import { findSchemasDir } from './schemas';

const repo = path.resolve(__dirname, '../../..');
const examplesDir = path.join(repo, 'examples/datasets');
const loadExample = (name: string): unknown => JSON.parse(fs.readFileSync(path.join(examplesDir, name), 'utf8')) as unknown;

function minimal(): DatasetConfig {
  return {
    version: 1,
    steering: { parameters: { seed: 1 } },
    tasks: [{ name: 'only', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'echo $steering(seed)' } }] }] }],
  };
}

function issuesOf(config: unknown): ValidationIssue[] {
  const r = validateDatasetConfig(config);
  if (r.ok) throw new Error('expected the config to be invalid');
  return r.issues;
}

function issueAt(issues: ValidationIssue[], p: string): string[] {
  return issues.filter((i) => i.path === p).map((i) => i.message);
}

describe('validateDatasetConfig', () => {
  test('the schema directory is found', () => {
    expect(fs.existsSync(path.join(findSchemasDir(), 'dataset.schema.json'))).toBe(true);
  });

  test('a minimal config is valid and summarised', () => {
    const r = validateDatasetConfig(minimal());
    expect(r).toEqual({ ok: true, config: minimal(), summary: { tasks: 1, trays: 1, modules: 1 } });
  });

  test.each([
    ['simulation.json', { tasks: 1, trays: 1, modules: 2 }],
    ['dag-gpu.json', { tasks: 3, trays: 4, modules: 4 }],
    ['offline.json', { tasks: 1, trays: 1, modules: 1 }],
  ])('example %s is valid', (file, summary) => {
    const r = validateDatasetConfig(loadExample(file));
    if (!r.ok) throw new Error(JSON.stringify(r.issues, null, 2));
    expect(r.summary).toEqual(summary);
  });

  test('every problem is reported with its JSON path', () => {
    const bad = {
      version: 'one',
      extra: 1,
      steering: { parameters: { 'bad key': 1, obj: { nested: true } } },
      retry: {
        rules: [
          { match: '(', action: 'bump' },
          { match: 'x', action: 'fail', bump: { memory: 2 } },
        ],
      },
      tasks: [
        {
          name: 'a',
          depends: ['b', 'nope'],
          requirements: { memory: true, cpu: 0, gpu: '$eval(1+)', disk: 'lots' },
          trays: [
            {
              name: 't',
              modules: [
                { name: 'm', class: 'shell' },
                { name: 'm', class: 'ext.Module', src: 'http://example.org/m.py' },
              ],
            },
            { name: 't', modules: [{ name: 'x', class: 'Foo' }] },
          ],
        },
        {
          name: 'b',
          depends: ['a'],
          requirments: {},
          data: [{ local: '../x', remote: 'gsiftp://host/f', movement: 'sideways' }],
          trays: [{ name: 't', modules: [{ name: 'y', class: 'shell', parameters: { command: 'echo $steering(missing) $HOME' } }] }],
        },
        { name: 'a', trays: [] },
        { name: 'bad name!', trays: [{ name: 'q', modules: [{ name: 'z', class: 'shell', src: 'https://x.org/z' }] }] },
      ],
    };
    const issues = issuesOf(bad);
    const expected: Array<[string, RegExp]> = [
      ['/extra', /^is not an allowed property \(allowed: \$schema, version, description, type, steering, retry, tasks\)$/],
      ['/version', /^must be integer, got "one"$/],
      ['/steering/parameters/bad key', /^is not a valid name/],
      ['/steering/parameters/obj', /^must be string or number or boolean, got an object$/],
      ['/retry/rules/0/bump', /^is required$/],
      ['/retry/rules/0/match', /^is not a valid RE2 regular expression.*missing closing \): `\(`/],
      ['/retry/rules/1/bump', /^is only used with action "bump", not "fail"$/],
      ['/tasks/0/requirements/cpu', /^must be >= 1, got 0$/],
      ['/tasks/0/requirements/memory', /^must be number or string, got true$/],
      ['/tasks/0/requirements/gpu', /^invalid expression: unexpected end of expression at position 8/],
      ['/tasks/0/requirements/disk', /^must be a number or an expression/],
      ['/tasks/1/requirments', /^is not an allowed property \(did you mean "requirements"\?\)$/],
      ['/tasks/1/data/0/movement', /^must be one of "input", "output", "both", got "sideways"$/],
      ['/tasks/1/data/0/local', /^must be a relative path inside the task's scratch directory/],
      ['/tasks/1/data/0/remote', /^has unsupported URL scheme "gsiftp"/],
      ['/tasks/2/trays', /^must have at least 1 item$/],
      ['/tasks/2/name', /^duplicate task name "a" \(also \/tasks\/0\/name\)$/],
      ['/tasks/3/name', /^must be a name of letters, digits/],
      ['/tasks/0/depends/1', /^refers to unknown task "nope"$/],
      ['/tasks/0/depends', /^dependency cycle: a → b → a$/],
      ['/tasks/0/trays/1/name', /^duplicate tray name "t" in task "a"/],
      ['/tasks/0/trays/0/modules/1/name', /^duplicate module name "m" in tray "t"/],
      ['/tasks/0/trays/0/modules/1/src', /^must be an https:\/\/ URL/],
      ['/tasks/0/trays/1/modules/0/src', /^is required for external module class "Foo"/],
      ['/tasks/3/trays/0/modules/0/src', /^is only for external modules; class "shell" is built in$/],
      // built-in module parameters (schemas/modules/shell.json): neither command nor args
      ['/tasks/0/trays/0/modules/0/parameters', /^a shell module needs parameters\.command/],
      ['/tasks/3/trays/0/modules/0/parameters', /^a shell module needs parameters\.command/],
      ['/tasks/1/trays/0/modules/0/parameters/command', /^refers to undefined steering parameter "missing" \(at position 5\)$/],
    ];
    for (const [p, message] of expected) {
      expect({ path: p, messages: issueAt(issues, p) }).toEqual({ path: p, messages: expect.arrayContaining([expect.stringMatching(message)]) });
    }
    expect(issues).toHaveLength(expected.length);
  });

  test('a non-object is reported at the root', () => {
    expect(issuesOf(null)).toEqual([{ path: '/', message: 'must be object, got null' }]);
    expect(issuesOf([])).toEqual([{ path: '/', message: 'must be object, got an array' }]);
    expect(issueAt(issuesOf({}), '/version')).toEqual(['is required']);
  });

  test('cycles are named, each once', () => {
    const task = (name: string, depends: string[]): TaskConfig => ({
      name,
      depends,
      trays: [{ name: 't', modules: [{ name: 'm', class: 'shell' }] }],
    });
    const cfg = { version: 1, tasks: [task('a', ['c']), task('b', ['a']), task('c', ['b']), task('d', ['d']), task('e', [])] };
    const cycles = issuesOf(cfg).filter((i) => i.message.startsWith('dependency cycle'));
    expect(cycles).toEqual([
      { path: '/tasks/0/depends', message: 'dependency cycle: a → c → b → a' },
      { path: '/tasks/3/depends', message: 'dependency cycle: d → d' },
    ]);
  });

  test('steering references are checked everywhere, including nested and in steering values', () => {
    const cfg = minimal();
    cfg.steering = { parameters: { seed: 1, derived: '$steering(base)-$eval($steering(seed) + 1)' } };
    const module = cfg.tasks[0]?.trays[0]?.modules[0];
    if (!module) throw new Error('fixture');
    module.parameters = { command: 'echo $sprintf("%s", $eval($steering(gone) * 2)) $steering(seed)' };
    module.env = { X: '$steering(also_gone)' };
    const issues = issuesOf(cfg);
    expect(issues).toEqual([
      { path: '/steering/parameters/derived', message: 'refers to undefined steering parameter "base" (at position 0)' },
      { path: '/tasks/0/trays/0/modules/0/parameters/command', message: 'refers to undefined steering parameter "gone" (at position 26)' },
      { path: '/tasks/0/trays/0/modules/0/env/X', message: 'refers to undefined steering parameter "also_gone" (at position 0)' },
    ]);
  });

  test('requirement expressions that only use steering are checked now', () => {
    const cfg = minimal();
    cfg.steering = { parameters: { seed: 1, mem: 0, cores: 2 } };
    (cfg.tasks[0] as TaskConfig).requirements = { memory: '$steering(mem)', cpu: '$steering(cores)', time: '$eval($(job) * 10 + 5)' };
    expect(issuesOf(cfg)).toEqual([
      { path: '/tasks/0/requirements/memory', message: 'must evaluate to a number > 0, got "0" from "$steering(mem)"' },
    ]);
  });

  test('external modules need an https src, expressions resolved through steering', () => {
    const cfg = minimal();
    cfg.steering = { parameters: { seed: 1, base: 'http://insecure.example.org', good: 'https://example.org' } };
    (cfg.tasks[0] as TaskConfig).trays[0]?.modules.push(
      { name: 'ext1', class: 'icecube.Generator', src: '$steering(base)/gen.py' },
      { name: 'ext2', class: 'icecube.Generator', src: '$steering(good)/gen.py' },
    );
    expect(issuesOf(cfg)).toEqual([
      {
        path: '/tasks/0/trays/0/modules/1/src',
        message: 'must be an https:// URL (external modules are only fetched over https), got "$steering(base)/gen.py"',
      },
    ]);
  });

  test('hostile keys do not confuse the checks', () => {
    const cfg = JSON.parse(
      '{"version":1,"steering":{"parameters":{"__proto__":"x"}},"tasks":[{"name":"constructor","depends":["__proto__"],"trays":[{"name":"t","modules":[{"name":"m","class":"shell","parameters":{"command":"$steering(__proto__) $steering(toString)"}}]}]}]}',
    ) as unknown;
    // "__proto__" is a well-formed, defined parameter here; "toString" is not defined.
    expect(issuesOf(cfg)).toEqual([
      { path: '/tasks/0/depends/0', message: 'refers to unknown task "__proto__"' },
      { path: '/tasks/0/trays/0/modules/0/parameters/command', message: 'refers to undefined steering parameter "toString" (at position 21)' },
    ]);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  test('assertValidDatasetConfig throws a ValidationError carrying the issues', () => {
    expect(() => assertValidDatasetConfig({ version: 1, tasks: [] })).toThrow(ValidationError);
    try {
      assertValidDatasetConfig({ version: 1, tasks: [] });
    } catch (e) {
      expect((e as ValidationError).issues).toEqual([{ path: '/tasks', message: 'must have at least 1 item' }]);
    }
  });
});

describe('topoOrder', () => {
  const t = (name: string, depends?: string[]): { name: string; depends?: string[] } => (depends ? { name, depends } : { name });

  test('dependencies first, config order among tasks that are free', () => {
    const order = topoOrder([t('detector', ['photon']), t('photon', ['generate']), t('generate'), t('other')]).map((x) => x.name);
    // the lowest-indexed free task goes next
    expect(order).toEqual(['generate', 'photon', 'detector', 'other']);
    expect(topoOrder([t('a'), t('b'), t('c', ['a', 'b'])]).map((x) => x.name)).toEqual(['a', 'b', 'c']);
  });

  test('errors on cycles and unknown dependencies', () => {
    expect(() => topoOrder([t('a', ['b']), t('b', ['a'])])).toThrow(/dependency cycle: a → b → a/);
    expect(() => topoOrder([t('a', ['zz'])])).toThrow(/\/tasks\/0\/depends\/0 refers to unknown task "zz"/);
    expect(() => topoOrder([t('a'), t('a')])).toThrow(/duplicate task name "a"/);
  });

  test('a long chain is handled without recursion', () => {
    const tasks = Array.from({ length: 5000 }, (_, i) => t(`t${i}`, i ? [`t${i - 1}`] : undefined)).reverse();
    const order = topoOrder(tasks);
    expect(order[0]?.name).toBe('t0');
    expect(order[4999]?.name).toBe('t4999');
  });
});

describe('configHash', () => {
  test('independent of key order and whitespace, sensitive to content', () => {
    const a = { version: 1, tasks: [{ name: 'x', trays: [] }], steering: { parameters: { b: 2, a: 1 } } };
    const b = JSON.parse('{ "steering": {"parameters": {"a": 1, "b": 2}}, "tasks": [{"trays": [], "name": "x"}], "version": 1 }') as unknown;
    expect(configHash(a)).toBe(configHash(b));
    expect(configHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(configHash({ ...a, version: 2 })).not.toBe(configHash(a));
    expect(configHash([1, 2])).not.toBe(configHash([2, 1]));
  });

  test('canonical JSON', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: undefined, a: 'x' }], a: null })).toBe('{"a":null,"b":[1,{"a":"x","d":1}]}');
  });
});

describe('requirements and retry defaults', () => {
  const ctx: ExpressionContext = { dataset: 1, job: 3, jobs_total: 10, steering: { mem: 1500 } };

  test('defaults fill what is missing; expressions are evaluated', () => {
    expect(defaultRequirements).toEqual({ cpu: 1, gpu: 0, memory: 2000, disk: 10000, time: 60 });
    expect(resolveRequirements(undefined, ctx)).toEqual(defaultRequirements);
    expect(resolveRequirements({ memory: '$eval($steering(mem) + 100 * $(job))', gpu: 1, site: 'site-$(job)' }, ctx)).toEqual({
      ...defaultRequirements,
      memory: 1800,
      gpu: 1,
      site: 'site-3',
    });
  });

  test('bad values are reported by path', () => {
    expect(() => resolveRequirements({ cpu: '$eval(1/2)', memory: 'abc' }, ctx)).toThrow(
      /\/requirements\/cpu must be an integer >= 1, got "\$eval\(1\/2\)"; \/requirements\/memory must be a number > 0, got "abc"/,
    );
  });

  test('retry policy defaults', () => {
    expect(resolveRetryPolicy(undefined)).toEqual({ max_failures: 5, max_evictions: 10, backoff_seconds: 60, backoff_max_seconds: 3600, rules: [] });
    expect(resolveRetryPolicy({ max_failures: 1 }).max_failures).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------
// The examples really run: a miniature pilot executes every task of every job with
// /bin/sh in a scratch directory, moving data through a "site" directory, and the stats
// must be exactly what examples/datasets/README.md promises.

interface RunResult {
  stats: Map<string, number>;
  site: string;
}

function resolveRemote(remote: string, site: string): string {
  if (remote.startsWith('file://')) return remote.slice('file://'.length);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(remote)) throw new Error(`test pilot cannot fetch ${remote}`);
  return path.join(site, remote);
}

function runDataset(config: DatasetConfig, dataset: number, jobs: number, argsFor?: (job: number) => Record<string, unknown>): RunResult {
  const site = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-site-'));
  const stats = new Map<string, number>();
  const steering = config.steering?.parameters ?? {};
  for (let job = 0; job < jobs; job++) {
    for (const task of topoOrder(config.tasks)) {
      const ctx: ExpressionContext = { dataset, job, jobs_total: jobs, task: task.name, steering, args: argsFor?.(job) ?? {}, system: {} };
      const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-scratch-'));
      const statsFile = path.join(scratch, '.firn-stats');
      fs.writeFileSync(statsFile, '');
      const data = expandConfig(task.data ?? [], ctx);
      for (const d of data.filter((x) => x.movement !== 'output')) {
        fs.copyFileSync(resolveRemote(d.remote, site), path.join(scratch, d.local));
      }
      for (const rawTray of task.trays) {
        for (let iter = 0; iter < (rawTray.iterations ?? 1); iter++) {
          const tray = expandConfig(rawTray, { ...ctx, iter });
          for (const m of tray.modules) {
            expect(m.class).toBe('shell');
            const command = m.parameters?.['command'];
            if (typeof command !== 'string') throw new Error('shell module without a command');
            const started = Date.now();
            execFileSync('/bin/sh', ['-c', command], {
              cwd: scratch,
              stdio: ['ignore', 'pipe', 'pipe'],
              env: {
                PATH: process.env['PATH'] ?? '/usr/bin:/bin',
                ...m.env,
                FIRN_DATASET: String(dataset),
                FIRN_JOB: String(job),
                FIRN_TASK: task.name,
                FIRN_SCRATCH: scratch,
                FIRN_STATS: statsFile,
              },
            });
            expect(Date.now() - started).toBeLessThan(1000);
          }
        }
      }
      for (const d of data.filter((x) => x.movement !== 'input')) {
        const dest = resolveRemote(d.remote, site);
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.copyFileSync(path.join(scratch, d.local), dest);
      }
      for (const line of fs.readFileSync(statsFile, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const [name = '', value = ''] = line.trim().split(/\s+/);
        const n = Number(value);
        expect(Number.isFinite(n)).toBe(true);
        stats.set(name, (stats.get(name) ?? 0) + n);
      }
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  return { stats, site };
}

/** Σ energy_sum over jobs 0..N−1 (seed 7, 100 events): job j gives 5650 + 100·j. */
const energySum = (n: number): number => 5650 * n + 50 * n * (n - 1);

describe('examples run and produce the documented statistics', () => {
  const cleanup: string[] = [];
  afterAll(() => {
    for (const d of cleanup) fs.rmSync(d, { recursive: true, force: true });
  });

  test('simulation.json', () => {
    const config = assertValidDatasetConfig(loadExample('simulation.json'));
    for (const n of [1, 3]) {
      const { stats, site } = runDataset(config, 11, n);
      cleanup.push(site);
      expect(Object.fromEntries(stats)).toEqual({ events: 100 * n, energy_sum: energySum(n) });
      const out = fs.readFileSync(path.join(site, 'results/11/sim_000000.txt'), 'utf8').trim().split('\n');
      expect(out).toHaveLength(100);
      expect(out[0]).toBe('0 7');
    }
    expect(energySum(1)).toBe(5650);
    expect(energySum(10)).toBe(61000);
  });

  test('dag-gpu.json', () => {
    const config = assertValidDatasetConfig(loadExample('dag-gpu.json'));
    const n = 3;
    const { stats, site } = runDataset(config, 12, n);
    cleanup.push(site);
    const e = energySum(n);
    expect(Object.fromEntries(stats)).toEqual({
      events: 100 * n,
      energy_sum: e,
      photons: 3 * e,
      calib_passes: 2 * n,
      detected_events: 100 * n,
      hits: e + 100 * n,
    });
    expect(fs.existsSync(path.join(site, 'results/12/det_000002.txt'))).toBe(true);
    expect(fs.existsSync(path.join(site, 'results/12/2/photons.txt'))).toBe(true);
    expect(config.tasks.find((t) => t.name === 'photon')?.requirements?.gpu).toBe(1);
  });

  test('offline.json', () => {
    const config = assertValidDatasetConfig(loadExample('offline.json'));
    expect(config.type).toBe('offline');
    const inputs = ['run_000001.txt', 'run_000002.txt', 'run_000003.txt'].map((f) => path.join(examplesDir, 'offline-inputs', f));
    const { stats, site } = runDataset(config, 13, inputs.length, (job) => ({ input: `file://${inputs[job] ?? ''}` }));
    cleanup.push(site);
    expect(Object.fromEntries(stats)).toEqual({ files: 3, lines: 30, value_sum: 465 });
    expect(fs.readFileSync(path.join(site, 'results/13/processed_000001.txt'), 'utf8').trim().split('\n').map(Number)).toEqual(
      Array.from({ length: 10 }, (_, i) => 2 * (11 + i)),
    );
  });

  test('server-side expansion keeps what only the worker knows', () => {
    const config = assertValidDatasetConfig(loadExample('offline.json'));
    const out = expandConfig(config, { dataset: 13, job: 4, jobs_total: 0, task: 'process' }, { keepUnresolved: true });
    expect(out.tasks[0]?.data?.[0]?.remote).toBe('$args(input)');
    expect(out.tasks[0]?.data?.[1]?.remote).toBe('results/13/processed_000004.txt');
  });
});

describe('error answers are bounded (issue 14)', () => {
  test('thousands of bad items, huge keys and long strings give at most 50 short issues and a count', () => {
    const cfg = minimal() as unknown as Record<string, unknown> & { tasks: Array<Record<string, unknown>> };
    const task = cfg.tasks[0]!;
    for (let i = 0; i < 5_000; i++) cfg.tasks.push({ ...task, name: `t${i}`, [`bad_key_${'k'.repeat(10_000)}${i}`]: 1, depends: [`nope${'x'.repeat(1000)}`] });
    cfg['steering'] = { parameters: { s: `$eval(${'$steering(missing'.repeat(3_000)}` } };
    const t0 = performance.now();
    const issues = issuesOf(cfg);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(issues).toHaveLength(51);
    expect(issues[50]).toEqual({ path: '/', message: expect.stringMatching(/^and \d+ more issues$/) });
    for (const i of issues) {
      expect(i.path.length).toBeLessThanOrEqual(300);
      expect(i.message.length).toBeLessThanOrEqual(500);
    }
    expect(JSON.stringify(issues).length).toBeLessThan(64 * 1024);
  });

  test('a retry rule RE2 cannot compile is refused at submission, naming it; (a+)+ is accepted', () => {
    const cfg = { ...minimal(), retry: { rules: [{ match: '(a+)+', action: 'fail' }, { match: 'a*a*a*a*a*a*b', action: 'fail' }, { match: '(?=x)y', action: 'fail' }] } };
    expect(issuesOf(cfg)).toEqual([{ path: '/retry/rules/2/match', message: expect.stringMatching(/^is not a valid RE2 regular expression .*Perl syntax/) }]);
  });
});
