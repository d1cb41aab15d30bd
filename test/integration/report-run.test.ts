import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupResult } from '../../src/model/backup-result.js';
import { reportRun } from '../../src/api/report-run.js';
import { lastRunKey, readLastRun } from '../../src/catalog/last-run.js';
import { loadJobs } from '../../src/config/config-file.js';
import { MemoryLogger } from '../../src/logging/logger.js';
import { LocalBackend } from '../../src/storage/local-backend.js';
import { writeFakeBackup } from '../helpers/fake-backups.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { closedPort, HttpSink, MailSink, parseExposition, sample } from '../helpers/notify-sinks.js';
import { createDatabase, services, tempDir } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

const SMALL_SQL = `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;`;
const WRONG_PASSWORD = 'Wr0ng-Passw0rd-xyz';

/** `promtool check metrics` on the text, when promtool is installed (an independent parser). */
function promtoolCheck(text: string): Promise<{ ok: boolean; output: string } | undefined> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(undefined);
      resolve({ ok: !err, output: stdout + stderr });
    });
    child.stdin?.end(text);
  });
}

describe('reporting of real pgbak backup runs', () => {
  let db: string;
  let mail: MailSink;
  let http: HttpSink;

  beforeAll(async () => {
    db = await createDatabase('report', SMALL_SQL);
    mail = await new MailSink().start();
    http = await new HttpSink().start();
  });
  afterAll(async () => {
    await mail?.close();
    await http?.close();
  });

  it('pings /start then success, then on a failed run mails the failure, pings /start then /fail and posts the webhook; the metrics textfile follows', async () => {
    const dir = tempDir();
    const promFile = join(dir, 'textfile', 'pgbak.prom');
    const env = backupEnv({
      database: db,
      dir,
      extra: {
        NOTIFY_EMAIL: 'ops@example.test',
        NOTIFY_SMTP_URL: mail.url,
        NOTIFY_FROM: 'pgbak@example.test',
        NOTIFY_WEBHOOK_URL: `${http.base}/hook/good`,
        NOTIFY_PING_URL: `${http.base}/ping/good`,
        METRICS_TEXTFILE: promFile,
      },
    });

    // 1. A good run: /start, then the bare URL; no mail (NOTIFY_ON=failure); metrics status 1 and size.
    const good = await runCli(['backup', '--json'], { env });
    expect(good.code, good.stderr).toBe(0);
    const okResult = jsonResult(good.stdout) as BackupResult;
    expect(http.under('/ping/good').map((r) => `${r.method} ${r.path}`)).toEqual(['GET /ping/good/start', 'GET /ping/good']);
    const hooks = http.under('/hook/good');
    expect(hooks).toHaveLength(1);
    expect(http.requests.indexOf(hooks[0]!)).toBeGreaterThan(http.requests.findIndex((r) => r.path === '/ping/good/start'));
    expect(JSON.parse(hooks[0]!.body)).toMatchObject({ status: 'ok', name: okResult.name, sizeBytes: okResult.sizeBytes, event: 'backup' });
    expect(mail.raw).toHaveLength(0);

    const afterGood = readFileSync(promFile, 'utf8');
    const check = await promtoolCheck(afterGood);
    if (check) expect(check.ok, check.output).toBe(true);
    let samples = parseExposition(afterGood);
    const labels = { job: db, database: db };
    expect(sample(samples, 'pgbak_backup_last_status', labels)).toBe(1);
    expect(sample(samples, 'pgbak_backup_last_size_bytes', labels)).toBe(okResult.sizeBytes);
    const lastSuccess = sample(samples, 'pgbak_backup_last_success_timestamp_seconds', labels)!;
    expect(lastSuccess * 1000).toBe(Date.parse(okResult.finishedAt));

    // 2. A failed run (wrong password) with its own ping and webhook paths.
    const { pg } = services();
    const failed = await runCli(['backup', '--json'], {
      env: {
        ...env,
        DATABASE_URL: `postgresql://${pg.user}:${WRONG_PASSWORD}@${pg.host}:${pg.port}/${db}`,
        NOTIFY_WEBHOOK_URL: `${http.base}/hook/bad`,
        NOTIFY_PING_URL: `${http.base}/ping/bad`,
      },
    });
    expect(failed.code, failed.stderr).toBe(5);
    const failedResult = jsonResult(failed.stdout) as BackupResult;
    expect(failedResult.error?.code).toBe('db-auth-failed');

    const mails = await mail.parsed();
    expect(mails).toHaveLength(1);
    const m = mails[0]!;
    expect(m.subject).toMatch(new RegExp(`FAILED backup of ${db}`));
    expect(m.to && !Array.isArray(m.to) ? m.to.text : '').toContain('ops@example.test');
    expect(m.text).toContain('authentication failed');
    expect(m.text).toContain('check the user and password');
    expect(m.text).not.toContain(WRONG_PASSWORD);

    const pings = http.under('/ping/bad');
    expect(pings.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /ping/bad/start', 'POST /ping/bad/fail']);
    expect(pings[1]!.body).toContain('authentication failed');
    const badHooks = http.under('/hook/bad');
    expect(badHooks).toHaveLength(1);
    const start = http.requests.indexOf(pings[0]!);
    expect(http.requests.indexOf(badHooks[0]!)).toBeGreaterThan(start);
    expect(http.requests.indexOf(pings[1]!)).toBeGreaterThan(start);
    const payload = JSON.parse(badHooks[0]!.body);
    expect(payload).toMatchObject({ status: 'failed', error: { code: 'db-auth-failed' } });
    expect(payload.text).toContain('FAILED');
    expect(badHooks[0]!.body).not.toContain(WRONG_PASSWORD);

    // The textfile: status 0 now, the last success kept from the good run.
    samples = parseExposition(readFileSync(promFile, 'utf8'));
    expect(sample(samples, 'pgbak_backup_last_status', labels)).toBe(0);
    expect(sample(samples, 'pgbak_backup_last_success_timestamp_seconds', labels)).toBe(lastSuccess);
    expect(sample(samples, 'pgbak_backup_last_run_timestamp_seconds', labels)! * 1000).toBe(Date.parse(failedResult.finishedAt));

    // The last-run record holds the failed run, redacted.
    const recordText = readFileSync(join(dir, 'backups', lastRunKey(db)), 'utf8');
    expect(recordText).not.toContain(WRONG_PASSWORD);
    const record = await readLastRun(new LocalBackend(join(dir, 'backups')), db);
    expect(record?.result).toMatchObject({ status: 'failed', error: { code: 'db-auth-failed' } });
  });

  it('an unreachable SMTP server and webhook do not fail a good backup: they become warnings', async () => {
    const dir = tempDir();
    const [smtpPort, hookPort] = [await closedPort(), await closedPort()];
    const env = backupEnv({
      database: db,
      dir,
      extra: {
        NOTIFY_EMAIL: 'ops@example.test',
        NOTIFY_ON: 'always',
        NOTIFY_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
        NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hook`,
      },
    });
    const r = await runCli(['backup', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout) as BackupResult;
    expect(result.status).toBe('ok');
    expect(result.warnings.some((w) => w.startsWith('email notification not delivered'))).toBe(true);
    expect(result.warnings.some((w) => w.startsWith('webhook notification not delivered'))).toBe(true);
    expect(r.stderr).toMatch(/could not be delivered/);
  });
});

describe('size anomaly on crafted histories', () => {
  const T0 = Date.parse('2026-11-20T00:00:00Z');

  async function setup(history: number) {
    const dir = tempDir();
    const backups = new LocalBackend(join(dir, 'backups'));
    for (let i = 0; i < history; i++) {
      await writeFakeBackup(backups, { prefix: 'shop', time: new Date(T0 + i * 6 * 3_600_000), body: 'x'.repeat(1000 + i) });
    }
    const { jobs } = loadJobs({
      cwd: dir,
      envFile: false,
      env: {
        DATABASE_URL: 'postgresql://u@127.0.0.1:1/shop',
        BACKUP_DIR: join(dir, 'backups'),
        METRICS_TEXTFILE: join(dir, 'pgbak.prom'),
        BACKUP_SIZE_TOLERANCE: '50%',
      },
    });
    return { dir, job: jobs[0]!, backups };
  }
  const run = (sizeBytes: number): BackupResult => ({
    status: 'ok',
    job: 'shop',
    database: 'shop',
    name: 'shop_20261128_120000',
    startedAt: '2026-11-28T12:00:00.000Z',
    finishedAt: '2026-11-28T12:00:05.000Z',
    durationMs: 5000,
    sizeBytes,
    sha256: 'a'.repeat(64),
    encrypted: false,
    locations: [],
    error: undefined,
    warnings: [],
  });

  it('flags a backup far larger than the median of the earlier good ones: warning, log line and metric', async () => {
    const { dir, job, backups } = await setup(4);
    const logger = new MemoryLogger();
    const result = await reportRun({ job, result: run(5000), logger });
    expect(result.sizeAnomaly?.anomalous).toBe(true);
    expect(result.warnings[0]).toMatch(/size anomaly: .*larger than the median/);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.startsWith('size anomaly'))).toBe(true);
    const samples = parseExposition(readFileSync(join(dir, 'pgbak.prom'), 'utf8'));
    expect(sample(samples, 'pgbak_backup_size_anomaly', { database: 'shop' })).toBe(1);
    // The record went next to the backups, and the catalog does not count it as a backup.
    expect((await readLastRun(backups, 'shop'))?.result.warnings[0]).toMatch(/^size anomaly/);
  });

  it('accepts a size within the tolerance, and makes no judgement with fewer than 3 earlier backups', async () => {
    const normal = await setup(4);
    const ok = await reportRun({ job: normal.job, result: run(1400), logger: new MemoryLogger() });
    expect(ok.sizeAnomaly).toBeUndefined();
    expect(
      sample(parseExposition(readFileSync(join(normal.dir, 'pgbak.prom'), 'utf8')), 'pgbak_backup_size_anomaly', { database: 'shop' }),
    ).toBe(0);

    const young = await setup(2);
    const none = await reportRun({ job: young.job, result: run(50_000), logger: new MemoryLogger() });
    expect(none.sizeAnomaly).toBeUndefined();
  });

  it('carries the newest passed restore test of the catalog into the metrics textfile', async () => {
    const { dir, job, backups } = await setup(0);
    const at = (h: number) => new Date(T0 + h * 3_600_000);
    const passed = await writeFakeBackup(backups, { prefix: 'shop', time: at(0) });
    const failedTest = await writeFakeBackup(backups, { prefix: 'shop', time: at(6) });
    const record = (name: string, ok: boolean, verifiedAt: Date, durationMs: number) =>
      JSON.stringify({
        format: 'pgbak-verification',
        version: 1,
        name,
        verifiedAt: verifiedAt.toISOString(),
        ok,
        kind: 'restore-test',
        durationMs,
        checks: [],
      });
    await backups.put(`${passed.name}.verify.json`, Readable.from([record(passed.name, true, at(1), 4200)]));
    await backups.put(`${failedTest.name}.verify.json`, Readable.from([record(failedTest.name, false, at(7), 900)]));
    await reportRun({ job, result: run(1000), logger: new MemoryLogger() });
    const samples = parseExposition(readFileSync(join(dir, 'pgbak.prom'), 'utf8'));
    expect(sample(samples, 'pgbak_restore_test_last_success_timestamp_seconds', { database: 'shop' })).toBe(at(1).getTime() / 1000);
    expect(sample(samples, 'pgbak_restore_test_last_duration_seconds', { database: 'shop' })).toBe(4.2);
  });

  it('a bad METRICS_TEXTFILE path is a warning, not a failure', async () => {
    const { job } = await setup(0);
    const bad = { ...job, metrics: { ...job.metrics, textfile: '/proc/pgbak-cannot-write-here.prom' } };
    const result = await reportRun({ job: bad, result: run(1000), logger: new MemoryLogger() });
    expect(result.status).toBe('ok');
    expect(result.warnings.some((w) => w.startsWith('metrics not written'))).toBe(true);
  });
});
