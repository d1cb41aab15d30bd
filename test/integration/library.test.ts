import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Pgbak from '../../src/index.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { createBucket, createDatabase, pgUrl, SAMPLE_SQL, services, tableChecksums, tempDir, uniqueId } from '../helpers/services.js';

type JobConfig = Pgbak.JobConfig;
type Logger = Pgbak.Logger;
type LogFields = Pgbak.LogFields;

// The package as a user imports it: by its name, resolved through package.json `exports` to the
// built output (`npm run build` first, as `npm test` does). The types are the sources' (the same
// declarations), so type checking does not need a build.
const PACKAGE = 'pgbak';
const { jobTarget, listBackups, loadJobs, restore, runJob, selectJobs, status } = (await import(PACKAGE)) as typeof Pgbak;

/** A logger of the kind a host application passes in: every line into an array. */
function recordingLogger(lines: string[], bindings: LogFields = {}): Logger {
  const push = (level: string) => (msg: string, fields?: LogFields) =>
    void lines.push(`${level} ${msg} ${JSON.stringify({ ...bindings, ...fields })}`);
  return {
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

describe('pgbak as a library (in-process, injected environment, working directory and logger)', () => {
  let db: string;
  let cwd: string;
  let job: JobConfig;
  const lines: string[] = [];
  const logger = recordingLogger(lines);
  const controller = new AbortController();
  const envBefore = { ...process.env };

  beforeAll(async () => {
    db = await createDatabase('lib', SAMPLE_SQL);
    const bucket = await createBucket();
    cwd = tempDir();
    const s = services().s3;
    const env = {
      DATABASE_URL: pgUrl(db),
      BACKUP_DIR: './backups',
      STORAGE_ENDPOINT: s.endpoint,
      STORAGE_ACCESS_KEY: s.accessKey,
      STORAGE_SECRET_KEY: s.secretKey,
      STORAGE_BUCKET: bucket,
    };
    const loaded = loadJobs({ env, cwd, flags: {} });
    [job] = selectJobs(loaded.jobs) as [JobConfig];
  });

  afterAll(() => controller.abort());

  it('is the built output that package.json exports', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.name).toBe('pgbak');
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', import: './dist/index.js' });
    const built = new URL('dist/index.js', `file://${REPO_ROOT}/`).href;
    expect(import.meta.resolve(PACKAGE)).toBe(built);
    expect(new URL(pkg.exports['.'].import, `file://${REPO_ROOT}/`).href).toBe(built);
  });

  it('resolves the job from the injected environment and working directory', () => {
    expect(job.database).toBe(db);
    // BACKUP_DIR=./backups is relative to the injected cwd.
    expect(job.backupDir).toBe(join(cwd, 'backups'));
    expect(job.s3?.bucket).toBeDefined();
  });

  it('backs up, lists, restores exactly and reports ok, without the CLI', async () => {
    const result = await runJob(job, { upload: true, encrypt: false, logger, prune: false, signal: controller.signal });
    expect(result.status, result.error?.message).toBe('ok');
    expect(result.locations).toHaveLength(2);
    expect(lines.some((l) => l.startsWith('info '))).toBe(true);

    const listed = await listBackups({ job, logger, signal: controller.signal });
    const entry = listed.find((b) => b.name === result.name);
    expect(entry).toMatchObject({ name: result.name, database: db, state: 'good', encrypted: false });

    const target = `libres_${uniqueId()}`;
    const restored = await restore({ job, name: result.name, target, create: true, yes: true, logger, signal: controller.signal });
    expect(restored).toMatchObject({ name: result.name, database: db, target: { database: target, created: true } });
    const source = await tableChecksums(db);
    expect(Object.keys(source).length).toBeGreaterThanOrEqual(2);
    expect(await tableChecksums(target)).toEqual(source);

    const report = await status({ targets: [jobTarget(job)], signal: controller.signal });
    expect(report.ok, JSON.stringify(report.databases.map((d) => d.reasons))).toBe(true);
    expect(report.databases).toHaveLength(1);
    expect(report.databases[0]).toMatchObject({ database: db, ok: true, newestGood: { name: result.name }, lastRun: { status: 'ok' } });

    // Nothing was read from or written to the process environment.
    expect(process.env).toEqual(envBefore);
  });
});
