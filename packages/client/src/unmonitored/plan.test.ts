import fs from 'node:fs';
import path from 'node:path';
import { validateDatasetConfig, type DatasetConfig } from '@firn/core';
import { BatchState } from '@firn/queue';
import { groupJobs, jobRequirements, planRun, siteTempUrl } from './plan';
import { judgeJob } from './runner';

const dag = (() => {
  const file = path.resolve(__dirname, '..', '..', '..', '..', 'examples', 'datasets', 'dag-gpu.json');
  const v = validateDatasetConfig(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!v.ok) throw new Error('example does not validate');
  return v.config;
})();
const req = (r: Partial<Record<'cpu' | 'gpu' | 'memory' | 'disk' | 'time', number>>) => ({ cpu: 1, gpu: 0, memory: 100, disk: 100, time: 10, ...r });

describe('planRun', () => {
  const plan = planRun(dag, { dataset: 7, jobs: [0, 2], jobsTotal: 3, siteTemp: 'file:///st', siteGpus: 0 });

  it('orders the tasks by their dependencies and sizes one batch job for all of them', () => {
    expect(plan.order).toEqual(['generate', 'photon', 'detector']);
    expect(plan.jobs[1]!.tasks.map((t) => [t.name, t.requirements.memory, t.requirements.gpu])).toEqual([['generate', 500, 0], ['photon', 1000, 1], ['detector', 500, 0]]);
    // the most of cpu, memory, disk; the sum of the times; no GPU where the site has none
    expect(plan.jobs[1]!.requirements).toEqual({ cpu: 1, gpu: 0, memory: 1000, disk: 10000, time: 15 });
    expect(plan.warnings).toEqual([expect.stringMatching(/asks for 1 GPU but the site offers none/)]);
    expect(groupJobs(plan.jobs)).toHaveLength(1);
  });

  it('copies each staged output to where the next task (and the user) finds it', () => {
    const [gen, photon, det] = plan.jobs[1]!.tasks;
    expect(gen!.promote).toEqual([{ local: 'gen.txt', type: 'job_temp', from: '/st/7/2/generate/gen.txt', to: '/st/results/7/2/gen.txt' }]);
    expect(photon!.promote[0]).toMatchObject({ from: '/st/7/2/photon/photons.txt', to: '/st/results/7/2/photons.txt' });
    expect(det!.promote).toEqual([{ local: 'det.txt', type: 'permanent', from: '/st/7/2/detector/det.txt', to: '/st/results/7/det_000002.txt' }]);
  });

  it('leaves outputs with a remote destination where the pilot staged them, and says so', () => {
    const config = JSON.parse(JSON.stringify(dag)) as DatasetConfig;
    config.tasks[2]!.data![1]!.remote = 'sftp://store.example.org/data/det_$(job).txt';
    const p = planRun(config, { dataset: 1, jobs: [4], jobsTotal: 5, siteTemp: 'file:///st', siteGpus: 0 });
    expect(p.jobs[0]!.tasks[2]!.promote).toEqual([]);
    expect(p.jobs[0]!.tasks[2]!.unpromoted).toEqual([{ local: 'det.txt', url: 'sftp://store.example.org/data/det_4.txt', why: expect.stringMatching(/not a local path/) }]);
    expect(p.warnings).toContainEqual(expect.stringMatching(/^task detector: output det\.txt the destination is not a local path/));
  });
});

describe('jobRequirements and the GPU policy', () => {
  it('requests GPUs only where the site has them, and refuses more than it has', () => {
    const w = new Set<string>();
    expect(jobRequirements([req({ gpu: 1, time: 5 }), req({ memory: 900, time: 7 })], 0, w)).toEqual({ cpu: 1, gpu: 0, memory: 900, disk: 100, time: 12 });
    expect(w.size).toBe(1);
    expect(jobRequirements([req({ gpu: 1 })], 2)).toMatchObject({ gpu: 1 });
    expect(() => jobRequirements([req({ gpu: 2 })], 1)).toThrow(/asks for 2 GPUs but the site offers 1/);
  });
});

describe('siteTempUrl', () => {
  it('takes a directory or a file:// URL and refuses other schemes', () => {
    expect(siteTempUrl('/data/st/')).toBe('file:///data/st');
    expect(siteTempUrl('file:///data/my%20st')).toBe('file:///data/my%20st');
    expect(() => siteTempUrl('sftp://h/x')).toThrow(/local directory or a file:\/\/ URL/);
  });
});

describe('judgeJob', () => {
  const b = (state: BatchState, extra = {}) => ({ batchId: '1', state, rawState: state.toLowerCase(), ...extra });
  it('trusts the result file first, then the batch system', () => {
    expect(judgeJob('ok', [], b(BatchState.UNKNOWN), '1')).toEqual({ state: 'ok' });
    expect(judgeJob('failed b (pilot exit 1)', [], b(BatchState.FAILED), '1')).toEqual({ state: 'failed', reason: 'failed b (pilot exit 1)' });
    expect(judgeJob(null, [], b(BatchState.QUEUED), '1')).toEqual({ state: 'queued' });
    expect(judgeJob(null, ['begin'], b(BatchState.QUEUED), '1')).toEqual({ state: 'running' });
    expect(judgeJob(null, ['begin'], b(BatchState.RUNNING), '1')).toEqual({ state: 'running' });
    expect(judgeJob(null, ['begin'], b(BatchState.FAILED, { rawState: 'TIMEOUT', exitCode: 0 }), '1')).toEqual({ state: 'lost', reason: 'the batch job ended without a result (TIMEOUT, exit 0)' });
    expect(judgeJob(null, [], b(BatchState.UNKNOWN), '1').state).toBe('lost');
    expect(judgeJob(null, [], b(BatchState.CANCELLED), '1', '2026-01-01T00:00:00Z')).toEqual({ state: 'lost', reason: 'cancelled (firn run --cancel, 2026-01-01T00:00:00Z)' });
    expect(judgeJob(null, [], undefined, null)).toEqual({ state: 'lost', reason: 'never submitted' });
  });
});
