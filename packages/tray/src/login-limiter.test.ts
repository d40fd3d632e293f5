import { RateLimitedError, RpcErrorCode } from '@firn/core';
import { LoginLimiter, addressKey } from './login-limiter';
import { bindDn, escapeDnValue } from './ldap';

const limits = { attempts: 3, windowSeconds: 60, attemptsPerAddress: 100 };

function refusal(f: () => unknown): RateLimitedError {
  try {
    f();
  } catch (e) {
    if (e instanceof RateLimitedError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('LoginLimiter', () => {
  it('counts attempts when they start: in-flight checks count, so parallel logins cannot pass the limit', () => {
    let now = 1_000_000;
    const l = new LoginLimiter({ ...limits, clock: () => now });
    for (let i = 0; i < 3; i++) l.begin('alice', '10.0.0.1'); // three checks in flight, none settled
    const err = refusal(() => l.begin('alice', '10.0.0.1'));
    expect(err.code).toBe(RpcErrorCode.RATE_LIMITED);
    expect(err.message).toMatch(/try again in 60 s/);
    expect(err.data).toEqual({ retry_after: 60 });
    // other pairs are not affected
    expect(() => l.begin('alice', '10.0.0.2')).not.toThrow();
    expect(() => l.begin('bob', '10.0.0.1')).not.toThrow();
    now += 60_001;
    expect(() => l.begin('alice', '10.0.0.1')).not.toThrow();
  });

  it('a success clears the pair; an attempt never checked is given back', () => {
    const l = new LoginLimiter({ ...limits, attempts: 2 });
    l.begin('a', 'ip');
    l.begin('a', 'ip').succeeded();
    l.begin('a', 'ip').notChecked();
    l.begin('a', 'ip');
    l.begin('a', 'ip');
    expect(() => l.begin('a', 'ip')).toThrow(RateLimitedError);
  });

  it('limits one address across user names; a success gives back only its own attempt', () => {
    const l = new LoginLimiter({ ...limits, attemptsPerAddress: 5 });
    for (let i = 0; i < 4; i++) l.begin(`user${i}`, '10.0.0.9');
    l.begin('mine', '10.0.0.9').succeeded(); // the attacker's own account: does not reset the count
    l.begin('user4', '10.0.0.9');
    expect(refusal(() => l.begin('user5', '10.0.0.9')).message).toMatch(/from this address/);
    expect(() => l.begin('user5', '10.0.0.10')).not.toThrow();
  });

  it('counts IPv6 clients by /64 and IPv4-mapped addresses as IPv4', () => {
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::7')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:0001:0002:ffff::1%eth0')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('not:an::address::')).toBe('not:an::address::');
    const l = new LoginLimiter({ ...limits, attempts: 1 });
    l.begin('a', '2001:db8:1:2::1');
    expect(() => l.begin('a', '2001:db8:1:2::ffff')).toThrow(RateLimitedError);
    expect(() => l.begin('a', '2001:db8:1:3::1')).not.toThrow();
  });

  it('admits one login per request (batch): the others are refused before any check', () => {
    const l = new LoginLimiter(limits);
    const request = new Map<string, number>();
    l.begin('a', 'ip', request);
    expect(refusal(() => l.begin('b', 'ip', request)).message).toMatch(/at most 1 auth.login per request/);
    expect(l.size.pairs).toBe(1); // the refused member was not counted against b
    expect(() => l.begin('b', 'ip', new Map())).not.toThrow();
  });

  it('bounds the number of tracked pairs and addresses, dropping the least recently used', () => {
    const l = new LoginLimiter({ attempts: 1, windowSeconds: 600, attemptsPerAddress: 1000, maxKeys: 3 });
    for (const u of ['a', 'b', 'c', 'd']) l.begin(u, 'ip');
    for (let i = 0; i < 10; i++) l.begin('x', `10.0.0.${i}`);
    expect(l.size).toEqual({ pairs: 3, addresses: 3 });
    expect(() => l.begin('x', '10.0.0.9')).toThrow(RateLimitedError); // recently used: still counted
    expect(() => l.begin('a', 'ip')).not.toThrow(); // dropped (the price of bounded memory)
  });

  it('refuses nonsensical limits', () => {
    expect(() => new LoginLimiter({ ...limits, attempts: 0 })).toThrow(/attempts must be a positive integer/);
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
