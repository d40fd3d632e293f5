import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@firn/core';
import { iniValue, renderCtlScript, renderQueueIni } from './remote-files';
import { parseSshTarget, type SiteEntry } from './sites-file';

const site: SiteEntry = {
  name: 'cluster-a', plugin: 'slurm', ssh: { host: 'login', port: 22, user: 'prod' }, remote_dir: '~/firn',
  capabilities: { cpu: 8, memory: 16000 }, settings: { queue: { schedule: '*/30 * * * * *', max_queued: '500' }, environment: { X509_CERT_DIR: '/etc/grid; security' } },
  added_at: '2026-01-01T00:00:00Z',
};

describe('renderQueueIni', () => {
  it('is read back by firn-queue\'s config loader exactly, hostile passwords included', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-site-ini-'));
    try {
      const dbUrl = 'mysql://site_a:p;a#ss"w=rd @x@db.example.org:3306/firn';
      const file = path.join(dir, 'queue.ini');
      fs.writeFileSync(file, renderQueueIni({ site, remoteDir: '/home/prod/firn', dbUrl, monUrl: 'https://mon.example.org:8581', pilot: '/home/prod/firn/firn-pilot' }));
      const cfg = loadConfig({ file });
      expect(cfg.db.url).toBe(dbUrl);
      expect(cfg.queue).toMatchObject({ grid: 'cluster-a', plugin: 'slurm', submit_dir: '/home/prod/firn/submit', schedule: '*/30 * * * * *', max_queued: 500 });
      expect(JSON.parse(cfg.queue.capabilities as string)).toEqual({ cpu: 8, memory: 16000 });
      expect(cfg.mon.url).toBe('https://mon.example.org:8581');
      expect(cfg.system.pilot).toBe('/home/prod/firn/firn-pilot');
      expect(cfg.environment.X509_CERT_DIR).toBe('/etc/grid; security');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('quotes only what needs quoting', () => {
    expect(iniValue('/home/prod/firn/firn-pilot')).toBe('/home/prod/firn/firn-pilot');
    expect(iniValue('a;b')).toBe('"a;b"');
    expect(iniValue(' x')).toBe('" x"');
  });
});

describe('renderCtlScript', () => {
  it('is valid sh that prints its usage', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-site-ctl-'));
    try {
      const file = path.join(dir, 'firn-queue-ctl');
      fs.writeFileSync(file, renderCtlScript({ site: 'a', remoteDir: dir, node: 'node' }));
      expect(spawnSync('/bin/sh', ['-n', file]).status).toBe(0);
      const r = spawnSync('/bin/sh', [file, 'bogus'], { encoding: 'utf8' });
      expect([r.status, r.stderr]).toEqual([2, expect.stringContaining('usage:')]);
      const st = spawnSync('/bin/sh', [file, 'status'], { encoding: 'utf8' });
      expect([st.status, st.stdout.trim()]).toEqual([3, 'not running']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseSshTarget', () => {
  it('reads user@host[:port]', () => {
    expect(parseSshTarget('firnsite@127.0.0.1:2222')).toEqual({ user: 'firnsite', host: '127.0.0.1', port: 2222 });
    expect(parseSshTarget('prod@login.example.org')).toEqual({ user: 'prod', host: 'login.example.org', port: 22 });
    expect(parseSshTarget('a@[::1]:22')).toEqual({ user: 'a', host: '::1', port: 22 });
    expect(() => parseSshTarget('login.example.org')).toThrow(/user@host/);
    expect(() => parseSshTarget('a@b:99999')).toThrow(/port/);
  });
});
