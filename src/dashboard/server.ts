import type { IncomingMessage, ServerResponse } from 'node:http';
import { asset, CSP, loginHtml, pageHtml } from './assets.js';
import type { DashboardAuth } from './auth.js';
import { BadQuery, backupsPage, configView, notificationsView, parseBackupsQuery, snapshotOf, statusView } from './query.js';
import type { DashboardData } from './view.js';

/**
 * The dashboard's HTTP answers, beside /metrics and /healthz on the daemon's METRICS_ADDR: the
 * page (`/`), its script and style sheet, the JSON API under `/api/v1/`, and `/login` when a
 * token is set. Read-only: GET and HEAD only (and the login form's POST).
 */

/** Handles a request it knows (true), or leaves it to the next handler (false). */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;

export interface DashboardOptions {
  /** The current data (the daemon's cache). */
  readonly data: () => DashboardData;
  /** Set with DASHBOARD_TOKEN: every page and API answer requires it. */
  readonly auth?: DashboardAuth | undefined;
}

const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * The JSON text of answers that are parts of the cached data as they are (a job's series or restore
 * tests): made once per cache refresh, not per request.
 */
const serialized = new WeakMap<object, string>();

function json(res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
  let text = value !== null && typeof value === 'object' ? serialized.get(value) : undefined;
  if (text === undefined) text = JSON.stringify(value) + '\n';
  send(res, status, 'application/json; charset=utf-8', text, extra);
}

/** Remember the JSON of `value` (a cached object never changed afterwards). */
function keep<T extends object>(value: T): T {
  if (!serialized.has(value)) serialized.set(value, JSON.stringify(value) + '\n');
  return value;
}

async function readForm(req: IncomingMessage, limit = 4096): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > limit) throw new BadQuery('form too large');
  }
  return new URLSearchParams(body);
}

const DASHBOARD_PATH = /^\/(?:$|index\.html$|login$|assets\/|api\/)/;

/** The API answer of `path`, or undefined when there is no such endpoint. */
function api(path: string, params: URLSearchParams, data: DashboardData): { status: number; body: unknown } | undefined {
  const unknownJob = (job: string) => ({ status: 404, body: { error: `no job named ${JSON.stringify(job)}` } });
  const jobParam = () => {
    const job = params.get('job');
    if (!job) throw new BadQuery('job: required (a job name from /api/v1/status)');
    return job;
  };
  switch (path) {
    case '/api/v1/status':
      return { status: 200, body: statusView(data) };
    case '/api/v1/backups': {
      const q = parseBackupsQuery(params);
      const page = backupsPage(data, q);
      return page ? { status: 200, body: page } : unknownJob(q.job);
    }
    case '/api/v1/series':
    case '/api/v1/restore-tests': {
      const job = jobParam();
      const snap = snapshotOf(data, job);
      if (!snap) return unknownJob(job);
      return { status: 200, body: keep(path === '/api/v1/series' ? snap.series : snap.restoreTests) };
    }
    case '/api/v1/notifications':
      return { status: 200, body: notificationsView(data) };
    case '/api/v1/config':
      return { status: 200, body: configView(data) };
    default:
      return undefined;
  }
}

/** The dashboard's request handler. */
export function dashboardHandler(options: DashboardOptions): RequestHandler {
  const { auth } = options;
  return async (req, res, url) => {
    const path = url.pathname;
    if (!DASHBOARD_PATH.test(path)) return false;
    const method = req.method ?? 'GET';
    if (path === '/login' && auth && method === 'POST') {
      const form = await readForm(req).catch(() => new URLSearchParams());
      if (auth.accepts(form.get('token') ?? ''))
        send(res, 303, 'text/plain; charset=utf-8', 'signed in\n', { Location: '/', 'Set-Cookie': auth.sessionCookie() });
      else send(res, 401, 'text/html; charset=utf-8', loginHtml(true));
      return true;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed: the dashboard is read-only\n', { Allow: 'GET, HEAD' });
      return true;
    }
    if (path === '/assets/dashboard.js') send(res, 200, 'text/javascript; charset=utf-8', asset('dashboard.js'));
    else if (path === '/assets/dashboard.css') send(res, 200, 'text/css; charset=utf-8', asset('dashboard.css'));
    else if (path === '/login') {
      if (auth) send(res, 200, 'text/html; charset=utf-8', loginHtml(false));
      else send(res, 303, 'text/plain; charset=utf-8', 'no login needed\n', { Location: '/' });
    } else if (auth && !auth.allows(req)) {
      if (path.startsWith('/api/'))
        json(
          res,
          401,
          { error: 'DASHBOARD_TOKEN required: send Authorization: Bearer <token>' },
          { 'WWW-Authenticate': 'Bearer realm="pgbak"' },
        );
      else send(res, 303, 'text/plain; charset=utf-8', 'sign in at /login\n', { Location: '/login' });
    } else if (path.startsWith('/api/')) {
      let answer: { status: number; body: unknown } | undefined;
      try {
        answer = api(path, url.searchParams, options.data());
      } catch (err) {
        if (!(err instanceof BadQuery)) throw err;
        answer = { status: 400, body: { error: err.message } };
      }
      if (answer) json(res, answer.status, answer.body);
      else json(res, 404, { error: 'no such endpoint: see /api/v1/status, /api/v1/backups?job=…' });
    } else if (path === '/' || path === '/index.html') send(res, 200, 'text/html; charset=utf-8', pageHtml());
    else send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    return true;
  };
}

/** On a non-loopback address without DASHBOARD_TOKEN: the page and the API say why they are not served. */
export function refusedHandler(reason: string): RequestHandler {
  return async (_req, res, url) => {
    if (!DASHBOARD_PATH.test(url.pathname)) return false;
    send(res, 403, 'text/plain; charset=utf-8', `dashboard not served: ${reason}\n/metrics, /healthz and /readyz are.\n`);
    return true;
  };
}
