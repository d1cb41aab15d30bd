import { z } from 'zod';

/**
 * The dashboard's JSON API (`/api/v1/…`, README "Dashboard"), as zod schemas: strict objects, so
 * a field added or renamed without updating the documentation fails the test.
 */

const iso = z.iso.datetime({ offset: true });
const where = z.enum(['local', 'remote']);
const state = z.enum(['good', 'incomplete', 'corrupt', 'foreign']);
const ms = z.number().nonnegative();
const walSegment = z.string().regex(/^[0-9A-F]{24}(\.partial)?$/);

const jobOverview = z.strictObject({
  job: z.string(),
  database: z.string(),
  ok: z.boolean(),
  freshness: z.enum(['green', 'amber', 'red']),
  reasons: z.array(z.string()),
  warnings: z.array(z.string()),
  rpoMs: ms,
  newestGood: z
    .strictObject({ name: z.string(), time: iso, ageMs: ms, sizeBytes: z.number().int().nonnegative(), locations: z.array(where) })
    .nullable(),
  lastRun: z
    .strictObject({
      status: z.enum(['ok', 'partial', 'failed', 'dry-run']),
      backup: z.string().nullable(),
      startedAt: iso,
      finishedAt: iso,
      durationMs: ms,
      error: z.strictObject({ code: z.string(), message: z.string(), hint: z.string().nullable() }).nullable(),
      warnings: z.array(z.string()),
      host: z.string(),
    })
    .nullable(),
  nextRunAt: iso.nullable(),
  schedule: z.strictObject({ cron: z.string(), timezone: z.string() }).nullable(),
  destination: z.string(),
  where: z.strictObject({ backupDir: z.string(), bucket: z.string().nullable() }),
  encryption: z.strictObject({ enabled: z.boolean(), method: z.enum(['gpg', 'age']).nullable(), recipient: z.string().nullable() }),
  counts: z.strictObject({ good: z.number().int(), incomplete: z.number().int(), corrupt: z.number().int() }),
  lastRestoreTest: z.strictObject({ backup: z.string(), at: iso, ok: z.boolean(), durationMs: ms }).nullable(),
  wal: z
    .strictObject({
      location: z.string(),
      newestSegment: walSegment.nullable(),
      storedAt: iso.nullable(),
      ageMs: ms.nullable(),
      rpoMs: ms,
      freshness: z.enum(['green', 'amber', 'red']),
      newestBase: z.strictObject({ name: z.string(), time: iso, sizeBytes: z.number().int().nonnegative() }).nullable(),
      chain: z.strictObject({
        state: z.enum(['complete', 'gap', 'conflict', 'no-base-backup', 'unreadable']),
        from: z.string().nullable(),
        segments: z.number().int().nonnegative(),
        firstGap: walSegment.nullable(),
        conflicts: z.array(z.string()),
        problem: z.string().nullable(),
      }),
    })
    .nullable(),
});

const backupRow = z.strictObject({
  name: z.string(),
  time: iso,
  sizeBytes: z.number().int().nonnegative(),
  durationMs: ms.nullable(),
  compression: z.string().nullable(),
  encrypted: z.boolean(),
  state,
  locations: z.array(where),
  problems: z.array(z.string()),
  verified: z.strictObject({ at: iso, ok: z.boolean(), kind: z.string(), durationMs: ms }).nullable(),
  restoreCommand: z.string().startsWith('pgbak restore ').nullable(),
});

export const dashboardSchemas = {
  status: z.strictObject({
    ok: z.boolean(),
    generatedAt: iso,
    refreshedAt: iso.nullable(),
    problems: z.array(z.string()),
    jobs: z.array(jobOverview),
  }),
  backups: z.strictObject({
    job: z.string(),
    total: z.number().int().nonnegative(),
    page: z.number().int().positive(),
    limit: z.number().int().positive(),
    pages: z.number().int().positive(),
    backups: z.array(backupRow),
  }),
  series: z.strictObject({
    job: z.string(),
    points: z.array(
      z.strictObject({
        name: z.string(),
        time: iso,
        sizeBytes: z.number().int().nonnegative(),
        durationMs: ms.nullable(),
        anomalous: z.boolean(),
        reason: z.string().nullable(),
      }),
    ),
  }),
  restoreTests: z.strictObject({
    job: z.string(),
    rtoTargetMs: z.literal(4 * 3600_000),
    tests: z.array(z.strictObject({ backup: z.string(), at: iso, ok: z.boolean(), durationMs: ms })),
  }),
  notifications: z.strictObject({
    deliveries: z.array(
      z.strictObject({
        job: z.string(),
        channel: z.enum(['email', 'webhook', 'ping']),
        at: iso,
        ok: z.boolean(),
        error: z.string().nullable(),
      }),
    ),
  }),
  config: z.strictObject({ jobs: z.array(z.strictObject({ job: z.string(), settings: z.record(z.string(), z.string()) })) }),
};
