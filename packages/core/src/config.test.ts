import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from './errors';
import { envOverrides, loadConfig } from './config';

function iniFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-cfg-'));
  const f = path.join(dir, 'firn.ini');
  fs.writeFileSync(f, text);
  return f;
}

describe('config loading', () => {
  test('defaults alone are valid: SQLite in ./firn-data, local plugin', () => {
    const cfg = loadConfig({ env: {} });
    expect(cfg.db.url).toBe(`sqlite://${path.resolve('firn-data', 'firn.sqlite')}`);
    expect(cfg.queue.plugin).toBe('local');
    expect(cfg.queue.max_queued).toBe(100);
    expect(cfg.tray.port).toBe(8580);
  });

  test('precedence: defaults < file < FIRN_<SECTION>_<KEY> < flags', () => {
    const f = iniFile('[queue]\ngrid = site-a\nmax_queued = 10\nplugin = slurm\n[tray]\nport = 9000\n[environment]\nMY_VAR = from-file\n');
    const cfg = loadConfig({
      file: f,
      env: { FIRN_QUEUE_MAX_QUEUED: '20', FIRN_TRAY_PORT: '9100', FIRN_ENVIRONMENT_OTHER: 'x', UNRELATED: '1' },
      overrides: { tray: { port: 9200 } },
    });
    expect(cfg.queue.grid).toBe('site-a');
    expect(cfg.queue.plugin).toBe('slurm');
    expect(cfg.queue.max_queued).toBe(20); // env beats file, coerced to a number
    expect(cfg.tray.port).toBe(9200); // flag beats env
    expect(cfg.environment).toEqual({ MY_VAR: 'from-file', OTHER: 'x' });
  });

  test('FIRN_DB_URL overrides [db] url', () => {
    const f = iniFile('[db]\nurl = sqlite:///tmp/a.sqlite\n');
    expect(loadConfig({ file: f, env: { FIRN_DB_URL: 'mysql://u:p@h:3306/firn' } }).db.url).toBe('mysql://u:p@h:3306/firn');
  });

  test('relative paths resolve against the config file', () => {
    const f = iniFile('[db]\nurl = sqlite://data/firn.sqlite\n[tray]\ntls_cert = tls/c.pem\ntls_key = tls/k.pem\n');
    const cfg = loadConfig({ file: f });
    expect(cfg.db.url).toBe(`sqlite://${path.join(path.dirname(f), 'data/firn.sqlite')}`);
    expect(cfg.tray.tls_cert).toBe(path.join(path.dirname(f), 'tls/c.pem'));
  });

  test.each([
    ['[queue]\nmax_queued = -3\n', '[queue] max_queued must be >= 1'],
    ['[queue]\nplugin = lsf\n', '[queue] plugin must be one of'],
    ['[tray]\nport = http\n', '[tray] port must be integer'],
    ['[tray]\nbogus = 1\n', '[tray] bogus is not an allowed property'],
    ['[nonsense]\na = 1\n', '[nonsense] is not an allowed property'],
    ['[db]\nurl = postgres://x\n', '[db] url must match pattern'],
    ['[queue]\ncapabilities = {not json\n', '[queue] capabilities must be a JSON object'],
    ['[tray]\ntls_cert = /x.pem\n', '[tray] tls_key is required when tls_cert is set'],
  ])('%j is refused naming section and key', (text, message) => {
    let err: unknown;
    try {
      loadConfig({ file: iniFile(text) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(message);
  });

  test('every error is reported at once', () => {
    try {
      loadConfig({ file: iniFile('[queue]\nmax_queued = 0\nplugin = x\n[mon]\nport = 99999\n') });
      throw new Error('should have failed');
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain('[queue] max_queued');
      expect(msg).toContain('[queue] plugin');
      expect(msg).toContain('[mon] port');
    }
  });

  test('a missing file is a clear error', () => {
    expect(() => loadConfig({ file: '/nonexistent/firn.ini' })).toThrow(/cannot read config file \/nonexistent\/firn.ini/);
  });

  test('envOverrides ignores unknown sections', () => {
    expect(envOverrides({ FIRN_FOO_BAR: '1', FIRN_DH_SCHEDULE: '* * * * *' })).toEqual({ dh: { schedule: '* * * * *' } });
  });
});
