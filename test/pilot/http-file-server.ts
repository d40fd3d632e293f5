/**
 * A tiny HTTP file server for pilot tests: GET serves files from a directory (counting hits
 * per path), PUT stores them, `/redirect/<path>` answers 302 to `/<path>`, `/flaky/<path>`
 * fails with 503 the first `flaky` times.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';

export class HttpFileServer {
  readonly hits = new Map<string, number>();
  flaky = 0;
  private server: http.Server | null = null;
  port = 0;

  constructor(readonly root: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    let p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (p.startsWith('/redirect/')) {
      res.writeHead(302, { location: p.slice('/redirect'.length) });
      res.end();
      return;
    }
    if (p.startsWith('/flaky/')) {
      p = p.slice('/flaky'.length);
      if (this.flaky > 0) {
        this.flaky--;
        res.writeHead(503);
        res.end('try later');
        return;
      }
    }
    const file = path.join(this.root, path.normalize(p).replace(/^(\.\.[/\\])+/, ''));
    if (req.method === 'PUT') {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const out = fs.createWriteStream(file);
      req.pipe(out);
      out.on('finish', () => {
        res.writeHead(201);
        res.end();
      });
      return;
    }
    this.hits.set(p, (this.hits.get(p) ?? 0) + 1);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  }
}

/** /etc/firn-test/ssh.env as an object (empty when the sshd helper has not run). */
export function sshEnv(file = '/etc/firn-test/ssh.env'): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) out[m[1] as string] = (m[2] as string).replace(/^"(.*)"$/, '$1');
    }
  } catch {
    // no sshd configured
  }
  return out;
}

/** Is something listening on host:port? */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
