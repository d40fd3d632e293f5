import { sha256Hex } from '@firn/core';
import { passkeyDigest, passkeyValid, stalePasskeyError } from './passkey';

describe('passkey checks', () => {
  const passkey = 'correct horse battery staple';
  const row = { passkey_hash: sha256Hex(passkey), status: 'PROCESSING' };

  test('the right passkey in an allowed status passes', () => {
    expect(passkeyValid(row, passkeyDigest(passkey), ['PROCESSING'])).toBe(true);
    expect(passkeyValid({ ...row, passkey_hash: row.passkey_hash.toUpperCase() }, passkeyDigest(passkey), ['PROCESSING'])).toBe(true);
  });

  test('wrong passkey, wrong status, unknown task, cleared or malformed hash all fail', () => {
    expect(passkeyValid(row, passkeyDigest('wrong'), ['PROCESSING'])).toBe(false);
    expect(passkeyValid(row, passkeyDigest(passkey), ['QUEUED'])).toBe(false);
    expect(passkeyValid(undefined, passkeyDigest(passkey), ['PROCESSING'])).toBe(false);
    expect(passkeyValid({ ...row, passkey_hash: null }, passkeyDigest(passkey), ['PROCESSING'])).toBe(false);
    expect(passkeyValid({ ...row, passkey_hash: '' }, passkeyDigest(''), ['PROCESSING'])).toBe(false);
    expect(passkeyValid({ ...row, passkey_hash: 'zz' }, passkeyDigest(passkey), ['PROCESSING'])).toBe(false);
  });

  test('the refusal is always the same -32009 error without data', () => {
    const a = stalePasskeyError();
    const b = stalePasskeyError();
    expect([a.code, a.message, a.data]).toEqual([-32009, 'invalid or stale passkey', undefined]);
    expect([b.code, b.message, b.data]).toEqual([a.code, a.message, a.data]);
  });
});
