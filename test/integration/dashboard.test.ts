import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { launchChromium, SCREENSHOT_DIR } from '../helpers/browser.js';
import { dashboardSchemas } from '../helpers/dashboard-schemas.js';
import { createDatabase, pgUrl, sql, tempDir } from '../helpers/services.js';

/**
 * The daemon's dashboard in a real browser (Debian's chromium through playwright-core), over real
 * backups made by the real CLI: three jobs — shop (four backups, one of them left incomplete),
 * a database whose name is an HTML script tag, and one whose database does not exist (a failed run).
 */

const SMALL_SQL = 'CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200) g;';
// Markup that would become elements if it ever reached innerHTML. (No "/", "=", "?": pg's
// connection-string parser leaves reserved characters percent-encoded in the database name.)
const HOSTILE = `<script>alert(1)<\\script><b>bold<\\b>`;

interface Daemon {
  base: string;
  child: ChildProcess;
  stderr: () => string;
  stop: () => Promise<CliResult>;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startDaemon(config: string, dir: string, env: Record<string, string> = {}): Promise<Daemon> {
  const { child, done } = spawnCli(['daemon', '--config', config], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    cwd: dir,
    timeoutMs: 300_000,
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return waitFor('the metrics URL', () => /metrics served at (http:\/\/[0-9.]+:\d+)\/metrics/.exec(stderr)?.[1]).then((url) => ({
    base: url.replace('0.0.0.0', '127.0.0.1'),
    child,
    stderr: () => stderr,
    stop: () => {
      child.kill('SIGTERM');
      return done;
    },
  }));
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });

describe('pgbak daemon dashboard (real daemon, real backups, Debian chromium)', () => {
  const dir = tempDir();
  const backups = join(dir, 'backups');
  const config = join(dir, 'pgbak.yaml');
  let shop: string;
  let hostile: string;
  let shopNames: string[] = [];
  let incomplete: string;
  let daemon: Daemon;
  let context: BrowserContext;
  let closeBrowser: () => Promise<void>;

  beforeAll(async () => {
    shop = await createDatabase('dshop', SMALL_SQL);
    hostile = `${HOSTILE}_${shop.slice(-8)}`;
    await sql('postgres', `CREATE DATABASE "${hostile}"`);
    await sql(hostile, SMALL_SQL);
    const missing = `missing_${shop}`;
    const yaml = (extra: string[]) =>
      [
        'defaults:',
        '  backup_schedule: "0 0 1 1 *"',
        `  backup_dir: ${backups}`,
        `  log_file: ${join(dir, 'pgbak.log')}`,
        '  backup_globals: "false"',
        '  backup_compression: "zstd:3"',
        ...extra,
        'jobs:',
        '  - name: shop',
        `    database_url: ${pgUrl(shop)}`,
        '  - name: hostile',
        `    database_url: ${pgUrl(hostile)}`,
        '  - name: broken',
        `    database_url: ${pgUrl(missing)}`,
        '    notify_webhook_url: http://127.0.0.1:9/hook', // nothing listens: the delivery fails
        '',
      ].join('\n');
    writeFileSync(config, yaml(['  metrics_addr: 127.0.0.1:0']));
    writeFileSync(join(dir, 'exposed.yaml'), yaml(['  metrics_addr: 0.0.0.0:0']));
    const env = { env: { PATH: process.env.PATH, HOME: process.env.HOME }, cwd: dir };
    for (let i = 0; i < 4; i++) {
      const r = await runCli(['backup', '--config', config, '--job', 'shop', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      shopNames.unshift(JSON.parse(r.stdout).results[0].name as string);
      await new Promise((res) => setTimeout(res, 1100)); // one backup name per second
    }
    // Much more data: the fifth backup's size is an anomaly against the three good ones before it.
    await sql(shop, 'INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1000, 40000) g');
    const big = await runCli(['backup', '--config', config, '--job', 'shop', '--json'], env);
    expect(big.code, big.stderr).toBe(0);
    shopNames.unshift(JSON.parse(big.stdout).results[0].name as string);
    const tested = await runCli(['verify', '--latest', '--restore-test', '--config', config, '--job', 'shop'], env);
    expect(tested.code, tested.stderr).toBe(0);
    const h = await runCli(['backup', '--config', config, '--job', 'hostile'], env);
    expect(h.code, h.stderr).toBe(0);
    const b = await runCli(['backup', '--config', config, '--job', 'broken'], env);
    expect(b.code).not.toBe(0);
    // The oldest shop backup loses its manifest: incomplete from then on.
    incomplete = shopNames[4]!;
    rmSync(join(backups, readdirSync(backups).find((f) => f.startsWith(incomplete) && f.endsWith('.manifest.json'))!));
    daemon = await startDaemon(config, dir);
    ({ context, close: closeBrowser } = await launchChromium());
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: daemon.base });
  }, 300_000);

  afterAll(async () => {
    await closeBrowser?.();
    if (daemon) {
      const r = await daemon.stop();
      expect(r.code, daemon.stderr().slice(-2000)).toBe(0);
    }
  });

  it('answers the JSON API with documents that match their schema, filtered and paginated on the server', async () => {
    const get = async (path: string) => {
      const res = await fetch(`${daemon.base}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      return res.json();
    };
    const status = dashboardSchemas.status.parse(await get('/api/v1/status'));
    expect(status.jobs.map((j) => [j.job, j.freshness])).toEqual([
      ['shop', 'green'],
      ['hostile', 'green'],
      ['broken', 'red'],
    ]);
    expect(status.jobs[2]!.lastRun?.status).toBe('failed');
    expect(status.jobs[2]!.lastRun?.error?.message).toContain('does not exist');
    const all = dashboardSchemas.backups.parse(await get('/api/v1/backups?job=shop'));
    expect(all.backups.map((b) => b.name)).toEqual(shopNames);
    expect(all.backups.map((b) => b.state)).toEqual(['good', 'good', 'good', 'good', 'incomplete']);
    expect(all.backups[0]!.compression).toMatch(/^zstd:3/);
    const page2 = dashboardSchemas.backups.parse(await get('/api/v1/backups?job=shop&limit=3&page=2'));
    expect([page2.total, page2.pages, page2.backups.map((b) => b.name)]).toEqual([5, 2, [shopNames[3], incomplete]]);
    const good = dashboardSchemas.backups.parse(await get('/api/v1/backups?job=shop&state=good&where=local'));
    expect(good.total).toBe(4);
    const none = dashboardSchemas.backups.parse(await get('/api/v1/backups?job=shop&where=remote'));
    expect(none.total).toBe(0);
    const series = dashboardSchemas.series.parse(await get('/api/v1/series?job=shop'));
    expect(series.points.map((p) => p.name)).toEqual(shopNames.slice(0, 4).reverse());
    expect(series.points.map((p) => p.anomalous)).toEqual([false, false, false, true]);
    const tests = dashboardSchemas.restoreTests.parse(await get('/api/v1/restore-tests?job=shop'));
    expect(tests.tests.map((t) => [t.backup, t.ok])).toEqual([[shopNames[0], true]]);
    const notes = dashboardSchemas.notifications.parse(await get('/api/v1/notifications'));
    expect(notes.deliveries.map((d) => [d.job, d.channel, d.ok])).toEqual([['broken', 'webhook', false]]);
    const conf = dashboardSchemas.config.parse(await get('/api/v1/config'));
    expect(conf.jobs[2]!.settings['NOTIFY_WEBHOOK_URL']).toBe('http://127.0.0.1:9/***');
    const shopUrl = conf.jobs[0]!.settings['DATABASE_URL']!;
    expect(shopUrl).toContain(':***@');
    expect(JSON.stringify(conf)).not.toContain(new URL(pgUrl(shop)).password);
    expect((await fetch(`${daemon.base}/api/v1/backups?job=shop&state=bogus`)).status).toBe(400);
    expect((await fetch(`${daemon.base}/api/v1/backups?job=nosuch`)).status).toBe(404);
    expect((await fetch(`${daemon.base}/api/v1/status`, { method: 'DELETE' })).status).toBe(405);
    // The metrics server's own endpoints are unchanged.
    expect((await fetch(`${daemon.base}/metrics`)).status).toBe(200);
    expect((await fetch(`${daemon.base}/readyz`)).status).toBe(503);
  });

  it('shows each job and its state, the failed run with its cause, and a hostile database name as text', async () => {
    const page = await context.newPage();
    let dialogs = 0;
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    await page.goto(`${daemon.base}/`);
    await page.waitForSelector('body[data-ready="true"]');
    const rows = page.locator('#jobs tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    expect(await rows.locator('td:nth-child(1)').allTextContents()).toEqual(['shop', 'hostile', 'broken']);
    expect(await rows.locator('.pill').allTextContents()).toEqual(['green', 'green', 'red']);
    expect(await rows.nth(1).locator('td:nth-child(2)').textContent()).toBe(hostile);
    expect(await rows.nth(1).locator('td:nth-child(2) b').count()).toBe(0);
    const broken = rows.nth(2);
    expect(await broken.locator('.run').textContent()).toBe('failed');
    expect(await broken.locator('.cause').textContent()).toContain('does not exist');
    expect(await broken.locator('.hint').textContent()).toMatch(/^hint: /);
    expect(await page.locator('script').count()).toBe(1);
    await shot(page, 'overview');
    await page.locator('#jobs button[data-job="hostile"]').click();
    await expect.poll(() => page.locator('#job-title').textContent()).toBe(`Job hostile`);
    // The restore command names the database (shell-quoted) as its target: text again.
    await expect.poll(() => page.locator('#backups .cmd code').textContent()).toContain(`'${hostile}_restore'`);
    expect(await page.locator('#backups b, #jobs b').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(1);
    expect(dialogs).toBe(0);
    expect(violations).toEqual([]);
    await shot(page, 'hostile-job');
    await page.locator('#jobs button[data-job="broken"]').click();
    await expect
      .poll(() => page.locator('#deliveries tbody td').allTextContents())
      .toEqual(['webhook', expect.any(String), 'failed', expect.stringContaining('http://127.0.0.1:9/***')]);
    expect(await page.locator('#deliveries').textContent()).not.toContain('/hook');
    await shot(page, 'failed-job');
    await page.close();
  });

  it('lists every backup, filters and paginates them, draws one chart point per good backup, and copies the restore command', async () => {
    const page = await context.newPage();
    await page.goto(`${daemon.base}/?limit=3`);
    await page.waitForSelector('body[data-ready="true"]');
    const names = () => page.locator('#backups tbody td.name').allTextContents();
    await expect.poll(names).toEqual(shopNames.slice(0, 3));
    expect(await page.locator('#page-info').textContent()).toBe('page 1 of 2 · 5 backups');
    await page.locator('#next').click();
    await expect.poll(names).toEqual([shopNames[3], incomplete]);
    await shot(page, 'backups-page-2');
    await page.locator('#filter-state').selectOption('incomplete');
    await page.locator('#filters button[type="submit"]').click();
    await expect.poll(names).toEqual([incomplete]);
    expect(await page.locator('#page-info').textContent()).toBe('page 1 of 1 · 1 backups');
    await page.locator('#filter-state').selectOption('good');
    await page.locator('#filters button[type="submit"]').click();
    await expect.poll(names).toEqual(shopNames.slice(0, 3));
    expect(await page.locator('#page-info').textContent()).toBe('page 1 of 2 · 4 backups');
    expect(await page.locator('#size-chart circle.size-point').count()).toBe(4);
    expect(await page.locator('#size-chart circle.size-point').evaluateAll((cs) => cs.map((c) => c.getAttribute('data-name')))).toEqual(
      shopNames.slice(0, 4).reverse(),
    );
    expect(await page.locator('#size-chart circle.anomaly').getAttribute('data-name')).toBe(shopNames[0]);
    expect(await page.locator('#restore-tests tbody td').allTextContents()).toEqual([
      shopNames[0],
      expect.any(String),
      'passed',
      expect.any(String),
      'within RTO 4h 0m',
    ]);
    await shot(page, 'backups-and-chart');
    const copy = page.locator(`tr[data-name="${shopNames[0]}"] button.copy`);
    const expected = `pgbak restore ${shopNames[0]} --job shop --target ${shop}_restore --create`;
    expect(await copy.getAttribute('data-command')).toBe(expected);
    await copy.click();
    await expect.poll(() => copy.textContent()).toBe('copied');
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(expected);
    await page.close();
  });

  it('pgbak report --html writes one self-contained file that chromium renders with the same content', async () => {
    const file = join(dir, 'report.html');
    const r = await runCli(['report', '--html', file, '--config', config], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('3 job(s)');
    const page = await context.newPage();
    const requests: string[] = [];
    page.on('request', (req) => requests.push(req.url()));
    await page.goto(`file://${file}?limit=3`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.locator('#jobs tbody td:nth-child(1)').allTextContents()).toEqual(['shop', 'hostile', 'broken']);
    expect(await page.locator('#jobs tbody td:nth-child(2)').nth(1).textContent()).toBe(hostile);
    expect(await page.locator('#jobs .cause').textContent()).toContain('does not exist');
    expect(await page.locator('#backups tbody td.name').allTextContents()).toEqual(shopNames.slice(0, 3));
    await page.locator('#next').click();
    await expect.poll(() => page.locator('#backups tbody td.name').allTextContents()).toEqual([shopNames[3], incomplete]);
    expect(await page.locator('#size-chart circle.size-point').count()).toBe(4);
    expect(await page.locator('#restore-tests tbody tr').count()).toBe(1);
    expect(requests.every((u) => u.startsWith('file://'))).toBe(true);
    await shot(page, 'report-html');
    await page.close();
  });

  it('with DASHBOARD_TOKEN: the API answers 401 without it and 200 with it; the login form sets an HttpOnly SameSite=Strict cookie', async () => {
    const token = 'dash-token-7f3a9c1e';
    const guarded = await startDaemon(config, dir, { DASHBOARD_TOKEN: token });
    try {
      const without = await fetch(`${guarded.base}/api/v1/status`);
      expect(without.status).toBe(401);
      const wrong = await fetch(`${guarded.base}/api/v1/status`, { headers: { Authorization: 'Bearer nope' } });
      expect(wrong.status).toBe(401);
      const withToken = await fetch(`${guarded.base}/api/v1/status`, { headers: { Authorization: `Bearer ${token}` } });
      expect(withToken.status).toBe(200);
      expect(JSON.stringify(await withToken.json())).not.toContain(token);
      expect((await fetch(`${guarded.base}/metrics`)).status).toBe(200);
      const page = await context.newPage();
      await page.goto(`${guarded.base}/`);
      expect(new URL(page.url()).pathname).toBe('/login');
      await page.locator('#token').fill('wrong-token');
      await page.locator('button[type="submit"]').click();
      await expect.poll(() => page.locator('.error').textContent()).toBe('Wrong token.');
      await shot(page, 'login');
      await page.locator('#token').fill(token);
      await page.locator('button[type="submit"]').click();
      await page.waitForSelector('body[data-ready="true"]');
      expect(await page.locator('#jobs tbody tr').count()).toBe(3);
      const cookie = (await context.cookies(guarded.base)).find((c) => c.name === 'pgbak_session')!;
      expect([cookie.httpOnly, cookie.sameSite]).toEqual([true, 'Strict']);
      expect(cookie.value).not.toContain(token);
      await page.close();
    } finally {
      expect((await guarded.stop()).code).toBe(0);
    }
    expect(guarded.stderr()).not.toContain(token);
  });

  it("refreshes its cache after each of the daemon's runs: a new backup shows at once, not at the next 5-minute reread", async () => {
    const running = await startDaemon(config, dir, { BACKUP_RUN_ON_START: 'true' });
    try {
      const total = async () => {
        const page = dashboardSchemas.backups.parse(await (await fetch(`${running.base}/api/v1/backups?job=shop`)).json());
        return page.total;
      };
      await expect.poll(total, { timeout: 60_000, interval: 500 }).toBe(shopNames.length + 1);
      const status = dashboardSchemas.status.parse(await (await fetch(`${running.base}/api/v1/status`)).json());
      expect(status.jobs[0]!.newestGood!.name).not.toBe(shopNames[0]);
    } finally {
      expect((await running.stop()).code).toBe(0);
    }
  });

  it('on a non-loopback METRICS_ADDR without DASHBOARD_TOKEN: the dashboard is refused with an error logged, the metrics still served', async () => {
    const exposed = await startDaemon(join(dir, 'exposed.yaml'), dir);
    try {
      await waitFor('the refusal', () => (exposed.stderr().includes('dashboard not served') ? true : undefined));
      expect(exposed.stderr()).toContain('is not a loopback address and DASHBOARD_TOKEN is not set');
      expect((await fetch(`${exposed.base}/metrics`)).status).toBe(200);
      const page = await fetch(`${exposed.base}/`);
      expect(page.status).toBe(403);
      expect((await fetch(`${exposed.base}/api/v1/status`)).status).toBe(403);
    } finally {
      expect((await exposed.stop()).code).toBe(0);
    }
  });
});
