/**
 * `transfer`: copy `parameters.from` to `parameters.to` (URLs — file://, http(s)://,
 * sftp:// — or paths relative to the scratch directory), checking md5 + sha256 after the
 * transfer and, when given, against `parameters.md5` / `sha256` / `checksum`.
 */
import { parseChecksum } from '../cache';
import { stringParam, withOwnCpu, type ModuleContext, type ModuleResult, type PilotModule } from './module';

export const transferModule: PilotModule = {
  className: 'transfer',
  parameters: {
    from: { description: 'source URL or scratch-relative path', required: true },
    to: { description: 'destination URL or scratch-relative path', required: true },
    md5: { description: 'expected md5 of the source' },
    sha256: { description: 'expected sha256 of the source' },
    checksum: { description: 'expected checksum, "sha256:HEX" / "md5:HEX"' },
  },
  async execute(ctx: ModuleContext): Promise<ModuleResult> {
    const from = stringParam(ctx, 'from', true);
    const to = stringParam(ctx, 'to', true);
    const expected = parseChecksum({
      checksum: (ctx.parameters.checksum as string | undefined) ?? null,
      md5: stringParam(ctx, 'md5') ?? null,
      sha256: stringParam(ctx, 'sha256') ?? null,
    });
    const r = await withOwnCpu(() => ctx.stager.copy(from, to, expected, ctx.scratch));
    ctx.logger.info('transferred', { from, to, size: r.value.size, sha256: r.value.sha256 });
    return { stats: { cpu_seconds: r.cpuSeconds }, maxRssBytes: 0, wallSeconds: r.wallSeconds };
  },
};
