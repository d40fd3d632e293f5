/** Forked by claim.test.ts: claim in a loop until nothing is left, report the ids, exit. */
import { claimTasks, openDb } from '@firn/core';

process.once('message', (m: { url: string; gridId: number; gridName: string; batch: number }) => {
  void (async () => {
    const db = openDb(m.url);
    const ids: number[] = [];
    try {
      for (;;) {
        const got = await claimTasks(db, { gridId: m.gridId, gridName: m.gridName, limit: m.batch, capabilities: {}, leaseMs: 60_000, owner: `queue:${m.gridName}` });
        if (got.length === 0) break;
        ids.push(...got.map((t) => t.id));
      }
      process.send!({ ids });
    } catch (e) {
      process.send!({ error: (e as Error).stack });
    } finally {
      await db.destroy();
      process.disconnect();
    }
  })();
});
