import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A static file served from memory. */
export interface Asset {
  body: Buffer;
  type: string;
  /** Content hash, for `?v=` cache busting. */
  version: string;
}

/** packages/web/static, from src/ (tests) or dist/ (built). */
export function staticDir(): string {
  return path.resolve(__dirname, '..', 'static');
}

/** Chart.js's UMD build from its npm package (served by us: no CDN, the browser may have no internet). */
export function chartJsPath(): string {
  return path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');
}

function load(file: string, type: string): Asset {
  const body = fs.readFileSync(file);
  return { body, type, version: crypto.createHash('sha256').update(body).digest('hex').slice(0, 12) };
}

/** The files under /static/, by name. */
export function loadAssets(): Map<string, Asset> {
  const dir = staticDir();
  return new Map([
    ['firn-web.js', load(path.join(dir, 'firn-web.js'), 'text/javascript; charset=utf-8')],
    ['firn-web.css', load(path.join(dir, 'firn-web.css'), 'text/css; charset=utf-8')],
    ['chart.umd.js', load(chartJsPath(), 'text/javascript; charset=utf-8')],
  ]);
}
