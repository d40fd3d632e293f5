import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '@firn/core';
import type { TrayGateway, WebUser } from './tray-gateway';

/**
 * Sessions: the tray token lives in an HttpOnly, SameSite=Strict cookie (Secure over https); the
 * web monitor keeps no session state of its own. CSRF: every form carries a token derived from
 * the session secret — HMAC-SHA256 keyed with the tray token (before login: with a random
 * pre-session cookie) — checked on every POST. A page can only show it if it could read the
 * HttpOnly cookie, which another site cannot; it is the same in every firn-mon process.
 */

export const TOKEN_COOKIE = 'firn_token';
export const PRE_COOKIE = 'firn_pre';
export const FLASH_COOKIE = 'firn_flash';
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{20,200}$/;

export interface Session {
  /** The tray token (never rendered, never logged). */
  token: string | null;
  user: WebUser | null;
  /** The form token for this session (null before any cookie is set). */
  csrf: string | null;
  /** The tray could not be reached to check the token. */
  trayDown: boolean;
  /** May this user use dataset controls at all (manager or admin)? */
  canControl: boolean;
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (!name || name in out) continue;
    try {
      out[name] = decodeURIComponent(value);
    } catch {
      out[name] = value;
    }
  }
  return out;
}

export interface CookieOptions {
  maxAgeSeconds?: number;
  secure: boolean;
  httpOnly?: boolean;
}

export function serializeCookie(name: string, value: string, o: CookieOptions): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, 'Path=/', 'SameSite=Strict'];
  if (o.httpOnly !== false) parts.push('HttpOnly');
  if (o.secure) parts.push('Secure');
  if (o.maxAgeSeconds !== undefined) parts.push(`Max-Age=${Math.max(0, Math.floor(o.maxAgeSeconds))}`);
  return parts.join('; ');
}

/** Append a Set-Cookie header (several may be sent). */
export function setCookie(reply: FastifyReply, cookie: string): void {
  const prev = reply.getHeader('set-cookie');
  const list = prev === undefined ? [] : Array.isArray(prev) ? prev.map(String) : [String(prev)];
  void reply.header('set-cookie', [...list, cookie]);
}

export function isSecure(req: FastifyRequest): boolean {
  return req.protocol === 'https';
}

/** The form token of a session secret. */
export function csrfFor(secret: string): string {
  return crypto.createHmac('sha256', secret).update('firn-web csrf v1').digest('base64url');
}

export function csrfMatches(expected: string | null, given: unknown): boolean {
  if (!expected || typeof given !== 'string' || given.length !== expected.length) return false;
  return crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(given));
}

export function tokenFromCookies(cookies: Record<string, string>): string | null {
  const t = cookies[TOKEN_COOKIE];
  return t && TOKEN_SHAPE.test(t) ? t : null;
}

const sessions = new WeakMap<FastifyRequest, Promise<Session>>();

/** The request's session (computed once per request). */
export function getSession(req: FastifyRequest, reply: FastifyReply, tray: TrayGateway, logger: Logger): Promise<Session> {
  let s = sessions.get(req);
  if (!s) {
    s = resolveSession(req, reply, tray, logger);
    sessions.set(req, s);
  }
  return s;
}

async function resolveSession(req: FastifyRequest, reply: FastifyReply, tray: TrayGateway, logger: Logger): Promise<Session> {
  const cookies = parseCookies(req.headers.cookie);
  const token = tokenFromCookies(cookies);
  if (token) {
    try {
      const user = await tray.whoami(token);
      if (user) return { token, user, csrf: csrfFor(`s:${token}`), trayDown: false, canControl: user.role !== 'viewer' };
      // the tray no longer knows this token (expired, revoked): forget it
      setCookie(reply, serializeCookie(TOKEN_COOKIE, '', { secure: isSecure(req), maxAgeSeconds: 0 }));
    } catch (e) {
      logger.warn('tray unreachable: showing pages without controls', { error: (e as Error).message, tray: tray.url });
      return { token, user: null, csrf: csrfFor(`s:${token}`), trayDown: true, canControl: false };
    }
  }
  const pre = cookies[PRE_COOKIE];
  return { token: null, user: null, csrf: pre && TOKEN_SHAPE.test(pre) ? csrfFor(`p:${pre}`) : null, trayDown: false, canControl: false };
}

/** Make sure an anonymous visitor has a pre-session cookie (for the login form's CSRF token); returns that token. */
export function ensurePreSession(req: FastifyRequest, reply: FastifyReply): string {
  const cookies = parseCookies(req.headers.cookie);
  let pre = cookies[PRE_COOKIE];
  if (!pre || !TOKEN_SHAPE.test(pre)) {
    pre = crypto.randomBytes(32).toString('base64url');
    setCookie(reply, serializeCookie(PRE_COOKIE, pre, { secure: isSecure(req), maxAgeSeconds: 24 * 3600 }));
  }
  return csrfFor(`p:${pre}`);
}

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
}

/** A one-time message for the next page (after a POST → redirect). */
export function setFlash(req: FastifyRequest, reply: FastifyReply, flash: Flash): void {
  const value = Buffer.from(JSON.stringify({ kind: flash.kind, text: flash.text.slice(0, 500) })).toString('base64url');
  setCookie(reply, serializeCookie(FLASH_COOKIE, value, { secure: isSecure(req), maxAgeSeconds: 120 }));
}

/** Read and clear the flash message. */
export function takeFlash(req: FastifyRequest, reply: FastifyReply): Flash | null {
  const v = parseCookies(req.headers.cookie)[FLASH_COOKIE];
  if (!v) return null;
  setCookie(reply, serializeCookie(FLASH_COOKIE, '', { secure: isSecure(req), maxAgeSeconds: 0 }));
  try {
    const f = JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as { kind?: unknown; text?: unknown };
    if ((f.kind === 'ok' || f.kind === 'error') && typeof f.text === 'string') return { kind: f.kind, text: f.text };
  } catch {
    /* a mangled cookie is dropped */
  }
  return null;
}
