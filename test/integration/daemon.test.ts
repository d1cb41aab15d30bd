import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupEnv, spawnCli } from '../helpers/cli.js';
import { parseExposition, sample } from '../helpers/notify-sinks.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, pgUrl, services, tempDir } from '../helpers/services.js';

const SMALL_SQL = `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;`;
/** About 15 MB of poorly compressible rows: pg_dump -Z9 needs a few seconds, long enough to interrupt. */
const BIG_SQL = `CREATE TABLE big (id int, a text, b text);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 3)::text) || md5(random()::text) FROM generate_series(1, 200000) g;`;

/** Poll `check` every `everyMs` until it returns a truthy value; fail after `timeoutMs`. */
async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 200): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Local backups: every artifact has its manifest and no temp file is left. */
function checkNoHalfMadeLocal(dir: string): { manifests: string[]; files: string[] } {
  const files = existsSync(dir) ? readdirSync(dir) : [];
  expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
  const manifests = files.filter((f) => f.endsWith('.manifest.json'));
  for (const f of files.filter((x) => /\.dump(\.|$)|\.globals\.sql/.test(x))) {
    const base = f.replace(/\.(dump|globals\.sql).*$/, '');
    expect(manifests, `${f} has no manifest`).toContain(`${base}.manifest.json`);
  }
  return { manifests, files };
}

describe('pgbak daemon (real CLI, per-second schedule)', () => {
  it('backs up the good database of a two-job config while the broken one fails, serves /metrics, /healthz (200: alive) and /readyz (503: not fresh), reopens LOG_FILE on SIGHUP, exits 0 on SIGTERM', async () => {
    const good = await createDatabase('dgood', SMALL_SQL);
    const dir = tempDir();
    const backups = join(dir, 'backups');
    const logFile = join(dir, 'logs', 'daemon.log');
    const config = join(dir, 'pgbak.yaml');
    writeFileSync(
      config,
      [
        'defaults:',
        '  backup_schedule: "* * * * * *"',
        `  backup_dir: ${backups}`,
        `  log_file: ${logFile}`,
        '  metrics_addr: 127.0.0.1:0',
        '  backup_concurrency: 2',
        '  backup_globals: "false"',
        'jobs:',
        '  - name: good',
        '    database_url_env: GOOD_URL',
        '  - name: broken',
        '    database_url_env: BROKEN_URL',
        '',
      ].join('\n'),
    );
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GOOD_URL: pgUrl(good),
      BROKEN_URL: pgUrl(`missing_${good}`),
    };
    const { child, done } = spawnCli(['daemon', '--config', config], { env, cwd: dir, timeoutMs: 90_000 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const base = await waitFor('the metrics URL', () => /metrics served at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr)?.[1]);

      // Real backups of the good database, one per second, while the broken job keeps failing.
      await waitFor(
        'two good backups',
        () =>
          existsSync(backups) && readdirSync(backups).filter((f) => f.startsWith(`${good}_`) && f.endsWith('.manifest.json')).length >= 2,
      );
      const metrics = await waitFor('runs of both jobs in /metrics', async () => {
        const res = await fetch(`${base}/metrics`);
        const samples = parseExposition(await res.text());
        const ok = sample(samples, 'pgbak_backup_runs_total', { job: 'good', status: 'ok' }) ?? 0;
        const failed = sample(samples, 'pgbak_backup_runs_total', { job: 'broken', status: 'failed' }) ?? 0;
        return ok >= 1 && failed >= 1 ? samples : undefined;
      });
      expect(sample(metrics, 'pgbak_backup_last_status', { job: 'good' })).toBe(1);
      expect(sample(metrics, 'pgbak_backup_last_status', { job: 'broken' })).toBe(0);
      expect(sample(metrics, 'pgbak_backup_last_size_bytes', { job: 'good' })).toBeGreaterThan(0);

      // Alive (the scheduler runs) but not ready: the broken job has no good backup and its last run failed.
      const live = await fetch(`${base}/healthz`);
      expect(live.status).toBe(200);
      expect(await live.json()).toMatchObject({ ok: true, detail: { scheduler: 'running', jobs: ['good', 'broken'] } });
      const health = await fetch(`${base}/readyz`);
      expect(health.status).toBe(503);
      const body = (await health.json()) as { ok: boolean; detail: { job: string; ok: boolean; problems: string[] }[] };
      expect(body.detail.find((d) => d.job === 'good')).toMatchObject({ ok: true, problems: [] });
      expect(body.detail.find((d) => d.job === 'broken')).toMatchObject({ ok: false, problems: ['no good backup', 'last run failed'] });

      // logrotate: move the file away, SIGHUP, and the daemon writes a new one.
      expect(readFileSync(logFile, 'utf8')).toContain('daemon started with 2 job(s)');
      renameSync(logFile, `${logFile}.1`);
      child.kill('SIGHUP');
      await waitFor('a reopened log file', () => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('log file reopened'));
    } finally {
      child.kill('SIGTERM');
    }
    const result = await done;
    expect(result.code, stderr.slice(-3000)).toBe(0);
    expect(stderr).toContain('daemon stopped');
    const { manifests } = checkNoHalfMadeLocal(backups);
    expect(manifests.some((m) => m.startsWith('missing_'))).toBe(false);
  });

  it("a fresh daemon whose jobs never ran: /healthz 200 (alive), /readyz 503 naming each job, /metrics has every job's series (last success 0 = never)", async () => {
    const dir = tempDir();
    const config = join(dir, 'pgbak.yaml');
    const [shop, crm] = [`shop_${Date.now()}`, `crm_${Date.now()}`];
    writeFileSync(
      config,
      [
        'defaults:',
        '  backup_schedule: "0 0 1 1 *"', // next run months away: nothing runs during the test
        `  backup_dir: ${join(dir, 'backups')}`,
        '  metrics_addr: 127.0.0.1:0',
        '  backup_globals: "false"',
        'jobs:',
        '  - name: shop',
        `    database_url: ${pgUrl(shop)}`,
        '  - name: crm',
        `    database_url: ${pgUrl(crm)}`,
        '',
      ].join('\n'),
    );
    const { child, done } = spawnCli(['daemon', '--config', config], { env: { PATH: process.env.PATH, HOME: process.env.HOME }, cwd: dir });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const base = await waitFor('the metrics URL', () => /metrics served at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr)?.[1]);
      const live = await fetch(`${base}/healthz`);
      expect(live.status).toBe(200);
      expect(await live.json()).toMatchObject({ ok: true, detail: { scheduler: 'running', jobs: ['shop', 'crm'] } });
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { ok: boolean; detail: { job: string; ok: boolean; problems: string[] }[] };
      expect(body.ok).toBe(false);
      expect(body.detail.map((d) => [d.job, d.problems])).toEqual([
        ['shop', ['no good backup']],
        ['crm', ['no good backup']],
      ]);
      const samples = parseExposition(await (await fetch(`${base}/metrics`)).text());
      for (const [job, database] of [
        ['shop', shop],
        ['crm', crm],
      ] as const) {
        expect(sample(samples, 'pgbak_backup_last_success_timestamp_seconds', { job, database }), job).toBe(0);
        expect(sample(samples, 'pgbak_backup_last_run_timestamp_seconds', { job, database }), job).toBe(0);
        expect(sample(samples, 'pgbak_backup_runs_total', { job, database, status: 'failed' }), job).toBe(0);
        // Never ran is not "last run failed".
        expect(sample(samples, 'pgbak_backup_last_status', { job, database }), job).toBeUndefined();
      }
    } finally {
      child.kill('SIGTERM');
    }
    const result = await done;
    expect(result.code, stderr.slice(-3000)).toBe(0);
  });

  it('SIGTERM during a backup aborts it cleanly: no artifact without its manifest, no temp file, no multipart upload left; exit 0', async () => {
    const db = await createDatabase('dbig', BIG_SQL);
    const dir = tempDir();
    const bucket = await createBucket('daemon');
    const backups = join(dir, 'backups');
    const env = backupEnv({
      database: db,
      dir,
      bucket,
      extra: { BACKUP_SCHEDULE: '* * * * * *', BACKUP_STOP_TIMEOUT: '0s', BACKUP_COMPRESSION: 'gzip:9', STORAGE_PART_SIZE: '5MiB' },
    });
    const { child, done } = spawnCli(['daemon'], { env, cwd: dir, timeoutMs: 90_000 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // pg_dump is streaming into the temp file and, past the first 5 MiB part, the multipart upload.
      const tempFile = () =>
        existsSync(backups) ? readdirSync(backups).find((f) => f.startsWith(`.${db}_`) && f.includes('.dump.tmp-')) : undefined;
      await waitFor(
        'a dump past its first part',
        () => {
          const f = tempFile();
          return f !== undefined && (statSync(join(backups, f), { throwIfNoEntry: false })?.size ?? 0) > 6 * 1024 * 1024;
        },
        30_000,
        20,
      );
    } finally {
      child.kill('SIGTERM');
    }
    const result = await done;
    expect(result.code, stderr.slice(-3000)).toBe(0);
    expect(stderr).toMatch(/aborting 1 running backup/);
    expect(stderr).toMatch(/backup failed/);

    const { manifests, files } = checkNoHalfMadeLocal(backups);
    expect(manifests).toEqual([]);
    expect(files.filter((f) => f.startsWith(`${db}_`))).toEqual([]);

    const s3 = services().s3;
    const aws = (...args: string[]) =>
      execFileAsync('aws', [...args, '--endpoint-url', s3.endpoint, '--output', 'json'], { env: awsEnv() });
    const listed = await aws('s3api', 'list-objects-v2', '--bucket', bucket);
    const keys = ((JSON.parse(listed.stdout || '{}') as { Contents?: { Key: string }[] }).Contents ?? []).map((c) => c.Key);
    expect(keys.filter((k) => /\.(dump|globals\.sql|manifest\.json)/.test(k))).toEqual([]);
    const uploads = await aws('s3api', 'list-multipart-uploads', '--bucket', bucket);
    expect((JSON.parse(uploads.stdout || '{}') as { Uploads?: unknown[] }).Uploads ?? []).toEqual([]);
  });
});
