import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, SCREENSHOT_DIR } from '../helpers/browser.js';
import { runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { dashboardSchemas } from '../helpers/dashboard-schemas.js';
import { pitrSetup, startArchivingCluster, switchAndWaitArchived, type PitrSetup } from '../helpers/pitr.js';
import { psql, type PgCluster } from '../helpers/postgres-cluster.js';
import { awsEnv, services, tempDir } from '../helpers/services.js';

const execFileAsync = promisify(execFile);

/**
 * The dashboard's WAL section over a real archive: a cluster with archive_mode=on pushing every
 * segment into MinIO through `pgbak wal-push`, a `pgbak basebackup`, and `pgbak daemon` serving
 * the page in Debian's chromium. Then one archived segment is deleted from the bucket (aws CLI):
 * after the daemon's next run refreshes its cache, the page names the gap.
 */
describe('dashboard: the WAL archive section (real archiving cluster, MinIO, chromium)', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let sysid: string;
  let baseName: string;
  let segments: string[];
  let env: Record<string, string>;
  let base: string;
  let daemon: { stop: () => Promise<CliResult>; stderr: () => string } | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

  beforeAll(async () => {
    setup = await pitrSetup({ encrypt: false });
    pg = await startArchivingCluster(setup);
    sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    await psql(pg, 'postgres', 'CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 5000) g');
    const b = await setup.run(['basebackup', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(b.code, b.stderr).toBe(0);
    baseName = (JSON.parse(b.stdout) as { results: { name: string }[] }).results[0]!.name;
    segments = [];
    for (let i = 0; i < 3; i++) {
      await psql(pg, 'postgres', `INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g`);
      segments.push(await switchAndWaitArchived(pg));
    }
    const dir = tempDir();
    const v = setup.vars;
    env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      DATABASE_URL: pg.url('postgres'),
      PG_DUMP_PATH: join(pg.bindir, 'pg_dump'),
      STORAGE_ENDPOINT: v.STORAGE_ENDPOINT!,
      STORAGE_ACCESS_KEY: v.STORAGE_ACCESS_KEY!,
      STORAGE_SECRET_KEY: v.STORAGE_SECRET_KEY!,
      STORAGE_BUCKET: v.STORAGE_BUCKET!,
      STORAGE_PREFIX: v.STORAGE_PREFIX!,
      STORAGE_REGION: v.STORAGE_REGION!,
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_GLOBALS: 'false',
      LOG_FILE: '',
      WAL_RPO: '1h',
    };
    // A run every 10 s: each run rereads its job for the dashboard (the 5-minute reread is too slow for a test).
    const { child, done } = spawnCli(['daemon'], {
      env: { ...env, METRICS_ADDR: '127.0.0.1:0', BACKUP_SCHEDULE: '*/10 * * * * *' },
      cwd: dir,
      timeoutMs: 300_000,
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const stop = () => {
      child.kill('SIGTERM');
      return done;
    };
    daemon = { stop, stderr: () => stderr };
    const until = Date.now() + 60_000;
    while (!/metrics served at (http:\/\/[0-9.:]+)\/metrics/.test(stderr)) {
      if (Date.now() > until) throw new Error(`the daemon did not serve its dashboard:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    base = /metrics served at (http:\/\/[0-9.:]+)\/metrics/.exec(stderr)![1]!;
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (daemon) {
      const r = await daemon.stop();
      expect(r.code, daemon.stderr().slice(-2000)).toBe(0);
    }
    await pg?.stop();
  });

  const status = async () => dashboardSchemas.status.parse(await (await fetch(`${base}/api/v1/status`)).json());
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  const walRow = (page: Page, row: string) => page.locator(`#wal tr[data-row="${row}"] td`).textContent();

  it('shows the newest archived segment (green against WAL_RPO), the base backup and a complete chain', async () => {
    // The daemon's first run (every 10 s) makes the job's first pg_dump backup: then all is well.
    await expect.poll(async () => (await status()).jobs[0]!.newestGood?.name, { timeout: 60_000, interval: 1000 }).toBeTruthy();
    const s = await status();
    const wal = s.jobs[0]!.wal!;
    expect(wal).toMatchObject({
      location: `s3://${setup.bucket}/pitr/wal/`,
      newestSegment: segments[2],
      freshness: 'green',
      rpoMs: 3600_000,
      newestBase: { name: baseName },
      chain: { state: 'complete', from: baseName, firstGap: null, conflicts: [], problem: null },
    });
    expect(wal.chain.segments).toBeGreaterThanOrEqual(4); // the base backup's own segment(s), then the three switched
    expect(wal.newestBase!.sizeBytes).toBeGreaterThan(0);
    expect(s.jobs[0]!.ok, s.jobs[0]!.reasons.join('\n')).toBe(true);

    const page = await browser!.context.newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-ready="true"]');
    await expect.poll(() => walRow(page, 'newest segment')).toContain(segments[2]);
    expect(await page.locator('#wal tr[data-row="newest segment"] .pill').textContent()).toBe('green');
    expect(await page.locator('#jobs .pill.wal').textContent()).toBe('WAL green');
    expect(await walRow(page, 'newest base backup')).toContain(baseName);
    expect(await page.locator('#wal tr[data-row="chain"] .state').textContent()).toBe('complete');
    expect(await walRow(page, 'chain')).toContain(`from ${baseName}`);
    await shot(page, 'wal-complete');
    await page.close();
  });

  it('after one archived segment is deleted from the bucket, the next refresh shows the gap naming it, on the page and in report --html', async () => {
    const missing = segments[1]!;
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${setup.bucket}/pitr/wal/${sysid}/${missing}~`, '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    const object = stdout.trim().split(/\s+/).pop()!;
    expect(object).toMatch(new RegExp(`^${missing}~[0-9a-f]{64}`));
    await execFileAsync('aws', ['s3', 'rm', `s3://${setup.bucket}/pitr/wal/${sysid}/${object}`, '--endpoint-url', services().s3.endpoint], {
      env: awsEnv(),
    });

    // The daemon's next run (every 10 s) rereads the job.
    await expect.poll(async () => (await status()).jobs[0]!.wal!.chain.state, { timeout: 90_000, interval: 1000 }).toBe('gap');
    const job = (await status()).jobs[0]!;
    expect(job.wal!.chain.firstGap).toBe(missing);
    expect(job.wal!.chain.problem).toBe(`${missing} is missing from the WAL archive: a restore cannot replay past it`);
    expect(job.ok).toBe(false);
    expect(job.reasons).toContain(job.wal!.chain.problem);

    const page = await browser!.context.newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-ready="true"]');
    await expect.poll(() => page.locator('#wal tr[data-row="chain"] .state').textContent()).toBe('GAP');
    expect(await page.locator('#wal tr[data-row="chain"] .cause').textContent()).toContain(`${missing} is missing from the WAL archive`);
    expect(await page.locator('ul.reasons').textContent()).toContain(missing);
    expect(await page.locator('#jobs .pill.wal').textContent()).toBe('WAL gap');
    await shot(page, 'wal-gap');
    await page.close();

    const file = join(setup.dir, 'report.html');
    const r = await runCli(['report', '--html', file], { env, cwd: setup.dir });
    expect(r.code, r.stderr).toBe(0);
    const report = await browser!.context.newPage();
    await report.goto(`file://${file}`);
    await report.waitForSelector('body[data-ready="true"]');
    expect(await walRow(report, 'newest segment')).toContain(segments[2]);
    expect(await report.locator('#wal tr[data-row="chain"] .state').textContent()).toBe('GAP');
    expect(await report.locator('#wal tr[data-row="chain"] .cause').textContent()).toContain(missing);
    await shot(report, 'wal-gap-report');
    await report.close();
  });
});
