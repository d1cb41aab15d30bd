import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, type CliResult } from '../helpers/cli.js';
import { type Command, parseEnvelope } from '../helpers/json-schemas.js';
import { createBucket, createDatabase, SAMPLE_SQL, tempDir, uniqueId } from '../helpers/services.js';

/**
 * Every command's `--json` (docs/json.md): one envelope `{schemaVersion: 1, command, ok, error?,
 * results}` on stdout, checked against its zod schema, for a success and for a failure; a failure
 * carries `error {code, message, hint, exitCode}` whose exitCode is the process's.
 */
describe('--json envelope of every command', () => {
  let db: string;
  let env: NodeJS.ProcessEnv;
  let name: string;

  beforeAll(async () => {
    db = await createDatabase('env', SAMPLE_SQL);
    const bucket = await createBucket('env');
    env = backupEnv({ database: db, dir: tempDir(), bucket, encrypt: true, extra: { BACKUP_PRUNE: 'false' } });
    const r = await runCli(['backup', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    name = parseEnvelope(r.stdout).results[0].name;
  });

  /** Run with --json; the envelope must match its command's schema and agree with the exit code. */
  async function envelope(command: Command, args: string[], runEnv: NodeJS.ProcessEnv, code: number) {
    const r: CliResult = await runCli([...args, '--json'], { env: runEnv });
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
    const doc = parseEnvelope(r.stdout);
    expect(doc).toMatchObject({ schemaVersion: 1, command, ok: code === 0 });
    if (code === 0) expect(doc.error).toBeUndefined();
    else {
      expect(doc.error?.exitCode).toBe(code);
      // The same cause on stderr, for people.
      expect(r.stderr).toContain(doc.error!.message.split('\n')[0]!.slice(0, 40));
    }
    return doc;
  }

  const noDatabase = () => ({ ...env, DATABASE_URL: env.DATABASE_URL!.replace(db, `missing_${db}`) });

  it('backup: a run per job in results, also when the database is missing (exit 5)', async () => {
    const failed = await envelope('backup', ['backup', '--no-upload'], noDatabase(), 5);
    expect(failed).toMatchObject({ dryRun: false, error: { code: 'db-missing' } });
    expect(failed.results).toEqual([expect.objectContaining({ status: 'failed', job: `missing_${db}` })]);
  });

  it('backup --dry-run: the plan per job, ready or failed', async () => {
    const ready = await envelope('backup', ['backup', '--dry-run'], env, 0);
    expect(ready).toMatchObject({ dryRun: true, results: [{ verdict: 'ready', database: db }] });
    const failed = await envelope('backup', ['backup', '--dry-run'], noDatabase(), 5);
    expect(failed.results).toEqual([expect.objectContaining({ verdict: 'fail' })]);
  });

  it('list: the backups, and an error object when it cannot list', async () => {
    const ok = await envelope('list', ['list'], env, 0);
    expect(ok.results).toEqual([expect.objectContaining({ name, locations: ['local', 'remote'], state: 'good' })]);
    const noBucket = { ...env, STORAGE_ACCESS_KEY: '', STORAGE_SECRET_KEY: '' };
    const failed = await envelope('list', ['list', '--from', 'remote'], noBucket, 2);
    expect(failed).toMatchObject({ results: [], error: { code: 'usage', message: '--from remote: no bucket is configured' } });
  });

  it('restore: one result, and an error object for a backup that does not exist (exit 10)', async () => {
    const target = `env_r_${uniqueId()}`;
    const ok = await envelope('restore', ['restore', name, '--target', target, '--create'], env, 0);
    expect(ok.results).toEqual([expect.objectContaining({ name, locations: ['local'], parallel: 1 })]);
    const failed = await envelope('restore', ['restore', `${db}_20000101_000000`, '--target', target], env, 10);
    expect(failed.results).toEqual([]);
    expect(failed.error?.hint).toBeTruthy();
  });

  it('verify: a result per backup, and one failing check makes ok false', async () => {
    const ok = await envelope('verify', ['verify', name], env, 0);
    expect(ok.results).toEqual([expect.objectContaining({ job: db, name, ok: true })]);
    const failed = await envelope('verify', ['verify', `${db}_20000101_000000`], env, 10);
    expect(failed.error?.code).toBeTruthy();
  });

  it('prune: decisions and files per job, and an error object for a refused policy', async () => {
    const ok = await envelope('prune', ['prune', '--dry-run'], env, 0);
    expect(ok).toMatchObject({ dryRun: true, results: [{ job: db, files: [], decisions: { remove: [] } }] });
    const failed = await envelope('prune', ['prune', '--dry-run', '--set', 'BACKUP_KEEP_MIN=0'], env, 2);
    expect(failed.error?.message).toMatch(/BACKUP_KEEP_MIN/);
  });

  it('adopt: a result per job, and an error object when there is nothing to adopt', async () => {
    const ok = await envelope('adopt', ['adopt', '--every', '--dry-run'], env, 0);
    expect(ok).toMatchObject({ dryRun: true, results: [{ job: db, adopted: [], refused: [] }] });
    const failed = await envelope('adopt', ['adopt'], env, 2);
    expect(failed.error).toMatchObject({ code: 'usage', hint: expect.stringContaining('adopt --every --dry-run') });
  });

  it('init: a report per job, and an error object when the bucket cannot be reached', async () => {
    const ok = await envelope('init', ['init'], env, 0);
    expect(ok.results).toEqual([expect.objectContaining({ job: db, bucket: 'exists', ok: true })]);
    const failed = await envelope('init', ['init'], { ...env, STORAGE_ENDPOINT: 'http://127.0.0.1:1', STORAGE_TIMEOUT: '2s' }, 7);
    expect(failed.error?.exitCode).toBe(7);
  });

  it('status: a result per database, and a stale error when the newest backup is older than BACKUP_RPO (exit 12)', async () => {
    const ok = await envelope('status', ['status'], env, 0);
    expect(ok.results).toEqual([expect.objectContaining({ database: db, ok: true, newestGood: expect.objectContaining({ name }) })]);
    await new Promise((r) => setTimeout(r, 1100));
    const stale = await envelope('status', ['status', '--set', 'BACKUP_RPO=1s'], env, 12);
    expect(stale.error).toMatchObject({ code: 'stale', message: expect.stringContaining(db) });
    expect(stale.results).toEqual([expect.objectContaining({ ok: false })]);
  });

  it('upload: a result per backup, and an error object when there is no bucket', async () => {
    const ok = await envelope('upload', ['upload', '--missing'], env, 0);
    expect(ok).toMatchObject({ dryRun: false, results: [] });
    const again = await envelope('upload', ['upload', name], env, 0);
    expect(again.results).toEqual([expect.objectContaining({ name, job: db, status: 'already' })]);
    const noBucket = { ...env, STORAGE_ACCESS_KEY: '', STORAGE_SECRET_KEY: '' };
    const failed = await envelope('upload', ['upload', '--missing'], noBucket, 2);
    expect(failed.error).toMatchObject({ code: 'usage', message: 'no bucket is configured to upload to' });
  });

  it('status --forget: the retirement, and an error object for a database it does not know (exit 10)', async () => {
    const failed = await envelope('status', ['status', '--forget', `nosuch_${db}`], env, 10);
    expect(failed).toMatchObject({ forgotten: true, results: [] });
  });
});
