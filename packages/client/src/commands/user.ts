import { Argument, Option, type Command } from 'commander';
import { ROLES } from '@firn/core';
import { call, contextOf, output } from '../context';
import { table, time } from '../output';

/** firn user add | ls | role */
export function register(program: Command): void {
  const user = program.command('user').description('users and roles (admin)');

  user
    .command('add')
    .description('create a user; the password is prompted for, or read from stdin when it is not a terminal')
    .argument('<name>', 'user name')
    .addOption(new Option('--role <role>', 'role').choices([...ROLES]).makeOptionMandatory())
    .option('--ldap', 'an LDAP user (no password here; checked by LDAP bind)')
    .action(async (name: string, opts: { role: string; ldap?: boolean }, cmd: Command) => {
      const params: Record<string, unknown> = { username: name, role: opts.role };
      if (opts.ldap) params.source = 'ldap';
      else params.password = await contextOf(cmd).readSecret(`password for ${name}: `);
      const r = await call<{ user: { username: string; role: string; source: string } }>(cmd, 'user.add', params);
      output(cmd, r.user, () => `user ${r.user.username} created (${r.user.role}, ${r.user.source})`);
    });

  user
    .command('ls')
    .description('list users')
    .action(async (_opts: unknown, cmd: Command) => {
      const { users } = await call<{ users: Array<{ username: string; role: string; source: string; disabled: boolean; created_at: number }> }>(cmd, 'user.list');
      output(cmd, users, () => table(['USER', 'ROLE', 'SOURCE', 'DISABLED', 'CREATED'], users.map((u) => [u.username, u.role, u.source, u.disabled ? 'yes' : '', time(u.created_at)])));
    });

  user
    .command('role')
    .description('change a user\'s role')
    .argument('<name>', 'user name')
    .addArgument(new Argument('<role>', 'new role').choices([...ROLES]))
    .action(async (name: string, role: string, _opts: unknown, cmd: Command) => {
      const r = await call<{ user: { username: string; role: string } }>(cmd, 'user.set_role', { username: name, role });
      output(cmd, r.user, () => `user ${r.user.username} is now ${r.user.role}`);
    });
}
