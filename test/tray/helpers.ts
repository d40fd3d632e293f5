import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import * as esbuild from 'esbuild';
import { createLogger, loadConfig, type FirnConfig, type Logger } from '@firn/core';

export const ROOT = path.resolve(__dirname, '..', '..');

/** A self-signed certificate for 127.0.0.1 / localhost, made with openssl in `dir`. */
export function makeCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'pipe' });
  return { cert, key };
}

/** A logger whose JSON lines are kept in memory (to assert what was, and was not, logged). */
export function captureLogger(): { logger: Logger; text: () => string } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d.toString()));
  return { logger: createLogger({ stream, format: 'json', level: 'debug' }), text: () => chunks.join('') };
}

export function tmpDir(prefix = 'firn-tray-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A tray config for tests: port 0 (any free port), the given db, optional TLS. */
export function trayConfig(dbUrl: string, extra: Record<string, unknown> = {}, tls?: { cert: string; key: string }): FirnConfig {
  return loadConfig({
    overrides: {
      db: { url: dbUrl },
      tray: { host: '127.0.0.1', port: 0, ...(tls ? { tls_cert: tls.cert, tls_key: tls.key } : {}), ...extra },
      log: { level: 'debug' },
    },
  });
}

export function exampleConfig(name: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'datasets', `${name}.json`), 'utf8')) as Record<string, unknown>;
}

/**
 * Bundle a CLI entry point (TypeScript source) with esbuild so a test can run it as a real
 * process without a full build: @firn/* come from their sources, other packages stay external
 * (required by absolute path, as the importing source would resolve them).
 * Returns the bundle path and a cleanup function.
 */
export async function bundleCli(pkg: 'tray' | 'client'): Promise<{ file: string; cleanup: () => void }> {
  const outDir = fs.mkdtempSync(path.join(ROOT, 'packages', pkg, '.test-bundle-'));
  const file = path.join(outDir, 'cli.js');
  await esbuild.build({
    entryPoints: [path.join(ROOT, 'packages', pkg, 'src', 'cli.ts')],
    outfile: file,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'firn-sources',
        setup(build) {
          build.onResolve({ filter: /^@firn\/[a-z]+$/ }, (args) => ({ path: path.join(ROOT, 'packages', args.path.slice('@firn/'.length), 'src', 'index.ts') }));
          // a bundle hoists every module into one scope, where `require.main === module` holds in all
          // of them: only the entry point may start a program (other daemons' cli.ts must not)
          const entry = path.join(ROOT, 'packages', pkg, 'src', 'cli.ts');
          build.onLoad({ filter: /\/packages\/[a-z]+\/src\/.*\.ts$/ }, (args) => {
            const text = fs.readFileSync(args.path, 'utf8');
            return { contents: args.path === entry ? text : text.replace(/require\.main === module/g, 'false'), loader: 'ts' };
          });
          // other packages stay external, resolved where the importing source file would find them
          // (packages/core/node_modules/ajv is not the root's ajv)
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith('@firn/') ? undefined : { path: require.resolve(args.path, { paths: [args.resolveDir] }), external: true });
        },
      },
    ],
  });
  return { file, cleanup: () => fs.rmSync(outDir, { recursive: true, force: true }) };
}
