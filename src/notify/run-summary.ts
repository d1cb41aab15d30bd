import type { BackupResult } from '../model/backup-result.js';
import { redact } from '../logging/redact.js';
import type { SizeJudgement } from '../model/size-judgement.js';
import { formatBytes, formatDuration } from '../model/human-units.js';

/** Facts about a run that the BackupResult does not carry, supplied by the caller. */
export interface NotifyContext {
  /** Host name shown in subjects and texts (usually `os.hostname()`). */
  readonly host: string;
  /**
   * Age in ms of the newest good backup of this database when the notification is sent (for an
   * ok run: this one, about 0). Undefined: none known.
   */
  readonly lastGoodAgeMs?: number | undefined;
  /** Configured destination, shown when the run stored nothing (e.g. `/var/backups/db + s3://bucket/backups/`). */
  readonly location?: string | undefined;
  /** The size judgement of this run, when one was made (see `judgeSize`). */
  readonly sizeJudgement?: SizeJudgement | undefined;
}

/** Status word of subjects and texts. */
export function statusWord(status: BackupResult['status']): string {
  switch (status) {
    case 'ok':
      return 'OK';
    case 'partial':
      return 'PARTIAL';
    case 'failed':
      return 'FAILED';
    case 'dry-run':
      return 'DRY-RUN';
    default:
      return status satisfies never;
  }
}

/** True when the run failed, or partly failed: what `NOTIFY_ON=failure` reports. */
export function isFailure(result: BackupResult): boolean {
  return result.status === 'failed' || result.status === 'partial';
}

/** `[pgbak] FAILED backup of shop on db1` (+ ` (size anomaly)`), redacted. */
export function subjectOf(result: BackupResult, context: NotifyContext): string {
  const job = result.job !== result.database ? ` (job ${result.job})` : '';
  const anomaly = context.sizeJudgement?.anomalous ? ' (size anomaly)' : '';
  return redact(`[pgbak] ${statusWord(result.status)} backup of ${result.database}${job} on ${context.host}${anomaly}`);
}

function lastGoodText(result: BackupResult, context: NotifyContext): string {
  if (context.lastGoodAgeMs !== undefined) return `${formatDuration(context.lastGoodAgeMs)} ago`;
  return result.status === 'ok' ? 'this one' : 'none known: there may be no usable backup of this database';
}

/**
 * The plain-text report of a run: status, error and hint, timing, size, where the backup went,
 * age of the last good backup, size check and warnings. Redacted.
 */
export function describeRun(result: BackupResult, context: NotifyContext): string {
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`${(label ? label + ':' : '').padEnd(18)}${value}`);
  lines.push(`${statusWord(result.status)}: backup of database ${result.database} on ${context.host} (job ${result.job})`, '');
  if (result.error) {
    row('Error', `${result.error.message} [${result.error.code}, exit code ${result.error.exitCode}]`);
    if (result.error.hint) row('Hint', result.error.hint);
    lines.push('');
  }
  row('Started', result.startedAt);
  row('Finished', result.finishedAt);
  row('Duration', formatDuration(result.durationMs));
  row('Size', result.sizeBytes === undefined ? 'none stored' : `${formatBytes(result.sizeBytes)} (${result.sizeBytes} bytes)`);
  if (result.name) row('Backup', `${result.name}${result.encrypted ? ' (encrypted)' : ''}`);
  if (result.locations.length > 0) {
    result.locations.forEach((loc, i) => row(i === 0 ? 'Stored at' : '', loc));
  } else {
    row('Stored at', 'nowhere: no complete copy was stored');
  }
  if (context.location && (result.locations.length === 0 || result.status !== 'ok')) row('Destination', context.location);
  if (result.sha256) row('SHA-256', result.sha256);
  row('Last good backup', lastGoodText(result, context));
  if (context.sizeJudgement) {
    row('Size check', `${context.sizeJudgement.anomalous ? 'ANOMALY: ' : ''}${context.sizeJudgement.reason}`);
  }
  if (result.warnings.length > 0) {
    lines.push('', 'Warnings:', ...result.warnings.map((w) => `  - ${w}`));
  }
  return redact(lines.join('\n') + '\n');
}

/** A short chat message (a few lines) for webhooks and ping bodies. Redacted. */
export function shortText(result: BackupResult, context: NotifyContext): string {
  const icon = result.status === 'ok' ? (context.sizeJudgement?.anomalous ? '⚠️' : '✅') : result.status === 'dry-run' ? 'ℹ️' : '❌';
  const lines = [`${icon} ${subjectOf(result, context)}`];
  if (result.error) lines.push(`Error: ${result.error.message}${result.error.hint ? ` (hint: ${result.error.hint})` : ''}`);
  const facts = [`duration ${formatDuration(result.durationMs)}`];
  if (result.sizeBytes !== undefined) facts.push(`size ${formatBytes(result.sizeBytes)}`);
  facts.push(`last good backup ${lastGoodText(result, context)}`);
  lines.push(facts.join(', '));
  if (result.locations.length > 0) lines.push(`Stored at: ${result.locations.join(', ')}`);
  if (context.sizeJudgement?.anomalous) lines.push(`Size anomaly: ${context.sizeJudgement.reason}`);
  for (const w of result.warnings) lines.push(`Warning: ${w}`);
  return redact(lines.join('\n'));
}
