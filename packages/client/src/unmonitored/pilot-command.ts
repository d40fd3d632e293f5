import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { shellJoin, shellQuote } from '@firn/queue';

/** Directories that may hold the pilot's build output (a workspace checkout or an install). */
export function pilotDistDirs(): string[] {
  const dirs = [path.resolve(__dirname, '..', '..', '..', 'pilot', 'dist')];
  try {
    dirs.push(path.join(path.dirname(require.resolve('@firn/pilot/package.json')), 'dist'));
  } catch {
    /* not installed */
  }
  return [...new Set(dirs)];
}

/** Is dist/firn-pilot built from the bundle that is there now (its stamp names the bundle's sha256)? */
export function seaIsCurrent(dist: string): boolean {
  try {
    const stamp = JSON.parse(fs.readFileSync(path.join(dist, 'firn-pilot.sea.json'), 'utf8')) as { bundle_sha256?: string };
    const bundle = fs.readFileSync(path.join(dist, 'firn-pilot.js'));
    return stamp.bundle_sha256 === crypto.createHash('sha256').update(bundle).digest('hex');
  } catch {
    return false;
  }
}

/**
 * The pilot command for batch jobs when none is configured: the single executable
 * `dist/firn-pilot` (needs no Node.js on the worker) when it is current, else
 * `node dist/firn-pilot.js`; null when neither is built.
 */
export function defaultRunPilot(): string | null {
  for (const dist of pilotDistDirs()) {
    const sea = path.join(dist, 'firn-pilot');
    if (fs.existsSync(sea) && seaIsCurrent(dist)) return shellQuote(sea);
    const bundle = path.join(dist, 'firn-pilot.js');
    if (fs.existsSync(bundle)) return shellJoin(['node', bundle]);
  }
  return null;
}
