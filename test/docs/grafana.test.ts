import fs from 'node:fs';
import path from 'node:path';
import client from 'prom-client';
import { registerTaskGauges, type Db } from '@firn/core';
import { createDhMetrics } from '@firn/dh';
import { createQueueMetrics } from '@firn/queue';

/** deploy/grafana/firn.json: valid dashboard JSON with a panel for every Firn production metric. */
describe('the Grafana dashboard', () => {
  const dash = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../deploy/grafana/firn.json'), 'utf8')) as {
    title: string; uid: string; schemaVersion: number; panels: Array<{ id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Array<{ expr: string }> }>;
  };

  it('is a dashboard: title, uid, unique panel ids, every graph with a query', () => {
    expect(dash).toMatchObject({ title: 'Firn', uid: 'firn-overview', schemaVersion: expect.any(Number) });
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dash.panels.filter((x) => x.type !== 'row')) {
      expect([p.title, (p.targets ?? []).length > 0]).toEqual([p.title, true]);
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
  });

  it('charts every metric firn-queue, firn-dh and the task gauges export', () => {
    const registry = new client.Registry();
    const db = {} as Db; // read only at scrape time, never here
    registerTaskGauges(registry, db);
    createQueueMetrics(db, 'g', { registry });
    createDhMetrics(db, { registry });
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    const names = registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name);
    expect(names.length).toBeGreaterThan(15);
    expect(names.filter((n) => !exprs.includes(n))).toEqual([]);
  });
});
