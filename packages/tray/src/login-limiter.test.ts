import { RateLimitedError, RpcErrorCode } from '@firn/core';
import { LoginLimiter } from './login-limiter';
import { bindDn, escapeDnValue } from './ldap';

describe('LoginLimiter', () => {
  it('refuses a user+address pair after N failures within the window, and forgets them after it', () => {
    let now = 1_000_000;
    const l = new LoginLimiter(3, 60, { clock: () => now });
    for (let i = 0; i < 3; i++) {
      expect(() => l.check('alice', '10.0.0.1')).not.toThrow();
      l.fail('alice', '10.0.0.1');
    }
    let err: unknown;
    try {
      l.check('alice', '10.0.0.1');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as RateLimitedError).code).toBe(RpcErrorCode.RATE_LIMITED);
    expect((err as RateLimitedError).message).toMatch(/try again in 60 s/);
    // other pairs are not affected
    expect(() => l.check('alice', '10.0.0.2')).not.toThrow();
    expect(() => l.check('bob', '10.0.0.1')).not.toThrow();
    now += 60_001;
    expect(() => l.check('alice', '10.0.0.1')).not.toThrow();
    expect(l.size).toBe(0);
  });

  it('a success clears the pair', () => {
    const l = new LoginLimiter(2, 60);
    l.fail('a', 'ip');
    l.succeed('a', 'ip');
    l.fail('a', 'ip');
    expect(() => l.check('a', 'ip')).not.toThrow();
  });

  it('bounds the number of tracked pairs, dropping the least recently failed', () => {
    const l = new LoginLimiter(1, 600, { maxKeys: 3 });
    for (const u of ['a', 'b', 'c', 'd']) l.fail(u, 'ip');
    expect(l.size).toBe(3);
    expect(() => l.check('a', 'ip')).not.toThrow(); // dropped
    expect(() => l.check('d', 'ip')).toThrow(RateLimitedError);
  });
});

describe('LDAP DN escaping', () => {
  it('escapes RFC 4514 specials so a user name cannot change the DN', () => {
    expect(escapeDnValue('alice')).toBe('alice');
    expect(escapeDnValue('a,ou=admins')).toBe('a\\,ou\\=admins');
    expect(escapeDnValue(' #x ')).toBe('\\ #x\\ ');
    expect(escapeDnValue('#x')).toBe('\\#x');
    expect(escapeDnValue('a+b"c\\d<e>f;g')).toBe('a\\+b\\"c\\\\d\\<e\\>f\\;g');
    expect(escapeDnValue('nul\u0000x')).toBe('nul\\00x');
    expect(bindDn('uid={username},ou=people,dc=firn,dc=test', 'x,dc=evil')).toBe('uid=x\\,dc\\=evil,ou=people,dc=firn,dc=test');
  });
});
