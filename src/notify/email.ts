import type { BackupResult } from '../model/backup-result.js';
import { Redactor, passwordOfUrl } from '../logging/redact.js';
import { PermanentDeliveryError } from './delivery-error.js';
import { describeRun, subjectOf, type NotifyContext } from './run-summary.js';

/** Used when NOTIFY_EMAIL is set without NOTIFY_SMTP_URL: the host's own MTA, as `mail` would. */
export const DEFAULT_SMTP_URL = 'smtp://localhost:25';

/** A rendered notification e-mail. Both fields are redacted. */
export interface RenderedEmail {
  readonly subject: string;
  readonly text: string;
}

/** Subject and plain-text body of the e-mail about a run. */
export function renderEmail(result: BackupResult, context: NotifyContext): RenderedEmail {
  return { subject: subjectOf(result, context), text: describeRun(result, context) };
}

interface SmtpErrorFields {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

function describeSmtpError(err: unknown, smtpUrl: string, timeoutMs: number, redactor: Redactor): Error {
  const e = (err ?? {}) as Error & SmtpErrorFields;
  let where = redactor.redact(smtpUrl);
  try {
    const u = new URL(smtpUrl);
    where = `${u.protocol}//${u.host}`;
  } catch {
    /* keep the redacted URL */
  }
  const name = (e as Error).name;
  if (name === 'AbortError' || name === 'TimeoutError') {
    return new Error(`SMTP server ${where} did not complete the delivery within ${timeoutMs / 1000}s`, { cause: err });
  }
  const message = redactor.redact(`SMTP ${where}: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}`);
  const permanent = e.code === 'EAUTH' || (typeof e.responseCode === 'number' && e.responseCode >= 500 && e.responseCode < 600);
  return permanent ? new PermanentDeliveryError(message, { cause: err }) : new Error(message, { cause: err });
}

/** Options of one delivery attempt. */
export interface SendEmailOptions {
  /** SMTP URL (`smtp://user:pass@host:587`, `smtps://…:465`); nodemailer query options allowed. */
  readonly smtpUrl: string;
  readonly from: string;
  readonly to: readonly string[];
  /** Bound on connecting, the greeting, each socket wait and the whole delivery. */
  readonly timeoutMs: number;
  /** Masks secrets in the e-mail and in errors (default: URL credentials only); the SMTP password is added. */
  readonly redactor?: Redactor;
}

/**
 * Send one e-mail through a fresh SMTP connection (one attempt; the notifier retries).
 * The SMTP password is masked with the redactor's secrets, so neither the e-mail nor an error can show it.
 * Throws an Error whose message is redacted; a {@link PermanentDeliveryError} is not worth retrying.
 */
export async function sendEmail(email: RenderedEmail, options: SendEmailOptions): Promise<void> {
  const redactor = (options.redactor ?? new Redactor()).with(passwordOfUrl(options.smtpUrl));
  // nodemailer loads here, not with the module: a run that sends no e-mail does not pay its ~40 modules (docs/performance.md).
  const { createTransport } = await import('nodemailer');
  const transport = createTransport({
    url: options.smtpUrl,
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    dnsTimeout: options.timeoutMs,
  });
  try {
    await transport.sendMail({
      from: options.from,
      to: [...options.to],
      subject: redactor.redact(email.subject),
      text: redactor.redact(email.text),
      headers: { 'Auto-Submitted': 'auto-generated', 'X-Mailer': 'pgbak' },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (err) {
    throw describeSmtpError(err, options.smtpUrl, options.timeoutMs, redactor);
  } finally {
    transport.close();
  }
}
