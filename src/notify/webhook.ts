import type { BackupResult } from '../model/backup-result.js';
import { NETWORK_ERRORS, isNetworkErrorCode } from '../errors/network-errors.js';
import { Redactor, redact } from '../logging/redact.js';
import { PermanentDeliveryError } from './delivery-error.js';
import { shortText, type NotifyContext } from './run-summary.js';

/** Discord rejects a `content` longer than this. */
const DISCORD_CONTENT_LIMIT = 2000;

/**
 * The JSON body POSTed to NOTIFY_WEBHOOK_URL: the run result's fields at the top level (for
 * generic receivers), plus `text` (Slack, Mattermost, Discord's `/slack` endpoint) and `content`
 * (Discord's native endpoint) with a short human message. Redacted throughout.
 */
export interface WebhookPayload extends BackupResult {
  readonly text: string;
  readonly content: string;
  readonly event: 'backup';
  readonly host: string;
  readonly lastGoodAgeMs: number | null;
  readonly sizeAnomaly: { anomalous: boolean; reason: string; median: number | null; deviation: number | null } | null;
}

/** Build the webhook body for a run, redacted by `redactor` (default: URL credentials only). */
export function buildWebhookPayload(result: BackupResult, context: NotifyContext, redactor: Redactor = new Redactor()): WebhookPayload {
  const text = shortText(result, context);
  const j = context.sizeJudgement;
  return redactor.redactValue({
    text,
    content: text.length > DISCORD_CONTENT_LIMIT ? text.slice(0, DISCORD_CONTENT_LIMIT - 1) + '…' : text,
    event: 'backup',
    host: context.host,
    ...result,
    lastGoodAgeMs: context.lastGoodAgeMs ?? null,
    sizeAnomaly: j ? { anomalous: j.anomalous, reason: j.reason, median: j.median ?? null, deviation: j.deviation ?? null } : null,
  } as const);
}

/** One HTTP request of a notification. */
export interface HttpDelivery {
  readonly method: 'GET' | 'POST';
  readonly body?: string;
  readonly contentType?: string;
  readonly timeoutMs: number;
  /** Masks secrets in error messages (default: URL credentials only). */
  readonly redactor?: Redactor;
}

/** `https://host/path` without credentials or query, for messages. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return redact(url);
  }
}

function describeFetchError(err: unknown, url: string, timeoutMs: number, redactor: Redactor): Error {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return new Error(`no answer from ${shown(url)} within ${timeoutMs / 1000}s`, { cause: err });
  }
  const code = e?.cause?.code;
  const known = isNetworkErrorCode(code) ? NETWORK_ERRORS[code].text : undefined;
  const cause = code ? `${known ?? e?.cause?.message ?? code} (${code})` : (e?.cause?.message ?? e?.message ?? String(err));
  return new Error(redactor.redact(`cannot reach ${shown(url)}: ${cause}`), { cause: err });
}

/**
 * Send one request (one attempt; the notifier retries) with a global `fetch` bounded by
 * `AbortSignal.timeout`. Resolves on a 2xx answer. Throws an Error with a redacted message
 * otherwise; a 4xx other than 408/429 is a {@link PermanentDeliveryError} (retrying cannot help).
 */
export async function deliverHttp(url: string, request: HttpDelivery): Promise<void> {
  const redactor = request.redactor ?? new Redactor();
  const signal = AbortSignal.timeout(request.timeoutMs);
  const { bare, authorization } = splitCredentials(url);
  let res: Response;
  try {
    res = await fetch(bare, {
      method: request.method,
      headers: {
        'User-Agent': 'pgbak',
        ...(request.contentType ? { 'Content-Type': request.contentType } : {}),
        ...(authorization ? { Authorization: authorization } : {}),
      },
      ...(request.body !== undefined ? { body: request.body } : {}),
      signal,
      redirect: 'follow',
    });
  } catch (err) {
    throw describeFetchError(err, url, request.timeoutMs, redactor);
  }
  if (res.ok) {
    await res.body?.cancel().catch(() => undefined);
    return;
  }
  let answer = '';
  try {
    answer = (await res.text()).trim().slice(0, 200);
  } catch {
    /* the status is enough */
  }
  const message = redactor.redact(
    `${shown(url)} answered HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}${answer ? `: ${answer}` : ''}`,
  );
  const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
  throw permanent ? new PermanentDeliveryError(message) : new Error(message);
}

/**
 * fetch refuses a URL with `user:pass@` ("Request cannot be constructed from a URL that includes
 * credentials"): send them as HTTP Basic authentication instead, as curl does.
 */
function splitCredentials(url: string): { bare: string; authorization: string | undefined } {
  const u = new URL(url);
  if (!u.username && !u.password) return { bare: url, authorization: undefined };
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  return { bare: u.toString(), authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

/** POST the run result as JSON to a webhook (one attempt); body and errors redacted by `redactor` (default: URL credentials only). */
export async function sendWebhook(
  url: string,
  payload: WebhookPayload,
  timeoutMs: number,
  redactor: Redactor = new Redactor(),
): Promise<void> {
  await deliverHttp(url, {
    method: 'POST',
    body: redactor.redact(JSON.stringify(payload)),
    contentType: 'application/json',
    timeoutMs,
    redactor,
  });
}
