import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { redact } from '../logging/redact.js';
import { ConfigError, AppError, errnoCode } from '../errors/index.js';
import type { BackupMetrics } from './metrics.js';

/** What `/healthz` or `/readyz` reports: 200 when `ok`, else 503; `detail` is included in the JSON body. */
export interface HealthReport {
  readonly ok: boolean;
  readonly detail?: unknown;
}

export interface MetricsServerOptions {
  /**
   * `/healthz`, liveness: is the process working (for a probe that restarts it when not)? The
   * daemon's is ok while its scheduler runs, whatever its backups look like. A throw counts as not ok.
   */
  readonly live: () => HealthReport | Promise<HealthReport>;
  /**
   * `/readyz`, freshness: is every job's newest good backup within its BACKUP_RPO and its last
   * run ok? Not ok with the problems until then (for monitoring, not for restarts). A throw counts as not ok.
   */
  readonly ready: () => HealthReport | Promise<HealthReport>;
  /**
   * Asked first for every request except /metrics, /healthz and /readyz (the daemon's dashboard):
   * true when it answered, false to leave the request to this server.
   */
  readonly extra?: ((req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>) | undefined;
}

/** A running metrics server. */
export interface MetricsServer {
  /** Base URL, e.g. `http://127.0.0.1:9187` (the real port when 0 was asked for). */
  readonly url: string;
  /** Stop listening and drop open connections. */
  close(): Promise<void>;
}

/** `127.0.0.1:9187`, `[::1]:9187`, `:9187` (all interfaces) → host and port. */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError([`METRICS_ADDR: must be host:port such as 127.0.0.1:9187 or [::1]:9187 (got "${addr}")`]);
  }
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function handle(req: IncomingMessage, res: ServerResponse, metrics: BackupMetrics, options: MetricsServerOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  if (options.extra && path !== '/metrics' && path !== '/healthz' && path !== '/readyz' && (await options.extra(req, res, url))) return;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  if (path === '/metrics') {
    send(res, 200, metrics.contentType, await metrics.text());
  } else if (path === '/healthz' || path === '/readyz') {
    const check = path === '/healthz' ? options.live : options.ready;
    let report: HealthReport;
    try {
      report = await check();
    } catch (err) {
      report = { ok: false, detail: `health check failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    const body = redact(JSON.stringify({ ok: report.ok, detail: report.detail ?? null })) + '\n';
    send(res, report.ok ? 200 : 503, 'application/json; charset=utf-8', body);
  } else if (path === '/') {
    send(
      res,
      200,
      'text/html; charset=utf-8',
      '<html><body><h1>pgbak</h1><p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> (alive) · <a href="/readyz">/readyz</a> (backups fresh)</p></body></html>\n',
    );
  } else {
    send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
  }
}

/**
 * Serve `metrics` at `http://<addr>/metrics` (Prometheus text format), and JSON `/healthz`
 * (liveness) and `/readyz` (freshness), each 200 when ok, 503 otherwise, for the daemon. Resolves once listening; rejects with an
 * AppError when the address is invalid or taken.
 */
export async function startMetricsServer(addr: string, metrics: BackupMetrics, options: MetricsServerOptions): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(addr);
  const server = createServer((req, res) => {
    handle(req, res, metrics, options).catch((err: unknown) => {
      if (!res.headersSent)
        send(res, 500, 'text/plain; charset=utf-8', redact(`internal error: ${err instanceof Error ? err.message : String(err)}`) + '\n');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      const code = errnoCode(err);
      reject(
        new AppError(
          'metrics-listen',
          `cannot serve metrics on ${addr}: ${code === 'EADDRINUSE' ? 'address already in use' : err.message}`,
          {
            cause: err,
            hint: code === 'EADDRINUSE' ? 'another process listens there: choose another METRICS_ADDR port' : 'check METRICS_ADDR',
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
