import { z } from 'zod';

/**
 * The `--json` documents of every command (docs/json.md), as zod schemas. Every test that reads
 * `--json` output goes through {@link parseEnvelope}, so each of them checks the shape too.
 * Objects are open (new fields may appear); the names docs/json.md retired (`size`, `where`,
 * `verifiedAt`, `jobs` for parallelism, `source`) must not.
 */

const iso = z.iso.datetime({ offset: true });
const location = z.enum(['local', 'remote']);
const retired = { size: z.never().optional(), where: z.never().optional() };

export const jsonError = z.object({
  code: z.string().min(1),
  message: z.string().min(1),
  hint: z.string().nullable(),
  exitCode: z.number().int().min(1),
});

const runError = z
  .object({ code: z.string(), message: z.string(), hint: z.string().optional(), exitCode: z.number().int() })
  .nullable()
  .optional();

const backupRun = z.object({
  ...retired,
  job: z.string(),
  database: z.string(),
  status: z.enum(['ok', 'partial', 'failed']),
  name: z.string().optional(),
  time: iso,
  startedAt: iso,
  finishedAt: iso,
  durationMs: z.number(),
  sizeBytes: z.number().int().nonnegative().optional(),
  sha256: z.string().optional(),
  /** A directory backup (BACKUP_JOBS): how many files it holds. */
  files: z.number().int().positive().optional(),
  encrypted: z.boolean(),
  locations: z.array(location),
  paths: z.array(z.string()),
  error: runError,
  warnings: z.array(z.string()),
});

const backupPlan = z.object({
  job: z.string(),
  database: z.string(),
  databaseUrl: z.string(),
  verdict: z.enum(['ready', 'partial', 'fail']),
  checks: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })),
  steps: z.array(z.string()),
  files: z.array(z.string()),
  objects: z.array(z.string()),
});

const state = z.enum(['good', 'incomplete', 'corrupt', 'foreign']);
const listed = z.object({
  ...retired,
  kind: z.enum(['dump', 'base']),
  base: z.object({ timeline: z.number().int(), startLsn: z.string(), stopLsn: z.string(), stopTime: iso }).optional(),
  name: z.string(),
  database: z.string().optional(),
  time: iso,
  sizeBytes: z.number().int().nonnegative(),
  encrypted: z.boolean(),
  locations: z.array(location),
  paths: z.array(z.string()),
  state,
  problems: z.array(z.string()),
  copies: z.object({
    local: z.object({ state, problems: z.array(z.string()) }).optional(),
    remote: z.object({ state, problems: z.array(z.string()) }).optional(),
  }),
  verified: z.object({ time: iso, ok: z.boolean(), kind: z.string(), durationMs: z.number(), verifiedAt: z.never().optional() }).nullable(),
});

const restored = z.object({
  name: z.string(),
  database: z.string(),
  time: iso,
  parallel: z.number().int().min(1),
  jobs: z.never().optional(),
  source: z.never().optional(),
  locations: z.array(location).length(1),
  paths: z.array(z.string()).length(1),
  mode: z.string(),
  singleTransaction: z.boolean(),
  target: z.object({ database: z.string(), url: z.string(), created: z.boolean() }),
  objects: z.object({ restored: z.number(), total: z.number().optional() }),
  durationMs: z.number(),
  warnings: z.array(z.string()),
});

const verified = z.object({
  job: z.string(),
  name: z.string(),
  ok: z.boolean(),
  kind: z.string(),
  exitCode: z.number().int(),
  durationMs: z.number(),
  checks: z.array(z.object({ check: z.string(), ok: z.boolean() })),
  problems: z.array(z.string()),
  recordedIn: z.array(z.string()),
});

const decision = z.object({ name: z.string(), database: z.string(), time: iso, state, reasons: z.array(z.string()) });
const pruned = z.object({
  job: z.string(),
  dryRun: z.boolean(),
  decisions: z.object({ keep: z.array(decision), remove: z.array(decision) }),
  files: z.array(z.object({ backup: z.string(), location, key: z.string(), path: z.string() })),
  planned: z.array(z.object({ location, key: z.string() })),
  deleted: z.array(z.object({ location, key: z.string() })),
  errors: z.array(z.string()),
  locked: z.array(z.object({ backup: z.string(), location, until: iso.optional() })),
  missingPermission: z.string().optional(),
  warnings: z.array(z.string()),
  wal: z
    .object({
      systemIdentifier: z.string(),
      baseBackups: z.object({ keep: z.array(decision), remove: z.array(decision) }),
      walCutoff: z.string().nullable(),
      walRemoved: z.number(),
      files: z.array(z.object({ backup: z.string(), location, key: z.string(), path: z.string() })),
      errors: z.array(z.string()),
      warnings: z.array(z.string()),
    })
    .optional(),
});

const adopted = z.object({
  job: z.string(),
  database: z.string(),
  dryRun: z.boolean(),
  adopted: z.array(
    z.object({
      ...retired,
      name: z.string(),
      location,
      path: z.string(),
      sizeBytes: z.number(),
      sha256: z.string(),
      encrypted: z.boolean(),
    }),
  ),
  refused: z.array(
    z.object({ name: z.string(), location: location.nullable(), code: z.string(), message: z.string(), hint: z.string().nullable() }),
  ),
  skipped: z.array(z.object({ name: z.string(), location: location.nullable(), reason: z.string() })),
});

const initialized = z.object({
  job: z.string(),
  path: z.string(),
  location: z.never().optional(),
  bucket: z.enum(['created', 'exists']),
  ok: z.boolean(),
  checks: z.array(z.object({ check: z.string(), ok: z.boolean() })),
  warnings: z.array(z.string()),
  lifecycle: z.enum(['installed', 'unsupported']).optional(),
});

const databaseStatus = z.object({
  job: z.string(),
  database: z.string(),
  ok: z.boolean(),
  reasons: z.array(z.string()),
  warnings: z.array(z.string()),
  newestGood: z.object({ name: z.string(), time: iso, sizeBytes: z.number(), ageMs: z.number(), locations: z.array(location) }).nullable(),
  lastRun: z.object({ status: z.string(), startedAt: iso, finishedAt: iso }).nullable(),
  lastRestoreTest: z
    .object({ backup: z.string(), time: iso, ok: z.boolean(), durationMs: z.number(), at: z.never().optional() })
    .nullable(),
  sizeTrend: z.object({ backups: z.array(z.object({ name: z.string(), time: iso, sizeBytes: z.number() })) }),
  backups: z.object({ good: z.number(), incomplete: z.number(), corrupt: z.number() }),
  wal: z
    .object({
      location: z.string(),
      systemIdentifier: z.string(),
      newestSegment: z.string().nullable(),
      storedAt: iso.nullable(),
      ageMs: z.number().nullable(),
      rpoMs: z.number(),
      ok: z.boolean(),
      reason: z.string().nullable(),
      failures: z
        .object({ count: z.number(), lastFailureAt: iso, lastFile: z.string().nullable(), lastError: z.string(), failing: z.boolean() })
        .nullable(),
      newestBaseBackupAt: iso.nullable(),
    })
    .nullable()
    .optional(),
});

const copied = z.object({
  job: z.string(),
  database: z.string(),
  to: z.string(),
  name: z.string(),
  status: z.enum(['copied', 'already', 'would-copy', 'failed']),
  from: z.string().optional(),
  sizeBytes: z.number().int().nonnegative(),
  error: runError,
});

const uploaded = z.object({
  ...retired,
  job: z.string(),
  database: z.string(),
  name: z.string(),
  status: z.enum(['uploaded', 'already', 'would-upload', 'failed']),
  sizeBytes: z.number().int().nonnegative(),
  completedRun: z.boolean(),
  error: runError,
});

const kitJob = z.object({
  job: z.string(),
  database: z.string(),
  name: z.string().nullable(),
  time: iso.nullable(),
  source: z.enum(['remote', 'local']).nullable(),
  files: z.array(z.object({ path: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() })),
  error: runError,
});

const forgotten = z.object({
  database: z.string(),
  filePrefix: z.string(),
  retiredAt: iso,
  locations: z.array(location),
  paths: z.array(z.string()),
  backupsKept: z.number().int().nonnegative(),
});

function envelope<C extends string, R extends z.ZodType>(command: C, result: R, extra: z.ZodRawShape = {}) {
  return z
    .object({
      schemaVersion: z.literal(1),
      command: z.literal(command),
      ok: z.boolean(),
      error: jsonError.optional(),
      results: z.array(result),
      ...extra,
    })
    .refine((e) => e.ok === (e.error === undefined), { message: 'error is present exactly when ok is false' });
}

/** The schema of each command's `--json` document. */
export const schemas = {
  backup: z.union([
    envelope('backup', backupRun, { dryRun: z.literal(false) }),
    envelope('backup', backupPlan, { dryRun: z.literal(true) }),
  ]),
  list: envelope('list', listed),
  restore: envelope('restore', restored),
  verify: envelope('verify', verified),
  prune: envelope('prune', pruned, { dryRun: z.boolean() }),
  adopt: envelope('adopt', adopted, { dryRun: z.boolean() }),
  init: envelope('init', initialized),
  status: z.union([envelope('status', databaseStatus, { checkedAt: iso }), envelope('status', forgotten, { forgotten: z.literal(true) })]),
  upload: envelope('upload', uploaded, { dryRun: z.boolean() }),
  copy: envelope('copy', copied, { dryRun: z.boolean() }),
  'recovery-kit': envelope('recovery-kit', kitJob, { dir: z.string(), readme: z.string(), sha256sums: z.string() }),
} as const;

export type Command = keyof typeof schemas;

/** An envelope as tests read it: the checked fields, and results of any shape. */
export interface Envelope<R = any> {
  schemaVersion: 1;
  command: Command;
  ok: boolean;
  error?: z.infer<typeof jsonError>;
  results: R[];
  [field: string]: unknown;
}

/**
 * Parse a command's `--json` stdout and check it against its command's schema; throws with the
 * schema's complaints otherwise. Returns the document as printed (not zod's stripped copy).
 */
export function parseEnvelope<R = any>(stdout: string): Envelope<R> {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`--json output is not one JSON document: ${(err as Error).message}\n${stdout.slice(0, 500)}`);
  }
  const command = (doc as { command?: string } | null)?.command;
  if (!command || !(command in schemas)) throw new Error(`--json output has no known command: ${stdout.slice(0, 300)}`);
  const checked = schemas[command as Command].safeParse(doc);
  if (!checked.success) throw new Error(`--json output of ${command} does not match its schema:\n${z.prettifyError(checked.error)}`);
  return doc as Envelope<R>;
}

/** The results of a `--json` document (checked). */
export function jsonResults<R = any>(stdout: string): R[] {
  return parseEnvelope<R>(stdout).results;
}

/** The only result of a `--json` document (checked): one job's backup, one restore. */
export function jsonResult<R = any>(stdout: string): R {
  const results = jsonResults<R>(stdout);
  if (results.length !== 1) throw new Error(`expected one result in the --json output, got ${results.length}`);
  return results[0]!;
}
