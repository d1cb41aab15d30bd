import { Redactor } from '../logging/redact.js';
import { deliverHttp } from './webhook.js';

/** The three signals of a dead-man's switch (healthchecks.io style). */
export type PingKind = 'start' | 'success' | 'fail';

/** Bodies longer than this are cut: healthchecks.io keeps only the first part anyway. */
const PING_BODY_LIMIT = 10_000;

/**
 * The URL for a ping: the bare URL on success, `<url>/start`, `<url>/fail`. A trailing slash of
 * the configured URL is dropped (no `//fail`); a query string is kept.
 */
export function pingUrlFor(base: string, kind: PingKind): string {
  const u = new URL(base);
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = kind === 'success' ? path || '/' : `${path}/${kind}`;
  return u.toString();
}

/**
 * Send one ping (one attempt; the notifier retries). `start` and `success` are GETs, accepted by
 * every such service (healthchecks.io, Cronitor, Uptime Kuma push); `fail` is a POST whose body,
 * the failure summary redacted by `options.redactor` (default: URL credentials only), healthchecks.io
 * shows in its event log.
 */
export async function sendPing(
  base: string,
  kind: PingKind,
  options: { timeoutMs: number; body?: string; redactor?: Redactor },
): Promise<void> {
  const url = pingUrlFor(base, kind);
  const redactor = options.redactor ?? new Redactor();
  if (kind === 'fail' && options.body !== undefined) {
    await deliverHttp(url, {
      method: 'POST',
      body: redactor.redact(options.body).slice(0, PING_BODY_LIMIT),
      contentType: 'text/plain; charset=utf-8',
      timeoutMs: options.timeoutMs,
      redactor,
    });
  } else {
    await deliverHttp(url, { method: 'GET', timeoutMs: options.timeoutMs, redactor });
  }
}
