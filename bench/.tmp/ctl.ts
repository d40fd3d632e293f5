import { connect, createUser, datasetStatus, loadConfig, nullLogger } from '@firn/core';
import { submitDataset, createTrayContext } from '@firn/tray';
import { suspendDataset, resetDataset } from '../../packages/tray/src/datasets';
(async () => {
  const url = 'mysql://root@127.0.0.1:3306/firn_ctl_probe_' + process.pid;
  const db = await connect(url);
  try {
    const u = await createUser(db, { username: 'b', role: 'admin', password: 'bench-password' });
    const cfg = { version: 1, tasks: ['a', 'b', 'c'].map((n, i) => ({ name: n, depends: i ? [['a', 'b', 'c'][i - 1]] : [], trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] })) };
    const jobs = Number(process.env.JOBS ?? 20000);
    let t = Date.now();
    const r = await submitDataset(db, { config: cfg, jobs }, { user: u, fetch: { maxBytes: 1, timeoutMs: 1 } });
    console.log('submit', (Date.now() - t) / 1000);
    t = Date.now(); await datasetStatus(db, r.dataset_id); console.log('status', (Date.now() - t) / 1000);
    const ctx = createTrayContext(loadConfig({ overrides: { db: { url } } }), db, nullLogger);
    const user = { id: u.id, username: 'b', role: 'admin' as const, source: 'local' as const };
    t = Date.now(); const s = await suspendDataset(ctx, user, r.dataset_id); console.log('suspend', s.changed, (Date.now() - t) / 1000);
    t = Date.now(); const x = await resetDataset(ctx, user, r.dataset_id, 'resume'); console.log('resume', x.changed, (Date.now() - t) / 1000);
  } finally {
    await db.raw('DROP DATABASE IF EXISTS ??', ['firn_ctl_probe_' + process.pid]);
    await db.destroy();
  }
})();
