import crypto from 'node:crypto';
import { RpcClient, RpcError, RpcErrorCode, type Logger } from '@firn/core';

/** Who a tray token belongs to (`auth.whoami`). */
export interface WebUser {
  username: string;
  role: 'admin' | 'manager' | 'viewer';
}

export interface TrayGatewayOptions {
  url: string;
  /** PEM CA to trust for an https tray with a self-signed certificate. */
  ca?: string | Buffer;
  timeoutMs?: number;
  /** How long an `auth.whoami` answer is reused (ms). */
  whoamiTtlMs?: number;
  logger: Logger;
}

const ROLES = ['viewer', 'manager', 'admin'];

/**
 * The web monitor's only way to change anything: JSON-RPC calls to firn-tray carrying the
 * user's own token. `auth.whoami` answers are cached briefly (keyed by the token's sha256, never
 * the token) so that page views do not each cost a round trip.
 */
export class TrayGateway {
  private readonly whoamiCache = new Map<string, { user: WebUser | null; until: number }>();
  private readonly ttl: number;

  constructor(private readonly options: TrayGatewayOptions) {
    this.ttl = options.whoamiTtlMs ?? 30_000;
  }

  get url(): string {
    return this.options.url;
  }

  /** Call a tray method as the holder of `token` (or anonymously); throws RpcError / RpcTransportError. */
  async call<T = unknown>(method: string, params: Record<string, unknown>, token: string | null): Promise<T> {
    const client = new RpcClient(this.options.url, { token, ca: this.options.ca, timeoutMs: this.options.timeoutMs ?? 30_000 });
    try {
      return await client.call<T>(method, params);
    } finally {
      client.close();
    }
  }

  async login(username: string, password: string): Promise<{ token: string; expires: string; username: string; role: string }> {
    return this.call('auth.login', { username, password }, null);
  }

  async logout(token: string): Promise<void> {
    this.forget(token);
    await this.call('auth.logout', {}, token);
  }

  /**
   * The token's user; null when the tray says the token is invalid or expired. A tray that cannot
   * be reached throws (the caller shows the page without controls).
   */
  async whoami(token: string): Promise<WebUser | null> {
    const key = crypto.createHash('sha256').update(token).digest('hex');
    const hit = this.whoamiCache.get(key);
    const t = Date.now();
    if (hit && hit.until > t) return hit.user;
    let user: WebUser | null;
    try {
      const r = await this.call<{ username: string; role: string }>('auth.whoami', {}, token);
      user = ROLES.includes(r.role) ? { username: r.username, role: r.role as WebUser['role'] } : null;
    } catch (e) {
      if (e instanceof RpcError && e.code === RpcErrorCode.UNAUTHENTICATED) user = null;
      else throw e;
    }
    if (this.whoamiCache.size > 10_000) this.whoamiCache.clear();
    this.whoamiCache.set(key, { user, until: t + this.ttl });
    return user;
  }

  /** Drop a token's cached identity (logout, or the tray refused it). */
  forget(token: string): void {
    this.whoamiCache.delete(crypto.createHash('sha256').update(token).digest('hex'));
  }
}
