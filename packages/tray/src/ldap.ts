import fs from 'node:fs';
import { Client, InvalidCredentialsError } from 'ldapts';
import { FirnError, coerceError, type Logger } from '@firn/core';

/** Escape a value for use inside a DN attribute (RFC 4514 §2.4). */
export function escapeDnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const code = c.charCodeAt(0);
    if (code === 0) out += '\\00';
    else if (',+"\\<>;='.includes(c)) out += `\\${c}`;
    else if ((i === 0 && (c === ' ' || c === '#')) || (i === value.length - 1 && c === ' ')) out += `\\${c}`;
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return out;
}

/** The bind DN for a user: `{username}` in the template replaced by the escaped name. */
export function bindDn(template: string, username: string): string {
  return template.split('{username}').join(escapeDnValue(username));
}

export interface LdapOptions {
  url: string;
  bindDnTemplate: string;
  /** CA file for ldaps:// servers with a private CA. */
  caFile?: string;
  timeoutMs?: number;
  logger: Logger;
}

/** The LDAP server could not be asked (down, TLS failure): not the same as a wrong password. */
export class LdapUnavailableError extends FirnError {}

/** Checks a user name and password by binding as the user (ldapts); never stores the password. */
export class LdapAuthenticator {
  private readonly ca?: Buffer;
  constructor(private readonly options: LdapOptions) {
    if (options.caFile) this.ca = fs.readFileSync(options.caFile);
  }

  /** true when the bind succeeds, false for invalid credentials; LdapUnavailableError otherwise. */
  async verify(username: string, password: string): Promise<boolean> {
    // An empty password is an *unauthenticated* bind, which LDAP servers accept: never allowed.
    if (!password || !username) return false;
    const client = new Client({
      url: this.options.url,
      timeout: this.options.timeoutMs ?? 10_000,
      connectTimeout: this.options.timeoutMs ?? 10_000,
      ...(this.ca ? { tlsOptions: { ca: this.ca } } : {}),
    });
    try {
      await client.bind(bindDn(this.options.bindDnTemplate, username), password);
      return true;
    } catch (e) {
      if (e instanceof InvalidCredentialsError) return false;
      const err = coerceError(e);
      // "no such object" and DN syntax errors are a wrong user name, not an outage
      const code = (e as { code?: number }).code;
      if (code === 32 || code === 34 || code === 49) return false;
      this.options.logger.warn('LDAP bind failed', { url: this.options.url, error: err.message });
      throw new LdapUnavailableError('LDAP server unavailable: try again later');
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
}
