import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BackupMetrics } from '../../src/metrics/metrics.js';
import { parseListenAddress, startMetricsServer, type MetricsServer } from '../../src/metrics/http-server.js';
import { ConfigError } from '../../src/errors/index.js';

describe('metrics HTTP server', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /metrics in the Prometheus format with the recorded values', async () => {
    const metrics = new BackupMetrics({ countRuns: true });
    server = await startMetricsServer('127.0.0.1:0', metrics, { health: () => ({ ok: true }) });
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

  it('answers /healthz 200 when healthy and 503 with the detail when not', async () => {
    let healthy = true;
    server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), {
      health: () => (healthy ? { ok: true, detail: { lastRun: 'ok' } } : { ok: false, detail: 'shop: last run failed' }),
    });
    const good = await fetch(`${server.url}/healthz`);
    expect(good.status).toBe(200);
    expect(good.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await good.json()).toEqual({ ok: true, detail: { lastRun: 'ok' } });
    healthy = false;
    const bad = await fetch(`${server.url}/healthz`);
    expect(bad.status).toBe(503);
    expect(await bad.json()).toEqual({ ok: false, detail: 'shop: last run failed' });
  });

  it('treats a throwing health check as unhealthy and redacts it', async () => {
    server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), {
      health: async () => {
        throw new Error('cannot reach postgresql://backup:hunter22@db1/shop');
      },
    });
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).toContain('backup:***@db1');
    expect(text).not.toContain('hunter22');
  });

  it('404s other paths and 405s other methods', async () => {
    server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), { health: () => ({ ok: true }) });
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
      await expect(startMetricsServer(`127.0.0.1:${port}`, new BackupMetrics(), { health: () => ({ ok: true }) })).rejects.toMatchObject({
        message: expect.stringContaining('address already in use'),
        hint: expect.stringContaining('METRICS_ADDR'),
      });
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    await expect(startMetricsServer('localhost', new BackupMetrics(), { health: () => ({ ok: true }) })).rejects.toBeInstanceOf(
      ConfigError,
    );
  });

  it('close() stops listening even with a keep-alive connection open', async () => {
    const s = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), { health: () => ({ ok: true }) });
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
