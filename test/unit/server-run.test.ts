import { describe, expect, it } from 'vitest';
import { summarize } from '../../src/api/server-run.js';
import type { JobConfig } from '../../src/config/job.js';
import { ExitCode } from '../../src/errors/index.js';
import type { BackupResult } from '../../src/model/backup-result.js';
import { chooseDatabases } from '../../src/postgres/list-databases.js';
import { loadJobs } from '../../src/config/config-file.js';
import { problemsOf } from '../helpers/config-errors.js';

const found = { usable: ['app', 'crm', 'postgres', 'scratch', 'shop'], unusable: ['template0', 'template1', 'frozen'] };

describe('chooseDatabases (BACKUP_DATABASES, BACKUP_EXCLUDE_DATABASES)', () => {
  it('all: every database that may be backed up but the excluded, sorted; never a template', () => {
    expect(chooseDatabases(found, { include: 'all', exclude: ['scratch'] })).toEqual({
      databases: ['app', 'crm', 'postgres', 'shop'],
      missing: [],
      unusable: [],
      excluded: ['scratch'],
      unknownExcluded: [],
    });
  });
  it('a list: those found; a name not on the server is missing, a template named is unusable (each fails the run), an excluded one is left out', () => {
    expect(
      chooseDatabases(found, {
        include: ['shop', 'gone', 'crm', 'shop', 'scratch', 'template1', 'frozen'],
        exclude: ['scratch', 'frozen'],
      }),
    ).toEqual({
      databases: ['crm', 'shop'],
      missing: ['gone'],
      unusable: ['template1'],
      excluded: ['scratch', 'frozen'],
      unknownExcluded: [],
    });
  });
  it('an excluded name that is not on the server is reported (a typo would leave out nothing), a template excluded is not', () => {
    expect(chooseDatabases(found, { include: 'all', exclude: ['scrach', 'template0'] }).unknownExcluded).toEqual(['scrach']);
    expect(chooseDatabases(found, { include: ['app'], exclude: ['nosuch'] })).toMatchObject({
      databases: ['app'],
      unknownExcluded: ['nosuch'],
    });
  });
});

describe('BACKUP_DATABASES in the settings', () => {
  const load = (env: Record<string, string>) =>
    loadJobs({ env: { DATABASE_URL: 'postgresql://bak@db.example:5432/postgres', ...env }, cwd: '/', envFile: false }).jobs[0]!;
  it('reads all, a list, and the exclusions', () => {
    expect(load({ BACKUP_DATABASES: 'all', BACKUP_EXCLUDE_DATABASES: 'scratch' }).backup.databases).toEqual({
      include: 'all',
      exclude: ['scratch'],
    });
    expect(load({ BACKUP_DATABASES: 'shop,crm' }).backup.databases).toEqual({ include: ['shop', 'crm'], exclude: [] });
    expect(load({}).backup.databases).toBeUndefined();
  });
  it('refuses BACKUP_EXCLUDE_DATABASES without BACKUP_DATABASES (it would exclude nothing)', () => {
    expect(problemsOf(() => load({ BACKUP_EXCLUDE_DATABASES: 'scratch' }))).toEqual([
      'BACKUP_EXCLUDE_DATABASES is set without BACKUP_DATABASES: it leaves out databases of a whole-server job only',
    ]);
  });
});

const job = { name: 'postgres', database: 'postgres' } as JobConfig;
const at = new Date('2026-12-05T10:00:00Z');
function result(database: string, status: BackupResult['status'], exitCode: number = ExitCode.database): BackupResult {
  return {
    status,
    job: database,
    database,
    name: status === 'failed' ? undefined : `${database}_20261205_100000`,
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    durationMs: 1000,
    sizeBytes: status === 'failed' ? undefined : 100,
    sha256: undefined,
    encrypted: false,
    locations: [],
    error: status === 'ok' ? undefined : { code: 'x', message: `${database} broke`, exitCode },
    warnings: status === 'ok' ? [] : ['w'],
  };
}

describe('summarize: one result for a whole-server run', () => {
  it('ok when every database is', () => {
    const s = summarize(job, [result('a', 'ok'), result('b', 'ok')], at, at);
    expect(s).toMatchObject({ status: 'ok', error: undefined, sizeBytes: 200, database: '2 databases' });
  });
  it('partial (exit 3) naming every database that failed, when others were backed up', () => {
    const s = summarize(job, [result('a', 'ok'), result('b', 'failed'), result('c', 'partial', ExitCode.partial)], at, at);
    expect(s.status).toBe('partial');
    expect(s.error).toMatchObject({
      exitCode: ExitCode.partial,
      message: '2 of 3 databases not fully backed up: b (b broke); c (c broke)',
    });
    expect(s.warnings).toEqual(['[b] w', '[c] w']);
    expect(s.error?.hint).toMatch(/^the other databases were backed up;/);
  });
  it("failed with the first failure's exit code when none was backed up", () => {
    const s = summarize(job, [result('a', 'failed', ExitCode.dumpFailed), result('b', 'failed')], at, at);
    expect(s.status).toBe('failed');
    expect(s.error?.exitCode).toBe(ExitCode.dumpFailed);
    expect(s.error?.hint).toMatch(/^no database was backed up;/);
  });
  it('partial when every database was kept locally only (the upload failed): none is said to be backed up', () => {
    const s = summarize(job, [result('a', 'partial', ExitCode.partial), result('b', 'partial', ExitCode.partial)], at, at);
    expect(s).toMatchObject({ status: 'partial', error: { exitCode: ExitCode.partial } });
    expect(s.error?.hint).toMatch(/^no database was fully backed up;/);
  });
});
