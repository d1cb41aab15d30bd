import { setTimeout as sleep } from 'node:timers/promises';
import type { BackupResult } from '../model/backup-result.js';
import { messageOf } from '../errors/error-message.js';
import { Redactor, passwordOfUrl } from '../logging/redact.js';
import type { NotifySettings } from '../config/job-sections.js';
import type { Logger } from '../logging/logger.js';
import { DEFAULT_SMTP_URL, renderEmail, sendEmail } from './email.js';
import { sendPing } from './ping.js';
import { isFailure, shortText, type NotifyContext } from './run-summary.js';
import { buildWebhookPayload, sendWebhook } from './webhook.js';

export type { NotifyContext } from './run-summary.js';
export type { NotifySettings } from '../config/job-sections.js';

/** How hard to try: `attempts` in all, waiting `delaysMs[i]` after failed attempt i+1, each bounded by `timeoutMs`. */
export interface RetryPolicy {
  readonly attempts: number;
  readonly delaysMs: readonly number[];
  readonly timeoutMs: number;
}

/** 3 attempts, 0.5 s then 2 s apart, 10 s each: at most about 33 s per channel, channels in parallel. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, delaysMs: [500, 2000], timeoutMs: 10_000 };

/** A way a run is reported. */
export type NotifyChannel = 'email' | 'webhook' | 'ping';

/** What happened to one channel's notification. */
export interface NotifyOutcome {
  readonly channel: NotifyChannel;
  readonly ok: boolean;
  /** Redacted cause of the last failed attempt. */
  readonly error?: string;
  readonly attempts: number;
}

const HINTS: Record<NotifyChannel, string> = {
  email: 'check NOTIFY_SMTP_URL (host, port, user, password), NOTIFY_FROM and NOTIFY_EMAIL',
  webhook: 'check NOTIFY_WEBHOOK_URL and that the receiving service is up',
  ping: 'check NOTIFY_PING_URL and that the monitoring service is reachable from this host',
};

/**
 * Run `attempt` up to `policy.attempts` times. Never throws: failures are logged (each retry at
 * info, the final failure as a warning with its cause and a hint) and returned, their causes
 * redacted by `redactor`.
 */
async function deliver(
  channel: NotifyChannel,
  what: string,
  attempt: (timeoutMs: number) => Promise<void>,
  policy: RetryPolicy,
  logger: Logger,
  redactor: Redactor = logger.redactor ?? new Redactor(),
): Promise<NotifyOutcome> {
  const attempts = Math.max(1, policy.attempts);
  for (let i = 1; ; i++) {
    try {
      await attempt(policy.timeoutMs);
      logger.info(`${what} sent`, { channel, attempt: i });
      return { channel, ok: true, attempts: i };
    } catch (err) {
      const cause = redactor.redact(messageOf(err));
      const permanent = (err as { permanent?: unknown } | null)?.permanent === true;
      if (i >= attempts || permanent) {
        logger.warn(`${what} could not be delivered: ${cause}`, { channel, attempts: i, cause, hint: HINTS[channel] });
        return { channel, ok: false, error: cause, attempts: i };
      }
      const delay = policy.delaysMs[Math.min(i - 1, policy.delaysMs.length - 1)] ?? 0;
      logger.info(`${what} failed (attempt ${i}/${attempts}), retrying in ${delay} ms: ${cause}`, { channel, cause });
      await sleep(delay);
    }
  }
}

/** Whether a run gets an e-mail: failures and partial runs always, size anomalies too, the rest only with NOTIFY_ON=always. */
function wantsEmail(result: BackupResult, settings: NotifySettings, context: NotifyContext): boolean {
  if (settings.email.length === 0 || result.status === 'dry-run') return false;
  return settings.on === 'always' || isFailure(result) || context.sizeJudgement?.anomalous === true;
}

/** Arguments of {@link notifyRun}. */
export interface NotifyRunArgs {
  readonly result: BackupResult;
  readonly settings: NotifySettings;
  readonly context: NotifyContext;
  readonly logger: Logger;
  /** Override the retry policy (tests, impatient callers). */
  readonly retry?: Partial<RetryPolicy>;
}

/**
 * Report a finished run on every configured channel, in parallel:
 * - e-mail (see {@link wantsEmail}) through NOTIFY_SMTP_URL;
 * - webhook: a JSON POST after every run;
 * - ping: the bare URL on success, `<url>/fail` on a failed or partial run.
 * Dry runs notify nothing. Never throws and never changes the run's outcome: an undeliverable
 * notification is retried briefly, logged as a warning with its cause, and returned with
 * `ok: false` (the caller may add it to the result's warnings). Outcomes are in the order
 * email, webhook, ping, for the channels that were attempted.
 */
export async function notifyRun(args: NotifyRunArgs): Promise<NotifyOutcome[]> {
  const { result, settings } = args;
  const logger = args.logger.child({ job: result.job, database: result.database });
  // The SMTP password must be masked in every channel's text, whether the logger's redactor knows it or not.
  const redactor = (logger.redactor ?? new Redactor()).with(passwordOfUrl(settings.smtpUrl));
  try {
    if (result.status === 'dry-run') return [];
    const run: ChannelRun = { ...args, policy: { ...DEFAULT_RETRY, ...args.retry }, logger, redactor };
    const jobs = [emailDelivery(run), webhookDelivery(run), pingDelivery(run)].filter((job) => job !== undefined);
    return await Promise.all(jobs);
  } catch (err) {
    // Only a bug can get here (every delivery catches its own errors); still never throw.
    const cause = redactor.redact(messageOf(err));
    logger.warn(`notifications failed: ${cause}`, { cause });
    return [];
  }
}

/** What each channel's delivery of one run needs. */
interface ChannelRun extends NotifyRunArgs {
  readonly policy: RetryPolicy;
  readonly redactor: Redactor;
}

/** The e-mail of a run, when {@link wantsEmail}. */
function emailDelivery({ result, settings, context, policy, logger, redactor }: ChannelRun): Promise<NotifyOutcome> | undefined {
  if (!wantsEmail(result, settings, context)) return undefined;
  const email = renderEmail(result, context);
  const smtpUrl = settings.smtpUrl ?? DEFAULT_SMTP_URL;
  const send = (timeoutMs: number) => sendEmail(email, { smtpUrl, from: settings.from, to: settings.email, timeoutMs, redactor });
  return deliver('email', `e-mail notification to ${settings.email.join(', ')}`, send, policy, logger, redactor);
}

/** The webhook POST of a run, when NOTIFY_WEBHOOK_URL is set. */
function webhookDelivery({ result, settings, context, policy, logger, redactor }: ChannelRun): Promise<NotifyOutcome> | undefined {
  const url = settings.webhookUrl;
  if (!url) return undefined;
  const payload = buildWebhookPayload(result, context, redactor);
  return deliver(
    'webhook',
    'webhook notification',
    (timeoutMs) => sendWebhook(url, payload, timeoutMs, redactor),
    policy,
    logger,
    redactor,
  );
}

/** The success or fail ping of a run, when NOTIFY_PING_URL is set. */
function pingDelivery({ result, settings, context, policy, logger, redactor }: ChannelRun): Promise<NotifyOutcome> | undefined {
  const url = settings.pingUrl;
  if (!url) return undefined;
  const kind = result.status === 'ok' ? 'success' : 'fail';
  const body = kind === 'fail' ? shortText(result, context) : undefined;
  const send = (timeoutMs: number) => sendPing(url, kind, body === undefined ? { timeoutMs, redactor } : { timeoutMs, body, redactor });
  return deliver('ping', `${kind} ping`, send, policy, logger, redactor);
}

/**
 * Send the `<url>/start` ping when a run begins (healthchecks.io then measures the run time and
 * notices a run that never finishes). Never throws; undefined when no URL is configured.
 */
export async function pingStart(
  pingUrl: string | undefined,
  logger: Logger,
  retry?: Partial<RetryPolicy>,
): Promise<NotifyOutcome | undefined> {
  if (!pingUrl) return undefined;
  const redactor = logger.redactor ?? new Redactor();
  try {
    return await deliver(
      'ping',
      'start ping',
      (timeoutMs) => sendPing(pingUrl, 'start', { timeoutMs, redactor }),
      { ...DEFAULT_RETRY, ...retry },
      logger,
    );
  } catch (err) {
    const cause = redactor.redact(messageOf(err));
    logger.warn(`start ping failed: ${cause}`, { cause });
    return { channel: 'ping', ok: false, error: cause, attempts: 0 };
  }
}
