import crypto from 'node:crypto';
import { promisify } from 'node:util';
import { randomSecret, sha256Hex } from './checksums';
import { now, type DbOrTrx } from './db';
import { checkName } from './names';
import { ConflictError, ForbiddenError, NotFoundError, RateLimitedError, UnauthenticatedError, ValidationError } from './errors';

/**
 * Users, passwords, tokens and roles — shared by firn-tray (which issues tokens) and the web
 * monitor (which checks them). Passwords are scrypt hashes; tokens are 32 random bytes
 * (base64url) of which only the sha256 is stored, with an expiry.
 */

/** Roles from least to most powerful: admin ⊃ manager ⊃ viewer. */
export const ROLES = ['viewer', 'manager', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

/** 0 for viewer, 1 for manager, 2 for admin (-1 for anything else). */
export function roleRank(role: string): number {
  return (ROLES as readonly string[]).indexOf(role);
}

/** Does `role` include the rights of `required`? */
export function hasRole(role: string, required: Role): boolean {
  const r = roleRank(role);
  return r >= 0 && r >= roleRank(required);
}

export interface AuthUser {
  id: number;
  username: string;
  role: Role;
  source: 'local' | 'ldap';
}

/** Throws ForbiddenError unless the user holds at least `required`. */
export function requireRole(user: AuthUser, required: Role, what = 'this action'): void {
  if (!hasRole(user.role, required)) {
    throw new ForbiddenError(`${what} needs role ${required}; user ${user.username} is ${user.role}`);
  }
}

/** `user:<name>` — the actor written to history for a person's action. */
export function actorOf(user: Pick<AuthUser, 'username'>): string {
  return `user:${user.username}`;
}

// ---------------------------------------------------------------- passwords

const rawScrypt = promisify(crypto.scrypt) as (password: crypto.BinaryLike, salt: crypto.BinaryLike, keylen: number, options: crypto.ScryptOptions) => Promise<Buffer>;

/**
 * Bound on scrypt work in this process. One check costs ~16 MB and tens of milliseconds of a
 * libuv thread (≈70 ms on a slow shared machine); without a bound, 200 logins sent at once queue
 * 200 checks ahead of a real user's (13 s measured). At most `SCRYPT_SLOTS` run at once and at
 * most `SCRYPT_QUEUE` more wait their turn (first come, first served), so a check waits at most
 * SCRYPT_QUEUE / SCRYPT_SLOTS + 1 check times (≈ 5 × 70 ms); beyond that it is refused at once
 * with -32029 instead of being queued. Two slots leave the other libuv threads (4 by default)
 * to file and DNS work.
 */
export const SCRYPT_SLOTS = 2;
export const SCRYPT_QUEUE = 8;

class WorkSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(
    private readonly slots: number,
    private readonly queue: number,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running < this.slots) this.running++;
    else if (this.waiting.length < this.queue) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else throw new RateLimitedError('too many password checks in progress: try again in a moment', { retry_after: 1 });
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on; `running` is unchanged
      else this.running--;
    }
  }

  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }
}

const scryptSlots = new WorkSlots(SCRYPT_SLOTS, SCRYPT_QUEUE);

/** scrypt checks running and waiting in this process (for tests and metrics). */
export function passwordWorkLoad(): { running: number; waiting: number } {
  return scryptSlots.load;
}

const scrypt = (password: crypto.BinaryLike, salt: crypto.BinaryLike, keylen: number, options: crypto.ScryptOptions): Promise<Buffer> =>
  scryptSlots.run(() => rawScrypt(password, salt, keylen, options));

/** scrypt cost parameters (N = 2^14, r = 8, p = 1: ~16 MB, tens of milliseconds). */
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 64 };
export const MIN_PASSWORD_LENGTH = 8;
/** Longest password accepted (scrypt takes any length; this bounds the work per login). */
export const MAX_PASSWORD_LENGTH = 1024;

/** `scrypt$N$r$p$<salt base64>$<hash base64>`. Throws RateLimitedError (-32029) when too many checks wait (see SCRYPT_QUEUE). */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password.normalize('NFC'), salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/**
 * Check a password against a stored hash in constant time; false for malformed hashes (after the
 * same work as a real check, so an unknown user costs what a known one does). Throws
 * RateLimitedError (-32029) when too many checks already wait (see SCRYPT_QUEUE).
 */
export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  const parts = (stored ?? '').split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') {
    // same work as a real check, so that timing does not tell which users exist
    await hashPassword(password);
    return false;
  }
  const [, n, r, p, saltB64, hashB64] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hashB64, 'base64');
  const N = Number(n), R = Number(r), P = Number(p);
  if (!Number.isInteger(N) || !Number.isInteger(R) || !Number.isInteger(P) || expected.length === 0 || N > 1 << 20) return false;
  const actual = await scrypt(password.normalize('NFC'), Buffer.from(saltB64, 'base64'), expected.length, { N, r: R, p: P, maxmem: 256 * 1024 * 1024 });
  return crypto.timingSafeEqual(actual, expected);
}

/** A password a person may set: at least 8 characters, at most 1024. Throws ValidationError naming `field`. */
export function checkPasswordPolicy(password: unknown, field = 'password'): string {
  if (typeof password !== 'string') throw new ValidationError('invalid password', [{ path: field, message: 'must be a string' }]);
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new ValidationError('invalid password', [{ path: field, message: `must be at least ${MIN_PASSWORD_LENGTH} characters, got ${password.length}` }]);
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new ValidationError('invalid password', [{ path: field, message: `must be at most ${MAX_PASSWORD_LENGTH} characters` }]);
  }
  return password;
}

// ---------------------------------------------------------------- users

export interface UserRow {
  id: number;
  username: string;
  password_hash: string | null;
  role: string;
  source: string;
  disabled: boolean | number;
  created_at: number;
}

/** The public view of a user (never the hash). */
export interface UserInfo {
  id: number;
  username: string;
  role: Role;
  source: 'local' | 'ldap';
  disabled: boolean;
  created_at: number;
}

export function userInfo(row: UserRow): UserInfo {
  return {
    id: Number(row.id),
    username: row.username,
    role: row.role as Role,
    source: row.source === 'ldap' ? 'ldap' : 'local',
    disabled: Boolean(row.disabled),
    created_at: Number(row.created_at),
  };
}

export async function findUser(db: DbOrTrx, username: string): Promise<UserRow | undefined> {
  return (await db('user').where({ username }).first()) as UserRow | undefined;
}

export async function listUsers(db: DbOrTrx): Promise<UserInfo[]> {
  const rows = (await db('user').select('*').orderBy('username')) as UserRow[];
  return rows.map(userInfo);
}

/** Usernames of new users (user.add, LDAP users at first login, the CLI): the one name rule of names.ts. */
export function checkUsername(username: unknown, field = 'username'): string {
  return checkName('user', username, field);
}

/**
 * Create a user. Local users need a password (policy checked, stored as scrypt); LDAP users
 * have none. ConflictError when the name is taken.
 */
export async function createUser(
  db: DbOrTrx,
  input: { username: string; role: Role; password?: string | null; source?: 'local' | 'ldap' },
): Promise<UserInfo> {
  const username = checkUsername(input.username);
  if (!isRole(input.role)) throw new ValidationError('invalid role', [{ path: 'role', message: `must be one of ${ROLES.join(', ')}` }]);
  const source = input.source ?? 'local';
  const password_hash = source === 'local' ? await hashPassword(checkPasswordPolicy(input.password)) : null;
  if (await findUser(db, username)) throw new ConflictError(`user ${JSON.stringify(username)} already exists`);
  const row = { username, password_hash, role: input.role, source, disabled: false, created_at: now() };
  try {
    await db('user').insert(row);
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (code === 'ER_DUP_ENTRY' || code.startsWith('SQLITE_CONSTRAINT')) throw new ConflictError(`user ${JSON.stringify(username)} already exists`);
    throw e;
  }
  const created = await findUser(db, username);
  return userInfo(created!);
}

export async function setUserRole(db: DbOrTrx, username: string, role: Role): Promise<UserInfo> {
  if (!isRole(role)) throw new ValidationError('invalid role', [{ path: 'role', message: `must be one of ${ROLES.join(', ')}` }]);
  const n = await db('user').where({ username }).update({ role });
  if (n === 0) throw new NotFoundError(`no user ${JSON.stringify(username)}`);
  return userInfo((await findUser(db, username))!);
}

export async function setUserPassword(db: DbOrTrx, username: string, password: string): Promise<void> {
  const hash = await hashPassword(checkPasswordPolicy(password));
  const n = await db('user').where({ username, source: 'local' }).update({ password_hash: hash });
  if (n === 0) throw new NotFoundError(`no local user ${JSON.stringify(username)}`);
  // a new password ends every session
  const u = await findUser(db, username);
  if (u) await db('token').where({ user_id: u.id }).delete();
}

// ---------------------------------------------------------------- tokens

export interface IssuedToken {
  /** The bearer token: shown once, never stored. */
  token: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

/** Issue a token for a user, valid `ttlSeconds`; only its sha256 is stored. */
export async function issueToken(db: DbOrTrx, userId: number, ttlSeconds: number): Promise<IssuedToken> {
  const token = randomSecret(32);
  const t = now();
  const expiresAt = t + ttlSeconds * 1000;
  await db('token').insert({ user_id: userId, token_hash: sha256Hex(token), expires_at: expiresAt, created_at: t, last_used_at: t });
  return { token, expiresAt };
}

/** A bearer token looks like 43 base64url characters; anything else is rejected before touching the database. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{20,200}$/;

/**
 * The user a token belongs to, or null when it is missing, unknown, expired or the user is
 * disabled. Marks the token used (at most once a minute).
 */
export async function verifyToken(db: DbOrTrx, token: string | null | undefined): Promise<AuthUser | null> {
  if (!token || !TOKEN_SHAPE.test(token)) return null;
  const row = (await db('token as t')
    .join('user as u', 'u.id', 't.user_id')
    .select('t.id as token_id', 't.expires_at', 't.last_used_at', 'u.id', 'u.username', 'u.role', 'u.source', 'u.disabled')
    .where('t.token_hash', sha256Hex(token))
    .first()) as
    | { token_id: number; expires_at: number; last_used_at: number | null; id: number; username: string; role: string; source: string; disabled: number | boolean }
    | undefined;
  const t = now();
  if (!row || Number(row.expires_at) <= t || Boolean(row.disabled) || !isRole(row.role)) return null;
  if (row.last_used_at === null || t - Number(row.last_used_at) > 60_000) {
    await db('token').where({ id: row.token_id }).update({ last_used_at: t });
  }
  return { id: Number(row.id), username: row.username, role: row.role, source: row.source === 'ldap' ? 'ldap' : 'local' };
}

/** verifyToken that throws UnauthenticatedError (-32001) instead of returning null. */
export async function authenticate(db: DbOrTrx, token: string | null | undefined): Promise<AuthUser> {
  if (!token) throw new UnauthenticatedError('authentication required: log in and send Authorization: Bearer <token>');
  const user = await verifyToken(db, token);
  if (!user) throw new UnauthenticatedError('invalid or expired token: log in again');
  return user;
}

/** Forget one token (logout). Returns whether it existed. */
export async function revokeToken(db: DbOrTrx, token: string): Promise<boolean> {
  if (!TOKEN_SHAPE.test(token)) return false;
  return (await db('token').where({ token_hash: sha256Hex(token) }).delete()) > 0;
}

/** Delete expired tokens; returns how many. */
export async function purgeExpiredTokens(db: DbOrTrx): Promise<number> {
  return db('token').where('expires_at', '<=', now()).delete();
}
