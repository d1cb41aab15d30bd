import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BackupMetrics } from '../../src/metrics/metrics.js';
import { parseListenAddress, startMetricsServer, type MetricsServer } from '../../src/metrics/http-server.js';
import { ConfigError } from '../../src/errors/index.js';

const OK_CHECKS = { live: () => ({ ok: true }), ready: () => ({ ok: true }) };

describe('metrics HTTP server', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /metrics in the Prometheus format with the recorded values', async () => {
    const metrics = new BackupMetrics({ countRuns: true });
    server = await startMetricsServer('127.0.0.1:0', metrics, OK_CHECKS);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    metrics.recordRun(
      {
        status: 'ok',
        job: 'shop',
        database: 'shop',
        name: 'shop_20261128_170000',
        startedAt: '2026-11-28T17:00:00.000Z',
        finishedAt: '2026-11-28T17:00:10.000Z',
        durationMs: 10_000,
        sizeBytes: 2048,
        sha256: undefined,
        encrypted: false,
        locations: [],
        error: undefined,
        warnings: [],
      },
      { anomaly: false },
    );
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    expect(body).toContain('pgbak_backup_last_size_bytes{job="shop",database="shop"} 2048');
    expect(body).toContain('pgbak_backup_runs_total{job="shop",database="shop",status="ok"} 1');
    expect(body).toContain(
      `pgbak_backup_last_success_timestamp_seconds{job="shop",database="shop"} ${Date.parse('2026-11-28T17:00:10Z') / 1000}`,
    );
  });

  it('answers /healthz from the liveness check and /readyz from the freshness check: 200 when ok, 503 with the detail when not', async () => {
    let alive = true;
    let fresh = false;
    server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), {
      live: () => (alive ? { ok: true, detail: { scheduler: 'running' } } : { ok: false, detail: { scheduler: 'stopped' } }),
      ready: () => (fresh ? { ok: true, detail: { lastRun: 'ok' } } : { ok: false, detail: 'shop: no good backup' }),
    });
    const live = await fetch(`${server.url}/healthz`);
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await live.json()).toEqual({ ok: true, detail: { scheduler: 'running' } });
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ok: false, detail: 'shop: no good backup' });
    fresh = true;
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true, detail: { lastRun: 'ok' } });
    alive = false;
    const dead = await fetch(`${server.url}/healthz`);
    expect(dead.status).toBe(503);
    expect(await dead.json()).toEqual({ ok: false, detail: { scheduler: 'stopped' } });
    const index = await (await fetch(`${server.url}/`)).text();
    expect(index).toContain('/readyz');
  });

  it('treats a throwing check as not ok and redacts it, on both endpoints', async () => {
    const boom = async () => {
      throw new Error('cannot reach postgresql://backup:hunter22@db1/shop');
    };
    server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), { live: boom, ready: boom });
    for (const path of ['/healthz', '/readyz']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(text).toContain('backup:***@db1');
      expect(text).not.toContain('hunter22');
    }
  });

  it('404s other paths and 405s other methods', async () => {
    server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), OK_CHECKS);
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    const post = await fetch(`${server.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('rejects an address in use with a hint, and a malformed address as configuration error', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startMetricsServer(`127.0.0.1:${port}`, new BackupMetrics(), OK_CHECKS)).rejects.toMatchObject({
        message: expect.stringContaining('address already in use'),
        hint: expect.stringContaining('METRICS_ADDR'),
      });
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    await expect(startMetricsServer('localhost', new BackupMetrics(), OK_CHECKS)).rejects.toBeInstanceOf(ConfigError);
  });

  it('close() stops listening even with a keep-alive connection open', async () => {
    const s = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), OK_CHECKS);
    await (await fetch(`${s.url}/metrics`)).text();
    await s.close();
    await expect(fetch(`${s.url}/metrics`)).rejects.toThrow();
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:9187')).toEqual({ host: '127.0.0.1', port: 9187 });
    expect(parseListenAddress('[::1]:9187')).toEqual({ host: '::1', port: 9187 });
    expect(parseListenAddress(':9187')).toEqual({ host: undefined, port: 9187 });
    expect(() => parseListenAddress('127.0.0.1:99999')).toThrow(ConfigError);
    expect(() => parseListenAddress('9187')).toThrow(/host:port/);
  });
});
