/**
 * The servers of bench/mon.ts, each in its own process (not sharing a core's event loop with
 * the load generator or the bench): a real firn-mon writing to MariaDB, or a bare node:http
 * JSON-RPC server answering {ok: true} to every call (the HTTP + JSON baseline).
 *
 * IPC: {start} → {url}; {metrics} → {metrics: Prometheus text} (firn-mon); {cpu} → {cpu: ms of
 * CPU so far}; {close} → closes and exits.
 */
import http from 'node:http';
import { createLogger, loadConfig, openDb } from '@firn/core';
import { createMonServer } from '@firn/mon';

export interface ServerStart {
  kind: 'mon' | 'echo';
  /** firn-mon: its (migrated, seeded) database */
  dbUrl?: string;
  flushMs?: number;
  concurrentFlushes?: number;
  /** [mon] max_connections: at least the generator's connections */
  maxConnections: number;
}

function echoServer(): http.Server {
  return http.createServer({ keepAliveTimeout: 330_000 }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      let id: unknown = null;
      try {
        id = (JSON.parse(body) as { id?: unknown }).id ?? null;
      } catch {
        /* answer anyway */
      }
      const out = JSON.stringify({ jsonrpc: '2.0', id, result: { ok: true } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
}

export function serverMain(): void {
  let close: (() => Promise<void>) | null = null;
  let metrics: (() => Promise<string>) | null = null;
  const cpuMs = () => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  process.on('message', (m: { start?: ServerStart; metrics?: true; cpu?: true; close?: true }) => {
    void (async () => {
      try {
        if (m.start) {
          const s = m.start;
          if (s.kind === 'echo') {
            const server = echoServer();
            server.maxConnections = s.maxConnections;
            await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
            close = () => new Promise<void>((r) => {
              server.closeAllConnections();
              server.close(() => r());
            });
            process.send!({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}` });
          } else {
            const db = openDb(s.dbUrl!, { poolMax: 10 });
            const config = loadConfig({
              env: {},
              overrides: { db: { url: s.dbUrl! }, mon: { host: '127.0.0.1', port: 0, flush_ms: s.flushMs ?? 50, web: false, max_connections: s.maxConnections } },
            });
            const mon = await createMonServer({
              db, config, maxConcurrentFlushes: s.concurrentFlushes ?? 2,
              logger: createLogger({ level: 'warn', format: 'text', scope: { daemon: 'mon' } }),
            });
            const url = await mon.listen();
            metrics = () => mon.registry.metrics();
            close = async () => {
              await mon.close();
              await db.destroy();
            };
            process.send!({ url });
          }
        }
        if (m.metrics) process.send!({ metrics: metrics ? await metrics() : '' });
        if (m.cpu) process.send!({ cpu: cpuMs() });
        if (m.close) {
          await close?.();
          process.send!({ closed: true }, () => process.exit(0));
        }
      } catch (e) {
        process.send!({ error: e instanceof Error ? e.stack ?? e.message : String(e) }, () => process.exit(1));
      }
    })();
  });
}
