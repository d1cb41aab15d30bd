import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * Who may read the dashboard. Without DASHBOARD_TOKEN: anyone who reaches the address, which
 * must then be loopback (reached through an SSH tunnel). With it: a request that carries it as
 * `Authorization: Bearer <token>`, or the session cookie the login form sets (an HMAC of the
 * token, never the token itself; HttpOnly, SameSite=Strict).
 */

export const SESSION_COOKIE = 'pgbak_session';

/** True for 127.0.0.0/8, ::1, an IPv4-mapped 127.x and `localhost`; false for every other host and for all interfaces (undefined). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Equal strings, in a time that does not depend on where they differ (both are hashed first, so lengths do not leak either). */
export function sameSecret(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The token check of one daemon. */
export class DashboardAuth {
  private readonly session: string;

  constructor(private readonly token: string) {
    this.session = createHmac('sha256', token).update('pgbak-dashboard-session-v1').digest('base64url');
  }

  /** Does the request carry the token (header) or the session cookie? */
  allows(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return sameSecret(auth.slice(7).trim(), this.token);
    const cookie = cookieOf(req, SESSION_COOKIE);
    return cookie !== undefined && sameSecret(cookie, this.session);
  }

  /** Is `given` (the login form's field) the token? */
  accepts(given: string): boolean {
    return sameSecret(given, this.token);
  }

  /** The Set-Cookie header of a session after a good login. */
  sessionCookie(): string {
    return `${SESSION_COOKIE}=${this.session}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`;
  }
}
