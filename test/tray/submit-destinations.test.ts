/**
 * Issue 14 at submission: a dataset whose output `remote` lies outside `[dh] destinations` and
 * site temp is refused with -32602 naming the remote's path; nothing is written.
 */
import { RpcErrorCode, StorageRoots, ValidationError, createUser, nullLogger, type AuthUser, type Db } from '@firn/core';
import { submitDataset, type SubmitOptions } from '@firn/tray';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';

const task = (data: unknown[]) => ({
  name: 'gen',
  trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }],
  data,
});

describe.each(DB_KINDS)('dataset.submit output destinations on %s', (kind) => {
  let t: TestDb;
  let db: Db;
  let opts: SubmitOptions;
  beforeAll(async () => {
    t = await createTestDb(kind);
    db = t.db;
    const u = await createUser(db, { username: 'mgr', role: 'manager', password: 'manager-pw-1' });
    const user: AuthUser = { id: u.id, username: u.username, role: 'manager', source: 'local' };
    const roots = new StorageRoots({ siteTemp: 'file:///srv/firn/temp', destinations: 'file:///data/out, sftp://store.example.org/firn' });
    opts = { user, fetch: { maxBytes: 4096, timeoutMs: 5000 }, logger: nullLogger, roots };
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('remotes outside the roots are refused with their paths; inside ones (and unresolvable ones) pass', async () => {
    const config = {
      version: 3,
      steering: { parameters: { out: 'file:///data/out' } },
      tasks: [
        task([
          { local: 'ok.dat', remote: '$steering(out)/$(dataset)/$(job)/ok.dat', movement: 'output' },
          { local: 'cron', remote: 'file:///etc/cron.d/x', movement: 'output' },
          { local: 'rel.dat', remote: 'results/rel.dat', movement: 'output' },
          { local: 'in.dat', remote: 'file:///etc/passwd', movement: 'input' },
          { local: 'up.dat', remote: 'file:///data/out/../../etc/cron.d/y', movement: 'both' },
          { local: 'later.dat', remote: '$args(dest)/later.dat', movement: 'output' },
          { local: 'cap.dat', remote: 'http://127.0.0.1:9/capture', movement: 'output' },
          { local: 'sftp.dat', remote: 'sftp://user@STORE.example.org:22/firn/a/b.dat', movement: 'output' },
          { local: 'esc.dat', remote: '../../etc/cron.d/z', movement: 'output' },
        ]),
      ],
    };
    let err: unknown;
    try {
      await submitDataset(db, { config, jobs: 2 }, opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(RpcErrorCode.INVALID_PARAMS);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual([
      '/params/config/tasks/0/data/1/remote',
      '/params/config/tasks/0/data/4/remote',
      '/params/config/tasks/0/data/6/remote',
      '/params/config/tasks/0/data/8/remote',
    ]);
    expect(await db('dataset')).toHaveLength(0);

    const fine = { version: 3, tasks: [task([{ local: 'ok.dat', remote: 'file:///data/out/ok.dat', movement: 'output' }])] };
    await expect(submitDataset(db, { config: fine, jobs: 1 }, opts)).resolves.toMatchObject({ jobs: 1 });
  });
});
