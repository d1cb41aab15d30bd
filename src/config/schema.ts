import { z } from 'zod';
import { parseCompression, parseDuration, parsePercent, parseSize } from './parsers.js';

/**
 * The one place that names every setting pgbak reads: its variable name, default, meaning and
 * check. The seed's variables keep their names and defaults; ours use the BACKUP_, STORAGE_,
 * NOTIFY_ or METRICS_ prefixes (PG_DUMP_PATH and PGBAK_CONFIG are named by their issues).
 */

const wholeNumber = (min = 0) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be ${min} or more`));

const fromParser = <T>(parse: (s: string) => T) =>
  z.string().transform((s, ctx) => {
    try {
      return parse(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .refine(
      (s) => {
        try {
          return protocols.includes(new URL(s).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL starting with ${protocols.map((p) => p + '//').join(' or ')}`,
    );

const optionalText = z
  .string()
  .trim()
  .transform((s) => (s === '' ? undefined : s));

const emailList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be a comma-separated list of e-mail addresses')));

/** A comma list of database names (BACKUP_DATABASES, BACKUP_EXCLUDE_DATABASES); empty: none. */
const databaseList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

const cronText = z
  .string()
  .trim()
  .refine((s) => s.split(/\s+/).length >= 5 && s.split(/\s+/).length <= 6, 'must be a cron expression with 5 or 6 fields');

/**
 * AGE_RECIPIENTS: `age1…` public keys separated by commas or spaces (post-quantum `age1pq1…`
 * ones included; whether the installed age can use one is checked at preflight), or one path
 * of a recipients file (one key a line, `#` comments). Parsed to `{ keys }` or `{ file }`.
 */
const ageRecipients = z
  .string()
  .trim()
  .transform((s, ctx): { readonly keys: readonly string[] } | { readonly file: string } | undefined => {
    if (s === '') return undefined;
    const parts = s.split(/[\s,]+/).filter(Boolean);
    if (parts.length === 1 && !/^age1/i.test(parts[0]!)) return { file: parts[0]! };
    const bad = parts.find((k) => !/^age1(?:[a-z0-9]+1)?[02-9ac-hj-np-z]{6,}$/.test(k));
    if (bad !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `"${bad.length > 24 ? `${bad.slice(0, 24)}…` : bad}" is not an age recipient (age1… in lower case, as age-keygen -y prints it); give age1… keys separated by commas, or the path of one recipients file`,
      });
      return z.NEVER;
    }
    return { keys: parts };
  });

/** One setting: its variable name, default, help text and check. */
export interface VariableSpec {
  readonly name: string;
  readonly default?: string;
  readonly description: string;
  /** Masked in every output. */
  readonly secret?: boolean;
  readonly schema: z.ZodType<unknown, string>;
}

const v = <const N extends string, S extends z.ZodType<unknown, string>>(
  name: N,
  schema: S,
  description: string,
  extra: { default?: string; secret?: boolean } = {},
) => ({ name, schema, description, ...extra }) as const;

/** Every variable, in the order the README lists them. */
export const variables = [
  // The seed's variables (same names, same defaults).
  v('DATABASE_URL', url(['postgresql:', 'postgres:']), 'PostgreSQL connection string (required)', { secret: false }),
  v('STORAGE_ENDPOINT', url(['http:', 'https:']), 'MinIO/S3 endpoint', { default: 'http://localhost:9000' }),
  v('STORAGE_ACCESS_KEY', optionalText, 'MinIO/S3 access key (upload is skipped unless both keys are set)'),
  v('STORAGE_SECRET_KEY', optionalText, 'MinIO/S3 secret key', { secret: true }),
  v(
    'STORAGE_BUCKET',
    z
      .string()
      .trim()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'),
    'Bucket for backups',
    {
      default: 'sweet-backups',
    },
  ),
  v('GPG_RECIPIENT', optionalText, 'GPG key ID, fingerprint or e-mail to encrypt to (encryption is skipped when unset)'),
  v(
    'AGE_RECIPIENTS',
    ageRecipients,
    'age public keys (age1…, comma-separated) or the path of a recipients file to encrypt to; not together with GPG_RECIPIENT',
  ),
  v('AGE_IDENTITY_FILE', optionalText, 'age identity (secret key) file that decrypts age backups on restore and verify'),
  v('BACKUP_DIR', z.string().trim().min(1, 'must not be empty'), 'Local backup directory', { default: './backups/db' }),
  v('RETENTION_DAYS', wholeNumber(0), 'Days to keep good backups (the newest BACKUP_KEEP_MIN are kept whatever their age)', {
    default: '30',
  }),
  v('LOG_FILE', z.string().trim(), 'Log file path (empty: no log file)', { default: './logs/backup-db.log' }),
  v('NOTIFY_EMAIL', emailList, 'Comma-separated e-mail addresses notified when a run fails', { default: '' }),

  // Backup
  v('BACKUP_COMPRESSION', fromParser(parseCompression), 'gzip:0-9, zstd:1-22, lz4:1-12 or none', { default: 'gzip:9' }),
  v('BACKUP_GLOBALS', z.stringbool(), 'Also store pg_dumpall --globals-only (roles, tablespaces)', { default: 'true' }),
  v('BACKUP_VERIFY', z.enum(['none', 'restore-test']), 'After each backup: none, or restore-test', { default: 'none' }),
  v(
    'VERIFY_DATABASE_URL',
    z.union([z.literal('').transform(() => undefined), url(['postgresql:', 'postgres:'])]),
    'Server for restore tests (default: the backed-up server)',
    {
      default: '',
    },
  ),
  v('BACKUP_ROW_COUNTS', z.stringbool(), 'Record exact per-table row counts (same snapshot as the dump) for restore tests', {
    default: 'true',
  }),
  v('BACKUP_JOBS', wholeNumber(1), 'pg_dump --jobs: 2 or more dumps in directory format, one file per table, in parallel', {
    default: '1',
  }),
  v('PG_DUMP_PATH', optionalText, 'pg_dump binary or its directory (default: PATH, then /usr/lib/postgresql/*/bin)', { default: '' }),
  v('BACKUP_LOG_LEVEL', z.enum(['debug', 'info', 'warn', 'error']), 'Log level', { default: 'info' }),
  v(
    'BACKUP_DATABASES',
    databaseList,
    'Whole server: all, or a comma list of databases backed up in one run (empty: the database of DATABASE_URL)',
    { default: '' },
  ),
  v('BACKUP_EXCLUDE_DATABASES', databaseList, 'Whole server: databases left out of BACKUP_DATABASES (comma list)', { default: '' }),

  // Storage
  v(
    'STORAGE_PREFIX',
    z.string().regex(/^([^/].*\/)?$/, 'must be empty or end with "/" and not start with "/"'),
    'Key prefix in the bucket',
    {
      default: 'backups/',
    },
  ),
  v('STORAGE_REGION', z.string().trim().min(1), 'S3 region', { default: 'us-east-1' }),
  v(
    'STORAGE_PART_SIZE',
    z.union([z.literal('auto'), fromParser(parseSize).pipe(z.number().min(5 * 1024 * 1024, 'must be at least 5MiB'))]),
    'Multipart part size (auto: from the database size, 32MiB minimum)',
    {
      default: 'auto',
    },
  ),
  v('STORAGE_QUEUE_SIZE', wholeNumber(1), 'Parts uploaded at once (in memory only without a local file: part size × (queue + 1))', {
    default: '2',
  }),
  v(
    'STORAGE_TIMEOUT',
    fromParser(parseDuration).pipe(z.number().min(1000, 'must be at least 1s')),
    'S3 requests with no answer (and uploads taking no data) for this long fail; the local backup goes on',
    {
      default: '60s',
    },
  ),

  v(
    'STORAGE_OBJECT_LOCK',
    z.enum(['off', 'governance', 'compliance']),
    'S3 Object Lock of each backup: off, governance or compliance (retained RETENTION_DAYS + 1 day)',
    { default: 'off' },
  ),

  // A second bucket target (off-site copy): every backup is streamed to it in the same pass.
  v(
    'STORAGE_2_ENDPOINT',
    z.union([z.literal('').transform(() => undefined), url(['http:', 'https:'])]),
    'Second target: S3 endpoint (off-site copy; used when both its keys are set)',
    { default: '' },
  ),
  v('STORAGE_2_ACCESS_KEY', optionalText, 'Second target: access key'),
  v('STORAGE_2_SECRET_KEY', optionalText, 'Second target: secret key', { secret: true }),
  v(
    'STORAGE_2_BUCKET',
    z.union([
      z.literal('').transform(() => undefined),
      z
        .string()
        .trim()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'),
    ]),
    'Second target: bucket (default: STORAGE_BUCKET)',
    { default: '' },
  ),
  v(
    'STORAGE_2_PREFIX',
    z.string().regex(/^([^/].*\/)?$/, 'must be empty or end with "/" and not start with "/"'),
    'Second target: key prefix',
    {
      default: 'backups/',
    },
  ),
  v('STORAGE_2_REGION', z.string().trim().min(1), 'Second target: S3 region', { default: 'us-east-1' }),
  v(
    'STORAGE_2_OBJECT_LOCK',
    z.enum(['off', 'governance', 'compliance']),
    "Second target: S3 Object Lock of each backup there (its own setting: STORAGE_OBJECT_LOCK is the first bucket's)",
    { default: 'off' },
  ),
  v(
    'STORAGE_2_NAME',
    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-"'),
    'Second target: its name in list, status and copy',
    {
      default: 'secondary',
    },
  ),

  // Retention
  v('BACKUP_KEEP_MIN', wholeNumber(1), 'Newest good backups always kept, whatever their age (at least 1)', { default: '3' }),
  v('BACKUP_KEEP_DAILY', wholeNumber(0), 'Keep the newest good backup of each of the last N days', { default: '0' }),
  v('BACKUP_KEEP_WEEKLY', wholeNumber(0), 'Keep the newest good backup of each of the last N ISO weeks', { default: '0' }),
  v('BACKUP_KEEP_MONTHLY', wholeNumber(0), 'Keep the newest good backup of each of the last N months', { default: '0' }),
  v('BACKUP_PRUNE', z.stringbool(), 'Prune after each successful backup', { default: 'true' }),

  // Scheduling
  v('BACKUP_SCHEDULE', cronText, 'Cron schedule of the daemon', { default: '0 0,6,12,18 * * *' }),
  v('BACKUP_TZ', z.string().trim().min(1), 'Time zone of the schedule', { default: 'UTC' }),
  v('BACKUP_RUN_ON_START', z.stringbool(), 'Daemon: run once at start', { default: 'false' }),
  v('BACKUP_RETRIES', wholeNumber(0), 'Retries of a run that failed for a transient cause', { default: '2' }),
  v('BACKUP_STOP_TIMEOUT', fromParser(parseDuration), 'On SIGTERM, how long a running backup may finish', { default: '10m' }),
  v('BACKUP_CONCURRENCY', wholeNumber(1), 'Jobs run at once by --all and the daemon; databases dumped at once with BACKUP_DATABASES', {
    default: '1',
  }),
  v('PGBAK_CONFIG', optionalText, 'Config file listing jobs (default: ./pgbak.yaml when present)', { default: '' }),

  // Notifications and monitoring
  v('NOTIFY_ON', z.enum(['failure', 'always']), 'When to notify: failure, or always', { default: 'failure' }),
  v(
    'NOTIFY_SMTP_URL',
    z.union([z.literal('').transform(() => undefined), url(['smtp:', 'smtps:'])]),
    'SMTP server: smtp://user:pass@host:587 or smtps://…',
    {
      default: '',
      secret: false,
    },
  ),
  v('NOTIFY_FROM', z.string().trim(), 'Sender address of notification e-mails', { default: 'pgbak@localhost' }),
  v(
    'NOTIFY_WEBHOOK_URL',
    z.union([z.literal('').transform(() => undefined), url(['http:', 'https:'])]),
    'JSON POST of each run result (Slack-compatible `text`)',
    {
      default: '',
    },
  ),
  v(
    'NOTIFY_PING_URL',
    z.union([z.literal('').transform(() => undefined), url(['http:', 'https:'])]),
    'Dead-man switch: /start, success, /fail',
    { default: '' },
  ),
  v('METRICS_TEXTFILE', optionalText, 'Write Prometheus metrics here after each run (node_exporter textfile)', { default: '' }),
  v('METRICS_ADDR', optionalText, 'Daemon: serve /metrics, /healthz (alive) and /readyz (fresh) at host:port', { default: '' }),
  v('DASHBOARD_TOKEN', optionalText, 'Daemon dashboard (/ and /api/v1/): token it asks for; required when METRICS_ADDR is not loopback', {
    default: '',
    secret: true,
  }),
  v('BACKUP_RPO', fromParser(parseDuration), 'status: the newest good backup must be younger than this', { default: '6h' }),
  v('BACKUP_SIZE_TOLERANCE', fromParser(parsePercent), 'Size anomaly: allowed deviation from the median of recent backups', {
    default: '50%',
  }),

  // Point-in-time recovery (WAL archive and base backups)
  v('WAL_COMPRESSION', fromParser(parseCompression), 'WAL archive and base backups: zstd:1-22, lz4:1-12, gzip:0-9 or none', {
    default: 'zstd:3',
  }),
  v('WAL_RPO', fromParser(parseDuration), 'status: the newest archived WAL segment must be younger than this', { default: '5m' }),
  v(
    'WAL_BASEBACKUP_COMPRESS_ON',
    z.enum(['server', 'client']),
    'Base backups with zstd or lz4: compressed by the PostgreSQL server (15+, when built with it; else by pgbak) or by pgbak',
    { default: 'server' },
  ),
] as const satisfies readonly VariableSpec[];

/** The name of a setting (DATABASE_URL …). */
export type VariableName = (typeof variables)[number]['name'];

type SpecOf<N extends VariableName> = Extract<(typeof variables)[number], { name: N }>;

/** Parsed values of every variable, keyed by variable name. DATABASE_URL may be absent. */
export type Settings = {
  [N in VariableName]: N extends 'DATABASE_URL' ? string | undefined : z.output<SpecOf<N>['schema']>;
};

/** Every variable name, in the order of {@link variables}. */
export const variableNames: readonly VariableName[] = variables.map((x) => x.name);

/** True when `name` is a setting pgbak knows. */
export function isVariableName(name: string): name is VariableName {
  return (variableNames as readonly string[]).includes(name);
}
