import { loadConfig, type FirnConfig } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { startWeb, type RunningWeb } from '@firn/web';
import { createTestDb, type DbKind, type TestDb } from '../helpers/db';
import { seedWeb, type WebSeed } from './seed';

/** A seeded database, a real firn-tray on it, and the web monitor (firn-web) in front — all on loopback. */
export interface WebEnv {
  t: TestDb;
  seed: WebSeed;
  tray: Tray;
  web: RunningWeb;
  config: FirnConfig;
  close(): Promise<void>;
}

export async function startWebEnv(kind: DbKind, web: { pollSeconds?: number; cacheMs?: number; anonymousRead?: boolean } = {}): Promise<WebEnv> {
  const t = await createTestDb(kind);
  const seed = await seedWeb(t.db);
  const trayCfg = loadConfig({ overrides: { db: { url: t.url }, tray: { host: '127.0.0.1', port: 0 }, log: { level: 'error' } } });
  const tray = await startTray({ config: trayCfg, db: t.db });
  const config = loadConfig({
    overrides: { db: { url: t.url }, mon: { host: '127.0.0.1', port: 0, tray_url: tray.url }, log: { level: 'error' } },
  });
  const running = await startWeb({ config, db: t.db, web: { pollSeconds: web.pollSeconds ?? 1, cacheMs: web.cacheMs ?? 0, whoamiTtlMs: 500, anonymousRead: web.anonymousRead } });
  return {
    t, seed, tray, web: running, config,
    async close() {
      await running.close();
      await tray.close();
      await t.drop();
    },
  };
}
