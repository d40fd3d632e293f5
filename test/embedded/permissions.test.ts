/**
 * Issue 14: the embedded suite (what `firn up` runs) keeps its data private: a new data directory
 * is 0700, the SQLite database and its -wal/-shm files 0600 — whatever the umask lets others read.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nullLogger, openDb } from '@firn/core';
import { startEmbedded } from '../../packages/client/src/embedded/suite';

const mode = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);

describe('embedded data directory permissions', () => {
  let root: string;
  const umask = process.umask(0o022); // the usual umask: without explicit modes files would be 0644, directories 0755

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-perm-'));
  });
  afterAll(() => {
    process.umask(umask);
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('firn up creates its data directory 0700 and its SQLite database (with -wal and -shm) 0600', async () => {
    const data = path.join(root, 'new', 'firn-data');
    const suite = await startEmbedded({ dataDir: data, trayPort: 0, monPort: 0, schedule: '*/5 * * * * *', logger: nullLogger, env: {} });
    try {
      await suite.db('grid').select('id').limit(1); // the database is in use: WAL files exist
      const db = path.join(data, 'firn.sqlite');
      expect(mode(data)).toBe('700');
      expect(mode(db)).toBe('600');
      for (const side of ['-wal', '-shm']) {
        if (fs.existsSync(db + side)) expect([side, mode(db + side)]).toEqual([side, '600']);
      }
      expect(fs.existsSync(db + '-wal')).toBe(true);
    } finally {
      await suite.close();
    }
  }, 60_000);

  test('core creates any new SQLite database 0600 in a new 0700 directory, and leaves existing ones as they are', async () => {
    const file = path.join(root, 'core', 'deep', 'x.sqlite');
    const db = openDb(`sqlite://${file}`);
    try {
      await db.raw('CREATE TABLE t (a INTEGER)');
      await db('t').insert({ a: 1 });
      expect([mode(path.dirname(file)), mode(path.join(root, 'core')), mode(file), mode(`${file}-wal`), mode(`${file}-shm`)]).toEqual(['700', '700', '600', '600', '600']);
    } finally {
      await db.destroy();
    }
    const shared = path.join(root, 'shared.sqlite');
    fs.writeFileSync(shared, '', { mode: 0o640 });
    const again = openDb(`sqlite://${shared}`);
    try {
      await again.raw('SELECT 1');
      expect(mode(shared)).toBe('640'); // the operator's choice (e.g. a read-only firn-web account in the group)
    } finally {
      await again.destroy();
    }
  });
});
