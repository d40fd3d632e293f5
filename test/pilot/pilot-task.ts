/** Shared fixtures for the pilot integration tests: a dataset config exercising every part of a task run. */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function sha256(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
export function md5(data: Buffer | string): string {
  return crypto.createHash('md5').update(data).digest('hex');
}

export const EXT_SCRIPT = '#!/bin/sh\necho "ext ran with $*"\necho "ext_runs 1" >> "$FIRN_STATS"\n';
export const IN_TXT = 'input line 1\ninput line 2\n';

/** Files the web server serves: the tools metaproject and an input file. Returns their checksums. */
export function writeWebFiles(www: string): { toolsSha256: string; inSha256: string } {
  const src = path.join(path.dirname(www), 'tools-src');
  fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(src, 'bin', 'hello'), '#!/bin/sh\necho "hello from tools"\n', { mode: 0o755 });
  fs.mkdirSync(www, { recursive: true });
  execFileSync('tar', ['-czf', path.join(www, 'tools.tar.gz'), '-C', src, 'bin']);
  fs.writeFileSync(path.join(www, 'in.txt'), IN_TXT);
  return { toolsSha256: sha256(fs.readFileSync(path.join(www, 'tools.tar.gz'))), inSha256: sha256(IN_TXT) };
}

export interface StartOptions {
  webUrl: string;
  toolsSha256: string;
  inSha256: string;
  siteTemp?: string;
  taskId?: number;
  datasetId?: number;
  jobIndex?: number;
  /** Extra module appended to the post tray (e.g. a slow one). */
  extraModule?: Record<string, unknown>;
  requirements?: Record<string, unknown>;
  monRequirements?: Record<string, unknown>;
}

/** A pilot.start result: two trays (one with 3 iterations and a metaproject), inputs, outputs, an external module. */
export function startResult(o: StartOptions): Record<string, unknown> {
  const config = {
    version: 1,
    steering: {
      parameters: { nevents: 4 },
      metaprojects: [{ name: 'tools', url: `${o.webUrl}/tools.tar.gz`, checksum: { sha256: o.toolsSha256 } }],
    },
    tasks: [
      { name: 'other', trays: [{ name: 'x', modules: [{ name: 'y', class: 'shell', parameters: { command: 'exit 99' } }] }] },
      {
        name: 'main',
        requirements: { memory: 1000, time: 10, ...o.requirements },
        data: [
          { local: 'in.txt', remote: `${o.webUrl}/in.txt`, movement: 'input', checksum: { sha256: o.inSha256 } },
          { local: 'result.txt', remote: 'results/$(dataset)/$sprintf("%04d", $(job))/result.txt', movement: 'output', type: 'permanent' },
          { local: 'hello.tar.gz', remote: 'logs/$(dataset)/$(job)/hello.tar.gz', movement: 'output', type: 'job_temp' },
        ],
        trays: [
          {
            name: 'gen',
            iterations: 3,
            metaproject: 'tools',
            modules: [
              {
                name: 'count',
                class: 'shell',
                env: { N: '$steering(nevents)' },
                parameters: {
                  command:
                    'hello >> hello.txt; echo "events $N" >> "$FIRN_STATS"; echo "iter_sum $(iter)" >> "$FIRN_STATS"; ' +
                    'echo "iteration $(iter) of job $(job) in $FIRN_TASK, FIRN_ITER=$FIRN_ITER"',
                },
              },
            ],
          },
          {
            name: 'post',
            modules: [
              { name: 'combine', class: 'shell', parameters: { command: 'cat in.txt hello.txt > result.txt; echo "lines $(wc -l < result.txt)" >> "$FIRN_STATS"' } },
              { name: 'pack', class: 'tarball', parameters: { create: 'hello.tar.gz', path: 'hello.txt' } },
              { name: 'ext', class: 'mymod', src: 'https://modules.example.org/ext.sh', args: ['--fast'] },
              ...(o.extraModule ? [o.extraModule] : []),
            ],
          },
        ],
      },
    ],
  };
  return {
    task: {
      id: o.taskId ?? 42,
      name: 'main',
      task_index: 1,
      dataset_id: o.datasetId ?? 7,
      job_id: 100,
      job_index: o.jobIndex ?? 5,
      jobs_total: 10,
      requirements: { ...o.monRequirements },
    },
    config,
    args: {},
    inputs: [],
    external_modules: [
      {
        tray: 'post',
        module: 'ext',
        src: 'https://modules.example.org/ext.sh',
        md5: md5(EXT_SCRIPT),
        sha256: sha256(EXT_SCRIPT),
        content_base64: Buffer.from(EXT_SCRIPT).toString('base64'),
      },
    ],
    system: { ...(o.siteTemp ? { site_temp: o.siteTemp } : {}), heartbeat_seconds: 60 },
  };
}

/** The task's statistics apart from cpu_seconds, as the fixture defines them. */
export const EXPECTED_STATS = { events: 12, iter_sum: 3, lines: 2 + 3, ext_runs: 1 };
export const EXPECTED_RESULT = `${IN_TXT}hello from tools\nhello from tools\nhello from tools\n`;
