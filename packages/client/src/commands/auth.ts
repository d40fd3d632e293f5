import type { Command } from 'commander';
import { RpcClient, RpcError, RpcErrorCode } from '@firn/core';
import { DEFAULT_URL, call, connection, contextOf, globals, output, print, rpcClient } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { time } from '../output';
import { loadSettings, saveSettings } from '../settings';

/** firn login | logout | whoami */
export function register(program: Command): void {
  program
    .command('login')
    .description('log in to firn-tray and keep the token (mode 0600) under the config directory')
    .argument('[url]', `server URL (default: --url, $FIRN_URL, the last one used, or ${DEFAULT_URL})`)
    .option('-u, --username <name>', 'user name (asked for when missing)')
    .option('--password-stdin', 'read the password from the first line of stdin (default: prompt, or stdin when it is not a terminal)')
    .action(async (urlArg: string | undefined, opts: { username?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const g = globals(cmd);
      const conn = connection(cmd);
      const url = urlArg ?? g.url ?? ctx.io.env.FIRN_URL ?? conn.settings.url ?? DEFAULT_URL;
      const username = opts.username ?? ctx.io.env.FIRN_USER ?? (conn.settings.url === url ? conn.settings.username : undefined) ?? (await ctx.readLine('user: ')).trim();
      if (!username) throw new CliError('a user name is needed (--username)', ExitCode.USAGE);
      const password = ctx.io.env.FIRN_PASSWORD ?? (await ctx.readSecret(`password for ${username}: `));
      if (!password) throw new CliError('a password is needed', ExitCode.USAGE);
      const client: RpcClient = rpcClient(cmd, { url, token: null });
      let res: { token: string; expires: string; username: string; role: string };
      try {
        res = await client.call('auth.login', { username, password });
      } catch (e) {
        // the generic "run firn login" hint makes no sense for the login itself
        if (e instanceof RpcError && e.code === RpcErrorCode.UNAUTHENTICATED) throw new CliError('wrong user name or password', ExitCode.AUTH);
        throw e;
      } finally {
        client.close();
      }
      const ca = g.ca ?? conn.settings.ca;
      const file = saveSettings(ctx.io.env, {
        url, token: res.token, username: res.username, expires: res.expires,
        ...(ca ? { ca } : {}), ...(g.insecure ? { insecure: true } : {}),
      });
      output(cmd, { url, username: res.username, role: res.role, expires: res.expires, settings: file }, () =>
        `logged in to ${url} as ${res.username} (${res.role}); token valid until ${time(res.expires)}`);
    });

  program
    .command('logout')
    .description('revoke the token on the server and forget it')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const settings = loadSettings(ctx.io.env);
      if (settings.token) {
        try {
          await call(cmd, 'auth.logout');
        } catch {
          /* an expired token is forgotten all the same */
        }
      }
      const { token: _t, expires: _e, ...rest } = settings;
      saveSettings(ctx.io.env, rest);
      print(cmd, 'logged out');
    });

  program
    .command('whoami')
    .description('who the saved token belongs to')
    .action(async (_opts: unknown, cmd: Command) => {
      const me = await call<{ username: string; role: string; source: string }>(cmd, 'auth.whoami');
      output(cmd, { ...me, url: connection(cmd).url }, () => `${me.username} (${me.role}, ${me.source}) at ${connection(cmd).url}`);
    });
}
