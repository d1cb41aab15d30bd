import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { launchChromium, SCREENSHOT_DIR } from '../helpers/browser.js';
import { dashboardSchemas } from '../helpers/dashboard-schemas.js';
import { waitFor } from '../helpers/processes.js';
import { createBucket, createDatabase, services, tempDir } from '../helpers/services.js';

const SMALL_SQL = 'CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g;';

describe('pgbak daemon on a monitoring host (storage settings only)', () => {
  it('shows every database that two servers back up into the bucket, and runs no backup', async () => {
    const bucket = await createBucket('monitor');
    const [shop, crm] = [await createDatabase('mshop', SMALL_SQL), await createDatabase('mcrm', SMALL_SQL)];
    const names: Record<string, string> = {};
    for (const database of [shop, crm]) {
      // Each "server" has its own BACKUP_DIR and backs up into the same bucket prefix.
      const dir = tempDir();
      const r = await runCli(['backup', '--json'], { env: backupEnv({ database, dir, bucket }), cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      names[database] = JSON.parse(r.stdout).results[0].name as string;
    }
    const host = tempDir();
    const s3 = services().s3;
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      STORAGE_ENDPOINT: s3.endpoint,
      STORAGE_ACCESS_KEY: s3.accessKey,
      STORAGE_SECRET_KEY: s3.secretKey,
      STORAGE_BUCKET: bucket,
      BACKUP_DIR: join(host, 'backups'),
      LOG_FILE: '',
      METRICS_ADDR: '127.0.0.1:0',
    };
    const { child, done } = spawnCli(['daemon'], { env, cwd: host, timeoutMs: 120_000 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const { context, close } = await launchChromium();
    try {
      const base = await waitFor(() => /dashboard at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr)?.[1], 30_000, 'the dashboard URL');
      expect(stderr).toContain('monitoring 2 database(s) found in storage');
      const status = dashboardSchemas.status.parse(await (await fetch(`${base}/api/v1/status`)).json());
      expect(status.jobs.map((j) => j.database).sort()).toEqual([crm, shop].sort());
      for (const j of status.jobs) {
        expect([j.freshness, j.newestGood?.name, j.newestGood?.locations, j.schedule]).toEqual([
          'green',
          names[j.database],
          ['remote'],
          null,
        ]);
        expect(j.where.bucket).toBe(`s3://${bucket}/backups/`);
      }
      const backups = dashboardSchemas.backups.parse(await (await fetch(`${base}/api/v1/backups?job=${encodeURIComponent(shop)}`)).json());
      expect(backups.backups.map((b) => [b.name, b.state, b.locations])).toEqual([[names[shop], 'good', ['remote']]]);
      const config = dashboardSchemas.config.parse(await (await fetch(`${base}/api/v1/config`)).json());
      expect(config.jobs[0]!.settings['STORAGE_SECRET_KEY']).toBe('***');
      expect(JSON.stringify(config)).not.toContain(s3.secretKey);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);

      const page = await context.newPage();
      await page.goto(`${base}/`);
      await page.waitForSelector('body[data-ready="true"]');
      expect((await page.locator('#jobs tbody td:nth-child(2)').allTextContents()).sort()).toEqual([crm, shop].sort());
      expect(await page.locator('#jobs tbody td:nth-child(7)').allTextContents()).toEqual(['not configured here', 'not configured here']);
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'monitor.png'), fullPage: true });
    } finally {
      await close();
      child.kill('SIGTERM');
    }
    const result = await done;
    expect(result.code, stderr.slice(-2000)).toBe(0);
    expect(stderr).not.toContain('backup started');
  });
});
