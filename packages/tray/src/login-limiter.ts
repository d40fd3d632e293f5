import { RateLimitedError } from '@firn/core';

/**
 * Failed-login rate limit per (user name, client address): at most `attempts` failures per
 * `windowSeconds`; beyond that every login for that pair is refused with -32029 — even with
 * the right password — until old failures leave the window. A success clears the pair.
 * In memory, per firn-tray process (a restart forgets; several trays each count their own).
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  /** Bound on tracked pairs so that a flood of random names cannot grow memory without end. */
  private readonly maxKeys: number;

  constructor(
    private readonly attempts: number,
    private readonly windowSeconds: number,
    options: { maxKeys?: number; clock?: () => number } = {},
  ) {
    this.maxKeys = options.maxKeys ?? 100_000;
    if (options.clock) this.clock = options.clock;
  }

  private clock: () => number = () => Date.now();

  private key(username: string, ip: string): string {
    return `${username}\u0000${ip}`;
  }

  private recent(key: string): number[] {
    const cutoff = this.clock() - this.windowSeconds * 1000;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Throws RateLimitedError when the pair has used up its failures. */
  check(username: string, ip: string): void {
    const list = this.recent(this.key(username, ip));
    if (list.length >= this.attempts) {
      const retry = Math.max(1, Math.ceil((list[0]! + this.windowSeconds * 1000 - this.clock()) / 1000));
      throw new RateLimitedError(`too many failed logins for this user from this address: try again in ${retry} s`, { retry_after: retry });
    }
  }

  fail(username: string, ip: string): void {
    const key = this.key(username, ip);
    const list = this.recent(key);
    list.push(this.clock());
    this.failures.delete(key);
    this.failures.set(key, list); // re-insert: Map order is least recently failed first
    while (this.failures.size > this.maxKeys) {
      const oldest = this.failures.keys().next().value as string;
      this.failures.delete(oldest);
    }
  }

  succeed(username: string, ip: string): void {
    this.failures.delete(this.key(username, ip));
  }

  /** Pairs currently tracked (for tests and metrics). */
  get size(): number {
    return this.failures.size;
  }
}
