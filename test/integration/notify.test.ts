import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BackupResult } from '../../src/model/backup-result.js';
import { MemoryLogger } from '../../src/logging/logger.js';
import { notifyRun, pingStart, type NotifySettings } from '../../src/notify/notifier.js';
import { pingUrlFor } from '../../src/notify/ping.js';
import { judgeSize } from '../../src/catalog/size-trend.js';
import { MailSink } from '../helpers/notify-sinks.js';

const SMTP_USER = 'pgbak-mailer';
const SMTP_PASS = 'Sm7p-P@ss:w0rd!';
const DB_PASS = 'Db-s3cret-9';

interface Received {
  method: string;
  path: string;
  body: string;
  contentType: string | undefined;
  authorization: string | undefined;
}

/** A real HTTP server on loopback that records requests in arrival order and answers `status(path)`. */
class HttpSink {
  readonly requests: Received[] = [];
  status: (path: string) => number = () => 200;
  private server: HttpServer = createHttpServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      this.requests.push({
        method: req.method ?? '',
        path,
        body: Buffer.concat(chunks).toString('utf8'),
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
      });
      const status = this.status(path);
      res.writeHead(status, { 'Content-Type': 'text/plain' });
      res.end(status < 300 ? 'OK' : 'rejected by test');
    });
  });
  base = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A TCP server that accepts connections and never says a word (a hung SMTP or HTTP peer). */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server: NetServer = createNetServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const failedRun: BackupResult = {
  status: 'failed',
  job: 'shop',
  database: 'shop',
  name: undefined,
  startedAt: '2026-11-28T17:00:00.000Z',
  finishedAt: '2026-11-28T17:01:30.000Z',
  durationMs: 90_000,
  sizeBytes: undefined,
  sha256: undefined,
  encrypted: false,
  locations: [],
  error: {
    code: 'database',
    message: `connection to postgresql://backup:${DB_PASS}@db1:5432/shop refused`,
    hint: 'check DATABASE_URL and that PostgreSQL is running',
    exitCode: 5,
  },
  warnings: [`SMTP login was ${SMTP_USER} / ${SMTP_PASS}`],
};

const okRun: BackupResult = {
  ...failedRun,
  status: 'ok',
  name: 'shop_20261128_170000',
  sizeBytes: 5 * 1024 * 1024,
  sha256: 'c0ffee'.repeat(10) + 'abcd',
  encrypted: true,
  locations: ['/var/backups/db/shop_20261128_170000.dump.gpg', 's3://sweet-backups/backups/shop_20261128_170000.dump.gpg'],
  error: undefined,
  warnings: [],
};

const context = { host: 'db1', lastGoodAgeMs: 26 * 3_600_000, location: '/var/backups/db + s3://sweet-backups/backups/' };
const fast = { attempts: 3, delaysMs: [20, 20], timeoutMs: 2000 };

describe('notifications', () => {
  const mail = new MailSink({ user: SMTP_USER, pass: SMTP_PASS });
  const http = new HttpSink();
  beforeAll(async () => {
    await Promise.all([mail.start(), http.start()]);
  });
  afterAll(async () => {
    await Promise.all([mail.close(), http.close()]);
  });
  beforeEach(() => {
    mail.raw.length = 0;
    mail.logins.length = 0;
    http.requests.length = 0;
    http.status = () => 200;
  });

  const settings = (over: Partial<NotifySettings> = {}): NotifySettings => ({
    email: ['ops@example.com', 'dba@example.com'],
    on: 'failure',
    smtpUrl: mail.urlWith(),
    from: 'pgbak@db1.example.com',
    webhookUrl: `${http.base}/hook`,
    pingUrl: `${http.base}/ping/abc-123`,
    ...over,
  });

  it('e-mails a failure with status, database, host, error, hint, timing and last good backup, without passwords', async () => {
    const logger = new MemoryLogger();
    const outcomes = await notifyRun({
      result: failedRun,
      settings: settings({ webhookUrl: undefined, pingUrl: undefined }),
      context,
      logger,
    });
    expect(outcomes).toEqual([{ channel: 'email', ok: true, attempts: 1 }]);
    expect(mail.logins).toEqual([{ username: SMTP_USER, password: SMTP_PASS }]); // it really logged in with the password
    expect(mail.raw).toHaveLength(1);
    const raw = mail.raw[0]!.toString('utf8');
    for (const secret of [SMTP_PASS, encodeURIComponent(SMTP_PASS), DB_PASS]) expect(raw).not.toContain(secret);
    const [msg] = await mail.parsed();
    expect(msg!.subject).toBe('[pgbak] FAILED backup of shop on db1');
    expect(msg!.from?.text).toBe('pgbak@db1.example.com');
    expect((Array.isArray(msg!.to) ? msg!.to : [msg!.to]).map((a) => a?.text).join(',')).toBe('ops@example.com, dba@example.com');
    const text = msg!.text ?? '';
    expect(text).toContain('FAILED: backup of database shop on db1');
    expect(text).toMatch(/Error: +connection to postgresql:\/\/backup:\*\*\*@db1:5432\/shop refused \[database, exit code 5\]/);
    expect(text).toMatch(/Hint: +check DATABASE_URL and that PostgreSQL is running/);
    expect(text).toMatch(/Duration: +1m 30s/);
    expect(text).toMatch(/Stored at: +nowhere/);
    expect(text).toMatch(/Destination: +\/var\/backups\/db \+ s3:\/\/sweet-backups\/backups\//);
    expect(text).toMatch(/Last good backup: +26h ago/);
    expect(text).toContain(`SMTP login was ${SMTP_USER} / ***`);
    expect(msg!.headers.get('auto-submitted')).toBe('auto-generated');
  });

  it('e-mails a success only with NOTIFY_ON=always, with size and locations', async () => {
    const logger = new MemoryLogger();
    const quiet = await notifyRun({
      result: okRun,
      settings: settings({ webhookUrl: undefined, pingUrl: undefined }),
      context: { host: 'db1' },
      logger,
    });
    expect(quiet).toEqual([]);
    expect(mail.raw).toHaveLength(0);
    const loud = await notifyRun({
      result: okRun,
      settings: settings({ on: 'always', webhookUrl: undefined, pingUrl: undefined }),
      context: { host: 'db1' },
      logger,
    });
    expect(loud).toEqual([{ channel: 'email', ok: true, attempts: 1 }]);
    const [msg] = await mail.parsed();
    expect(msg!.subject).toBe('[pgbak] OK backup of shop on db1');
    expect(msg!.text).toMatch(/Size: +5\.0 MiB \(5242880 bytes\)/);
    expect(msg!.text).toMatch(
      /Stored at: +\/var\/backups\/db\/shop_20261128_170000\.dump\.gpg\n {18}s3:\/\/sweet-backups\/backups\/shop_20261128_170000\.dump\.gpg\n/,
    );
    expect(msg!.text).toMatch(/Backup: +shop_20261128_170000 \(encrypted\)/);
    expect(msg!.text).toMatch(/Last good backup: +this one/);
  });

  it('e-mails a size anomaly even with NOTIFY_ON=failure', async () => {
    const sizeJudgement = judgeSize(okRun.sizeBytes!, [50e6, 52e6, 51e6], 0.5);
    expect(sizeJudgement.anomalous).toBe(true);
    const outcomes = await notifyRun({
      result: okRun,
      settings: settings({ webhookUrl: undefined, pingUrl: undefined }),
      context: { host: 'db1', sizeJudgement },
      logger: new MemoryLogger(),
    });
    expect(outcomes.map((o) => o.channel)).toEqual(['email']);
    const [msg] = await mail.parsed();
    expect(msg!.subject).toBe('[pgbak] OK backup of shop on db1 (size anomaly)');
    expect(msg!.text).toMatch(/Size check: +ANOMALY: size 5\.0 MiB is 89\.7% smaller than the median 48\.6 MiB of the last 3 good backups/);
  });

  it('sends start, then the webhook and the success ping; a failure pings /fail with the error', async () => {
    const logger = new MemoryLogger();
    const s = settings({ email: [] });
    expect(await pingStart(s.pingUrl, logger)).toEqual({ channel: 'ping', ok: true, attempts: 1 });
    const okOutcomes = await notifyRun({ result: okRun, settings: s, context, logger });
    expect(okOutcomes).toEqual([
      { channel: 'webhook', ok: true, attempts: 1 },
      { channel: 'ping', ok: true, attempts: 1 },
    ]);
    await pingStart(s.pingUrl, logger);
    await notifyRun({ result: failedRun, settings: s, context, logger });

    const pings = http.requests.filter((r) => r.path.startsWith('/ping/')).map((r) => `${r.method} ${r.path}`);
    expect(pings).toEqual(['GET /ping/abc-123/start', 'GET /ping/abc-123', 'GET /ping/abc-123/start', 'POST /ping/abc-123/fail']);
    const failPing = http.requests.find((r) => r.path.endsWith('/fail'))!;
    expect(failPing.body).toContain('[pgbak] FAILED backup of shop on db1');
    expect(failPing.body).toContain('connection to postgresql://backup:***@db1:5432/shop refused');
    expect(failPing.body).not.toContain(DB_PASS);

    const hooks = http.requests.filter((r) => r.path === '/hook');
    expect(hooks).toHaveLength(2);
    expect(hooks.every((h) => h.method === 'POST' && h.contentType === 'application/json')).toBe(true);
    const [okHook, failHook] = hooks.map((h) => JSON.parse(h.body) as Record<string, unknown>);
    expect(okHook).toMatchObject({
      event: 'backup',
      status: 'ok',
      job: 'shop',
      database: 'shop',
      host: 'db1',
      sizeBytes: 5 * 1024 * 1024,
      locations: okRun.locations,
      lastGoodAgeMs: 26 * 3_600_000,
    });
    expect(okHook!.text).toMatch(/^✅ \[pgbak\] OK backup of shop on db1\n/);
    expect(okHook!.content).toBe(okHook!.text);
    expect(failHook).toMatchObject({ status: 'failed', error: { code: 'database', exitCode: 5 } });
    expect(failHook!.text).toMatch(/^❌ \[pgbak\] FAILED backup of shop on db1\nError: connection to/);
    for (const h of hooks) {
      expect(h.body).not.toContain(DB_PASS);
      expect(h.body).not.toContain(SMTP_PASS);
    }
  });

  it('pings a partial run as a failure and avoids double slashes', async () => {
    await notifyRun({
      result: { ...okRun, status: 'partial' },
      settings: settings({ email: [], webhookUrl: undefined, pingUrl: `${http.base}/ping/abc-123/` }),
      context,
      logger: new MemoryLogger(),
    });
    await pingStart(`${http.base}/ping/abc-123/`, new MemoryLogger());
    expect(http.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /ping/abc-123/fail', 'GET /ping/abc-123/start']);
    expect(pingUrlFor('https://hc-ping.com/uuid/?rid=1', 'success')).toBe('https://hc-ping.com/uuid?rid=1');
    expect(pingUrlFor('https://hc-ping.com/uuid?rid=1', 'fail')).toBe('https://hc-ping.com/uuid/fail?rid=1');
  });

  it('a ping URL with user:pass@ is sent with HTTP Basic authentication, never failing on the credentials', async () => {
    const logger = new MemoryLogger();
    const pingUrl = `${http.base.replace('http://', 'http://pinger:s%3Acret@')}/ping/auth`;
    expect(await pingStart(pingUrl, logger)).toEqual({ channel: 'ping', ok: true, attempts: 1 });
    const [req] = http.requests;
    expect(req).toMatchObject({
      method: 'GET',
      path: '/ping/auth/start',
      authorization: `Basic ${Buffer.from('pinger:s:cret').toString('base64')}`,
    });
  });

  it('notifies nothing for a dry run', async () => {
    const outcomes = await notifyRun({
      result: { ...failedRun, status: 'dry-run' },
      settings: settings({ on: 'always' }),
      context,
      logger: new MemoryLogger(),
    });
    expect(outcomes).toEqual([]);
    expect(mail.raw).toHaveLength(0);
    expect(http.requests).toHaveLength(0);
  });

  it('unreachable SMTP, webhook and ping: warnings and ok:false, no throw, bounded time (default retries)', async () => {
    const port = await closedPort();
    const logger = new MemoryLogger();
    const started = Date.now();
    const outcomes = await notifyRun({
      result: failedRun,
      settings: settings({
        smtpUrl: `smtp://u:${SMTP_PASS}@127.0.0.1:${port}`,
        webhookUrl: `http://127.0.0.1:${port}/hook`,
        pingUrl: `http://127.0.0.1:${port}/p`,
      }),
      context,
      logger,
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(10_000);
    expect(elapsed).toBeGreaterThanOrEqual(2000); // it did wait between the 3 attempts
    expect(outcomes.map((o) => [o.channel, o.ok, o.attempts])).toEqual([
      ['email', false, 3],
      ['webhook', false, 3],
      ['ping', false, 3],
    ]);
    for (const o of outcomes) expect(o.error).toMatch(/ECONNREFUSED/);
    expect(outcomes[1]!.error).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+\/hook: connection refused \(ECONNREFUSED\)$/);
    const warnings = logger.lines.filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.fields.channel).sort()).toEqual(['email', 'ping', 'webhook']);
    for (const w of warnings) {
      expect(w.msg).toMatch(/could not be delivered: .*ECONNREFUSED/);
      expect(w.fields.hint).toMatch(/NOTIFY_/);
    }
    expect(JSON.stringify(logger.lines)).not.toContain(SMTP_PASS);
    expect(await pingStart(`http://127.0.0.1:${port}/p`, logger, fast)).toMatchObject({ channel: 'ping', ok: false });
  });

  it('a peer that accepts but never answers is cut off by the per-attempt timeout', async () => {
    const silent = await silentServer();
    try {
      const logger = new MemoryLogger();
      const started = Date.now();
      const outcomes = await notifyRun({
        result: failedRun,
        settings: settings({
          smtpUrl: `smtp://127.0.0.1:${silent.port}`,
          webhookUrl: `http://127.0.0.1:${silent.port}/hook`,
          pingUrl: undefined,
        }),
        context,
        logger,
        retry: { attempts: 2, delaysMs: [10], timeoutMs: 400 },
      });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(outcomes).toMatchObject([
        { channel: 'email', ok: false, attempts: 2 },
        {
          channel: 'webhook',
          ok: false,
          attempts: 2,
          error: expect.stringMatching(/no answer from http:\/\/127\.0\.0\.1:\d+\/hook within 0\.4s/),
        },
      ]);
      expect(outcomes[0]!.error).toMatch(/SMTP .*127\.0\.0\.1:\d+.*(within 0\.4s|Greeting never received|timeout)/i);
    } finally {
      await silent.close();
    }
  });

  it('retries a 503 but not a 400 or a refused SMTP login', async () => {
    const logger = new MemoryLogger();
    http.status = (p) => (p === '/hook' ? 503 : 400);
    const outcomes = await notifyRun({
      result: failedRun,
      settings: settings({ smtpUrl: mail.urlWith(SMTP_USER, 'wrong-password'), email: ['ops@example.com'] }),
      context,
      logger,
      retry: fast,
    });
    expect(outcomes).toMatchObject([
      { channel: 'email', ok: false, attempts: 1, error: expect.stringMatching(/Invalid username or password.*EAUTH/) },
      { channel: 'webhook', ok: false, attempts: 3, error: expect.stringMatching(/answered HTTP 503.*rejected by test/) },
      { channel: 'ping', ok: false, attempts: 1, error: expect.stringMatching(/answered HTTP 400/) },
    ]);
    expect(outcomes[0]!.error).not.toContain('wrong-password');
    expect(mail.raw).toHaveLength(0);
    expect(http.requests.filter((r) => r.path === '/hook')).toHaveLength(3);
  });

  it('recovers when a later attempt succeeds', async () => {
    let calls = 0;
    http.status = () => (++calls === 1 ? 502 : 200);
    const logger = new MemoryLogger();
    const outcomes = await notifyRun({
      result: okRun,
      settings: settings({ email: [], pingUrl: undefined }),
      context,
      logger,
      retry: fast,
    });
    expect(outcomes).toEqual([{ channel: 'webhook', ok: true, attempts: 2 }]);
    expect(logger.lines.some((l) => l.level === 'info' && /attempt 1\/3.*HTTP 502/.test(l.msg))).toBe(true);
    expect(logger.lines.some((l) => l.level === 'warn')).toBe(false);
  });
});
