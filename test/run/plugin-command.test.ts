/**
 * The plugin extension `firn run` uses: a task's own `command` runs instead of the monitored
 * pilot invocation; tasks without one in the same submission still run the pilot; a batch
 * without commands gets the script it always got.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BatchState, LocalPlugin, type SubmitTask } from '@firn/queue';
import { waitUntil } from '../helpers/db';
import { readRecords, writeStandInPilot } from '../queue/support/harness';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-plugin-command-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const task = (id: number, extra: Partial<SubmitTask> = {}): SubmitTask => ({
  taskId: id, datasetId: 1, jobIndex: id, taskName: 'x', requirements: { cpu: 1, gpu: 0, memory: 100, disk: 100, time: 5 },
  taskDir: path.join(dir, 'batch', `task-${id}`), passkeyFile: path.join(dir, 'batch', `task-${id}`, 'passkey'), ...extra,
});

describe('SubmitTask.command', () => {
  it('runs the command of a task that has one, and the pilot for the others, in one submission', async () => {
    const records = path.join(dir, 'records');
    fs.mkdirSync(records);
    const plugin = new LocalPlugin(null, {
      grid: 'g', monUrl: 'http://mon.invalid:1', pilotCommand: writeStandInPilot(dir), environment: { FIRN_TEST_RECORD: records }, submitDir: dir,
    });
    try {
      const marker = path.join(dir, "it's done");
      const tasks = [
        task(11, { command: ['/bin/sh', '-c', 'printf "%s|" "$@" > "$0"', marker, 'two words', '$HOME', "it's"] }),
        task(12),
      ];
      fs.mkdirSync(tasks[1]!.taskDir, { recursive: true });
      fs.writeFileSync(tasks[1]!.passkeyFile, 'secret', { mode: 0o600 });
      const batch = { dir: path.join(dir, 'batch'), tasks };
      const script = await plugin.writeConfig(batch);
      const result = await plugin.submit(batch, script);
      const ids = [...result.batchIds.values()];
      await waitUntil(async () => [...(await plugin.checkJobStatus(ids)).values()].every((s) => s.state === BatchState.COMPLETED), 30_000, 'both jobs');
      // the command got its words exactly (no expansion, no splitting)
      expect(fs.readFileSync(marker, 'utf8')).toBe("two words|$HOME|it's|");
      // the other task ran the pilot with the monitored arguments
      const recs = readRecords(records);
      expect(recs.map((r) => [r.task, r.args.slice(0, 4)])).toEqual([[12, ['--mon', 'http://mon.invalid:1', '--task', '12']]]);
      expect(fs.readFileSync(path.join(tasks[0]!.taskDir, 'exit_code'), 'utf8').trim()).toBe('0');
    } finally {
      await plugin.close();
    }
  }, 60_000);

  it('leaves the script of a submission without commands as it was', async () => {
    const plugin = new LocalPlugin(null, { grid: 'g', monUrl: 'http://mon.invalid:1', pilotCommand: '/opt/firn-pilot', environment: {}, submitDir: dir });
    const script = fs.readFileSync(await plugin.writeConfig({ dir: path.join(dir, 'plain'), tasks: [task(21)] }), 'utf8');
    expect(script).not.toContain('set --');
    expect(script).toContain('\n/opt/firn-pilot --mon http://mon.invalid:1 --task "$firn_task" --passkey-file "$firn_passkey" >"$firn_dir/stdout"');
    await expect(plugin.writeConfig({ dir: path.join(dir, 'bad'), tasks: [task(22, { command: [] })] })).rejects.toThrow(/command must be a non-empty argument vector/);
    await plugin.close();
  });
});
