import { ValidationError } from './errors';

/**
 * Names people give to things that end up in batch job names, shell scripts, log lines, URLs
 * and terminals: grids (sites) and users. One rule for both, used by `grid.add`, `user.add`,
 * LDAP users created at their first login, `firn-tray user add`, the queue's `[queue] grid`
 * and the JSON Schemas (the ajv formats `firn-grid-name` and `firn-user-name`, registered in
 * schemas.ts).
 *
 * A name starts with a letter or digit and continues with letters, digits, `.`, `_`, `@` and
 * `-` (so `wisc-slurm`, `wisc_sge.2`, `j.doe`, `alice@example.org`) — printable ASCII only: no
 * NUL, no control characters, no ANSI escapes (`\u001b[31m`), no spaces, quotes, `/` or `,`
 * (an LDAP DN separator). Grids: at most 64 characters (they are tagged onto batch job names);
 * users: at most 190 (the `user.username` column).
 */
export const NAME_RULES = {
  grid: { pattern: /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, max: 64 },
  user: { pattern: /^[A-Za-z0-9][A-Za-z0-9._@-]{0,189}$/, max: 190 },
} as const;
export type NameKind = keyof typeof NAME_RULES;

/** Is `name` a valid grid / user name? */
export function isValidName(kind: NameKind, name: unknown): name is string {
  return typeof name === 'string' && NAME_RULES[kind].pattern.test(name);
}

/** Why `name` is not a valid grid / user name, or null when it is. */
export function nameProblem(kind: NameKind, name: unknown): string | null {
  if (typeof name !== 'string') return 'must be a string';
  const { max } = NAME_RULES[kind];
  if (name.length === 0 || name.length > max) return `must be 1 to ${max} characters`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'must not contain control characters (NUL, escapes, newlines)';
  if (!NAME_RULES[kind].pattern.test(name)) return 'must start with a letter or digit and contain only letters, digits, ".", "_", "@" and "-"';
  return null;
}

/** `name` if valid; otherwise -32602 naming `field`. */
export function checkName(kind: NameKind, name: unknown, field: string = kind === 'grid' ? 'name' : 'username'): string {
  const problem = nameProblem(kind, name);
  if (problem) throw new ValidationError(`invalid ${kind} name`, [{ path: field, message: problem }]);
  return name as string;
}
