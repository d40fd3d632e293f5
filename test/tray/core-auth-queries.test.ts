import {
  ConflictError, ForbiddenError, JobStatus, NotFoundError, TASK_STATUSES, UnauthenticatedError, ValidationError,
  actorOf, authenticate, createUser, datasetStatus, deriveJobStatus, hasRole, hashPassword, issueToken, jobStatusCounts,
  listJobs, purgeExpiredTokens, refreshJobStatuses, requireRole, revokeToken, roleRank, setUserPassword, setUserRole,
  sha256Hex, statsFromSums, taskStatusCounts, verifyPassword, verifyToken,
  type Db, type TaskStatus,
} from '@firn/core';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';

describe('passwords and roles (core/auth.ts)', () => {
  it('hashes with scrypt and a random salt; verifies in constant time; rejects malformed hashes', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horsE', a)).toBe(false);
    expect(await verifyPassword('x', null)).toBe(false);
    expect(await verifyPassword('x', 'md5$abc')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$99999999$8$1$AA==$AA==')).toBe(false);
  });

  it('orders roles admin ⊃ manager ⊃ viewer', () => {
    expect(['viewer', 'manager', 'admin'].map(roleRank)).toEqual([0, 1, 2]);
    expect(hasRole('admin', 'manager')).toBe(true);
    expect(hasRole('manager', 'manager')).toBe(true);
    expect(hasRole('viewer', 'manager')).toBe(false);
    expect(hasRole('root', 'viewer')).toBe(false);
    expect(() => requireRole({ id: 1, username: 'v', role: 'viewer', source: 'local' }, 'manager', 'dataset.submit')).toThrow(ForbiddenError);
    expect(actorOf({ username: 'alice' })).toBe('user:alice');
  });
});

describe.each(DB_KINDS)('users, tokens and dataset queries on %s', (kind) => {
  let t: TestDb;
  let db: Db;
  beforeAll(async () => {
    t = await createTestDb(kind);
    db = t.db;
  });
  afterAll(async () => t?.drop());

  it('creates users (password policy, conflicts), changes roles and passwords', async () => {
    const u = await createUser(db, { username: 'alice', role: 'manager', password: 'alice-password' });
    expect(u).toMatchObject({ username: 'alice', role: 'manager', source: 'local', disabled: false });
    await expect(createUser(db, { username: 'alice', role: 'viewer', password: 'alice-password' })).rejects.toThrow(ConflictError);
    await expect(createUser(db, { username: 'bob', role: 'viewer', password: 'short' })).rejects.toThrow(/at least 8 characters, got 5/);
    await expect(createUser(db, { username: 'bob', role: 'king' as never, password: 'long-enough' })).rejects.toThrow(ValidationError);
    await expect(createUser(db, { username: 'bad\nname', role: 'viewer', password: 'long-enough' })).rejects.toThrow(/control characters/);
    const l = await createUser(db, { username: 'ldapuser', role: 'viewer', source: 'ldap' });
    expect((await db('user').where({ id: l.id }).first()).password_hash).toBeNull();
    expect((await setUserRole(db, 'alice', 'admin')).role).toBe('admin');
    await expect(setUserRole(db, 'nobody', 'admin')).rejects.toThrow(NotFoundError);
    const tok = await issueToken(db, u.id, 3600);
    await setUserPassword(db, 'alice', 'new-alice-password');
    expect(await verifyToken(db, tok.token)).toBeNull(); // a new password ends sessions
    const row = await db('user').where({ username: 'alice' }).first();
    expect(await verifyPassword('new-alice-password', row.password_hash)).toBe(true);
  });

  it('issues tokens stored as sha256, with expiry; verifies, revokes and purges them', async () => {
    const u = (await db('user').where({ username: 'alice' }).first()) as { id: number };
    const tok = await issueToken(db, u.id, 60);
    expect(tok.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await db('token').where({ token_hash: sha256Hex(tok.token) }).first();
    expect(row).toBeTruthy();
    expect(Number(row.expires_at)).toBe(tok.expiresAt);
    expect(await verifyToken(db, tok.token)).toEqual({ id: u.id, username: 'alice', role: 'admin', source: 'local' });
    expect(await authenticate(db, tok.token)).toMatchObject({ username: 'alice' });
    await expect(authenticate(db, null)).rejects.toThrow(UnauthenticatedError);
    await expect(authenticate(db, 'not a token')).rejects.toThrow(/invalid or expired/);
    await db('user').where({ id: u.id }).update({ disabled: true });
    expect(await verifyToken(db, tok.token)).toBeNull();
    await db('user').where({ id: u.id }).update({ disabled: false });
    expect(await revokeToken(db, tok.token)).toBe(true);
    expect(await verifyToken(db, tok.token)).toBeNull();
    const old = await issueToken(db, u.id, 60);
    await db('token').where({ token_hash: sha256Hex(old.token) }).update({ expires_at: Date.now() - 1 });
    expect(await verifyToken(db, old.token)).toBeNull();
    expect(await purgeExpiredTokens(db)).toBeGreaterThanOrEqual(1);
    expect(await db('token').where({ token_hash: sha256Hex(old.token) })).toHaveLength(0);
  });

  it('derives job status in SQL exactly as deriveJobStatus does, and stores it with refreshJobStatuses', async () => {
    const now = Date.now();
    const dsId = ((await db('dataset').insert({ status: 'PROCESSING', tasks_per_job: 2, config: '{}', config_hash: 'x', created_at: now, updated_at: now })) as number[])[0]!;
    const rels: number[] = [];
    for (const i of [0, 1]) rels.push(((await db('task_rel').insert({ dataset_id: dsId, task_index: i, name: `t${i}`, requirements: '{}' })) as number[])[0]!);
    // every pair of task statuses: one job each
    const pairs: Array<[TaskStatus, TaskStatus]> = [];
    for (const a of TASK_STATUSES) for (const b of TASK_STATUSES) pairs.push([a, b]);
    const jobRows = pairs.map((_, i) => ({ dataset_id: dsId, job_index: i, status: 'PROCESSING', status_changed_at: now }));
    for (let i = 0; i < jobRows.length; i += 100) await db('job').insert(jobRows.slice(i, i + 100));
    const jobs = (await db('job').select('id', 'job_index').where({ dataset_id: dsId }).orderBy('job_index')) as Array<{ id: number; job_index: number }>;
    const taskRows = jobs.flatMap((j) => pairs[j.job_index]!.map((s, k) => ({ dataset_id: dsId, job_id: j.id, task_rel_id: rels[k], task_index: k, name: `t${k}`, status: s, status_changed_at: now })));
    for (let i = 0; i < taskRows.length; i += 100) await db('task').insert(taskRows.slice(i, i + 100));

    const expected: Record<string, number> = { PROCESSING: 0, OK: 0, FAILED: 0, SUSPENDED: 0 };
    for (const p of pairs) expected[deriveJobStatus(p)]! += 1;
    expect(await jobStatusCounts(db, dsId)).toEqual(expected);
    const tasks = await taskStatusCounts(db, dsId);
    expect(Object.values(tasks).reduce((a, b) => a + b, 0)).toBe(pairs.length * 2);
    expect(tasks.OK).toBe(2 * TASK_STATUSES.length);
    const listed = await listJobs(db, dsId, { limit: 10000 });
    expect(listed).toHaveLength(pairs.length);
    for (const j of listed) expect([j.job_index, j.status]).toEqual([j.job_index, deriveJobStatus(pairs[j.job_index]!)]);
    const failed = await listJobs(db, dsId, { status: JobStatus.FAILED, limit: 10000 });
    expect(failed.map((j) => j.job_index)).toEqual(listed.filter((j) => j.status === 'FAILED').map((j) => j.job_index));
    const status = await datasetStatus(db, dsId);
    expect(status.status).toBe('PROCESSING');

    const changed = await refreshJobStatuses(db, jobs.map((j) => j.id));
    expect(changed).toBe(pairs.length - expected.PROCESSING!);
    const stored = (await db('job').select('job_index', 'status').where({ dataset_id: dsId })) as Array<{ job_index: number; status: string }>;
    for (const r of stored) expect(r.status).toBe(deriveJobStatus(pairs[r.job_index]!));
    expect(await refreshJobStatuses(db, jobs.map((j) => j.id))).toBe(0);
  });

  it('statistics: mean and population stddev from n, sum and sum of squares', () => {
    expect(statsFromSums({ n: 4, sum: 10, sum_sq: 30, min: 1, max: 4 })).toEqual({ n: 4, sum: 10, mean: 2.5, stddev: Math.sqrt(1.25), min: 1, max: 4 });
    expect(statsFromSums({ n: 0, sum: 0, sum_sq: 0, min: 0, max: 0 })).toMatchObject({ mean: 0, stddev: 0 });
    // rounding that would make the variance slightly negative is clamped
    expect(statsFromSums({ n: 3, sum: 0.3, sum_sq: 0.03 - 1e-18, min: 0.1, max: 0.1 }).stddev).toBe(0);
  });
});
