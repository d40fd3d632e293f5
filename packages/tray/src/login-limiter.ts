import { RateLimitedError } from '@firn/core';

/**
 * Login limits of one firn-tray process, checked before any password is looked at.
 *
 * - **Per (user name, client address)**: at most `attempts` password checks per `windowSeconds`.
 *   An attempt is counted when it *starts*, so checks still in flight count: parallel requests
 *   and the members of a batch cannot exceed the limit (counting failures after the check let a
 *   batch of 60 logins through a limit of 10). A success clears the pair.
 * - **Per client address, across user names**: at most `attemptsPerAddress` checks per window,
 *   so that one address cannot spray a common password over many users. A success gives back its
 *   own attempt only (an attacker's own valid account cannot reset the counter).
 * - **Per HTTP request**: at most `perRequest` logins (default 1); the other members of a batch
 *   are refused without a check.
 *
 * Every refusal is a RateLimitedError (-32029) with `retry_after` seconds. Addresses are counted
 * by IPv4 address or IPv6 /64 (one host usually holds a whole /64). State is in memory, per
 * process (a restart forgets; several trays each count their own), in two maps bounded by
 * `maxKeys` entries each (least recently used dropped first): at most `maxKeys` × limit
 * timestamps, whatever names and addresses a flood uses.
 */
export interface LoginLimits {
  /** Checks per (user, address) per window ([tray] login_attempts). */
  attempts: number;
  /** Window, seconds ([tray] login_window). */
  windowSeconds: number;
  /** Checks per address across every user name per window ([tray] login_attempts_per_address). */
  attemptsPerAddress: number;
  /** Logins per HTTP request / JSON-RPC batch (default 1). */
  perRequest?: number;
  /** Entries kept per map (default 100 000). */
  maxKeys?: number;
  clock?: () => number;
}

/** An attempt that passed the limits: tell the limiter how it ended. */
export interface LoginAttempt {
  /** The password was right: the pair is cleared, the address gets this attempt back. */
  succeeded(): void;
  /** The password was never checked (e.g. the check was refused as overloaded): the attempt is given back. */
  notChecked(): void;
}

/** Key under which this request's logins are counted in RpcContext.perRequest. */
const PER_REQUEST_KEY = 'auth.login';

/** IPv4 address as is (also when IPv4-mapped), IPv6 as its /64 prefix; anything unparsable as given. */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const bare = ip.split('%')[0]!.toLowerCase();
  const halves = bare.split('::');
  if (halves.length > 2) return ip;
  const left = halves[0] ? halves[0].split(':') : [];
  const right = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return ip;
  const groups = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  if (!groups.slice(0, 4).every((g) => /^[0-9a-f]{1,4}$/.test(g))) return ip;
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/** Timestamps of recent attempts per key, least recently touched first, at most `maxKeys` keys. */
class RecentAttempts {
  private readonly map = new Map<string, number[]>();
  constructor(
    private readonly windowMs: number,
    private readonly maxKeys: number,
    private readonly clock: () => number,
  ) {}

  recent(key: string): number[] {
    const cutoff = this.clock() - this.windowMs;
    const list = (this.map.get(key) ?? []).filter((t) => t > cutoff);
    if (!list.length) this.map.delete(key);
    return list;
  }

  /** Seconds until the oldest of `list` leaves the window (at least 1). */
  retryAfter(list: number[]): number {
    return Math.max(1, Math.ceil((list[0]! + this.windowMs - this.clock()) / 1000));
  }

  record(key: string, list: number[], t: number): void {
    list.push(t);
    this.put(key, list);
  }

  /** Give one attempt (the one made at `t`) back. */
  remove(key: string, t: number): void {
    const list = this.map.get(key);
    if (!list) return;
    const i = list.indexOf(t);
    if (i >= 0) list.splice(i, 1);
    if (!list.length) this.map.delete(key);
  }

  clear(key: string): void {
    this.map.delete(key);
  }

  private put(key: string, list: number[]): void {
    this.map.delete(key);
    this.map.set(key, list); // re-insert: Map order is least recently touched first
    while (this.map.size > this.maxKeys) this.map.delete(this.map.keys().next().value as string);
  }

  get size(): number {
    return this.map.size;
  }
}

export class LoginLimiter {
  private readonly pairs: RecentAttempts;
  private readonly addresses: RecentAttempts;
  private readonly clock: () => number;
  private readonly perRequest: number;

  constructor(private readonly limits: LoginLimits) {
    for (const [name, v] of [['attempts', limits.attempts], ['windowSeconds', limits.windowSeconds], ['attemptsPerAddress', limits.attemptsPerAddress]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`login limit ${name} must be a positive integer, got ${v}`);
    }
    this.clock = limits.clock ?? (() => Date.now());
    this.perRequest = limits.perRequest ?? 1;
    const maxKeys = limits.maxKeys ?? 100_000;
    this.pairs = new RecentAttempts(limits.windowSeconds * 1000, maxKeys, this.clock);
    this.addresses = new RecentAttempts(limits.windowSeconds * 1000, maxKeys, this.clock);
  }

  /**
   * Admit one login attempt or throw RateLimitedError. Synchronous, so that the attempt is counted
   * before the caller awaits anything. `perRequest` is the HTTP request's shared map (RpcContext).
   */
  begin(username: string, ip: string, perRequest?: Map<string, number>): LoginAttempt {
    if (perRequest) {
      const n = (perRequest.get(PER_REQUEST_KEY) ?? 0) + 1;
      perRequest.set(PER_REQUEST_KEY, n);
      if (n > this.perRequest) {
        throw new RateLimitedError(`at most ${this.perRequest} auth.login per request: send each login in its own request`, { retry_after: 1 });
      }
    }
    const address = addressKey(ip);
    const pairKey = `${username}\u0000${address}`;
    const pair = this.pairs.recent(pairKey);
    if (pair.length >= this.limits.attempts) {
      const retry = this.pairs.retryAfter(pair);
      throw new RateLimitedError(`too many failed logins for this user from this address: try again in ${retry} s`, { retry_after: retry });
    }
    const byAddress = this.addresses.recent(address);
    if (byAddress.length >= this.limits.attemptsPerAddress) {
      const retry = this.addresses.retryAfter(byAddress);
      throw new RateLimitedError(`too many failed logins from this address: try again in ${retry} s`, { retry_after: retry });
    }
    const t = this.clock();
    this.pairs.record(pairKey, pair, t);
    this.addresses.record(address, byAddress, t);
    let settled = false;
    const settle = (f: () => void) => () => {
      if (settled) return;
      settled = true;
      f();
    };
    return {
      succeeded: settle(() => {
        this.pairs.clear(pairKey);
        this.addresses.remove(address, t);
      }),
      notChecked: settle(() => {
        this.pairs.remove(pairKey, t);
        this.addresses.remove(address, t);
      }),
    };
  }

  /** Entries currently tracked: (user, address) pairs and addresses (for tests and metrics). */
  get size(): { pairs: number; addresses: number } {
    return { pairs: this.pairs.size, addresses: this.addresses.size };
  }
}

/** Default of [tray] login_attempts_per_address (schemas/config.schema.json). */
export const DEFAULT_LOGIN_ATTEMPTS_PER_ADDRESS = 50;

/** The limits from the [tray] section (`login_attempts`, `login_window`, `login_attempts_per_address`). */
export function loginLimitsOf(tray: { login_attempts: number; login_window: number; login_attempts_per_address?: number }): LoginLimits {
  return {
    attempts: tray.login_attempts,
    windowSeconds: tray.login_window,
    attemptsPerAddress: tray.login_attempts_per_address ?? DEFAULT_LOGIN_ATTEMPTS_PER_ADDRESS,
  };
}
