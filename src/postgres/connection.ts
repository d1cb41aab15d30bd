import { createRequire } from 'node:module';
import type Pg from 'pg';
import { redact } from '../logging/redact.js';
import { AppError, DatabaseError, errnoCode, messageOf } from '../errors/index.js';

/**
 * node-postgres, loaded without its Cloudflare probe. When it loads, pg asks whether it runs in a
 * Cloudflare Worker (lib/stream.js). Without a global `navigator` (node 20 has none, 21 and later
 * do), it builds a `Response`, which loads node's whole fetch implementation (undici): ~35 ms of
 * every run's start, before pg_dump can start (docs/performance.md, "Start-up of a backup"). A
 * `navigator` that exists only while pg loads answers the probe; a runtime with its own is left alone.
 */
function loadPg(): typeof Pg {
  const require = createRequire(import.meta.url);
  if ('navigator' in globalThis) return require('pg') as typeof Pg;
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${process.versions.node}` }, configurable: true });
  try {
    return require('pg') as typeof Pg;
  } finally {
    delete (globalThis as { navigator?: unknown }).navigator;
  }
}
const pg = loadPg();

/**
 * How pg_dump and friends are told where to connect: a `--dbname` URL WITHOUT its password,
 * and the password in the child's environment (PGPASSWORD). Secrets never reach argv, where
 * every user of the machine could read them in the process list.
 */
export interface ChildConnection {
  /** `postgresql://user@host:port/db?…` — no password. */
  readonly dbnameArg: string;
  readonly env: Record<string, string>;
}

const SECRET_PARAMS = ['password', 'sslpassword'];

export function childConnection(url: string, database?: string): ChildConnection {
  const u = new URL(url);
  const env: Record<string, string> = {};
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  u.password = '';
  for (const p of SECRET_PARAMS) {
    const value = u.searchParams.get(p);
    if (value !== null) {
      env[p === 'password' ? 'PGPASSWORD' : 'PGSSLPASSWORD'] = value;
      u.searchParams.delete(p);
    }
  }
  // Children get no PGPASSWORD from pgbak's environment (pipeline/child-env.ts) unless the stage
  // sets it: a URL without a password keeps working with an operator's PGPASSWORD, as libpq does.
  if (env.PGPASSWORD === undefined && process.env.PGPASSWORD) env.PGPASSWORD = process.env.PGPASSWORD;
  if (database !== undefined) u.pathname = '/' + encodeURIComponent(database);
  if (!env.PGAPPNAME) env.PGAPPNAME = 'pgbak';
  return { dbnameArg: u.toString(), env };
}

/** Replace the database of a connection URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

/** Translate a pg / socket error into a DatabaseError with a redacted URL and a hint. */
function databaseError(err: unknown, url: string): AppError {
  if (err instanceof AppError) return err;
  const shown = redact(url);
  const code = errnoCode(err);
  const message = messageOf(err);
  switch (code) {
    case 'ECONNREFUSED':
      return new DatabaseError('db-connection-refused', `connection refused: ${shown}`, {
        hint: 'check DATABASE_URL and that PostgreSQL is running and listening there',
        cause: err,
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new DatabaseError('db-host-unknown', `database host not found: ${shown}`, {
        hint: 'check the host name in DATABASE_URL',
        cause: err,
      });
    case 'ETIMEDOUT':
    case 'ECONNRESET':
      return new DatabaseError('db-timeout', `database connection failed (${code}): ${shown}`, {
        hint: 'check the network path to the database server',
        cause: err,
      });
    case '28P01':
    case '28000':
      return new DatabaseError('db-auth-failed', `authentication failed: ${shown}`, {
        hint: 'check the user and password in DATABASE_URL (and pg_hba.conf)',
        cause: err,
      });
    case '3D000':
      return new DatabaseError('db-missing', `database does not exist: ${shown}`, {
        hint: 'check the database name in DATABASE_URL',
        cause: err,
      });
    case '57P03':
      return new DatabaseError('db-starting', `database is starting up or shutting down: ${shown}`, { cause: err });
    case '53300':
      return new DatabaseError('db-too-many-connections', `too many connections to ${shown}: ${message}`, {
        hint: 'the server has no free connection slot; raise max_connections or lower the load (pgbak retries later)',
        cause: err,
      });
    case '57P01':
    case '57P02':
      return new DatabaseError('db-connection-lost', `database connection lost (server shutting down): ${shown}`, { cause: err });
    default:
      if (/connection terminated unexpectedly|server closed the connection/i.test(message)) {
        return new DatabaseError('db-connection-lost', `database connection lost: ${shown}`, {
          hint: 'the server restarted or the network dropped',
          cause: err,
        });
      }
      if (/timeout/i.test(message)) {
        return new DatabaseError('db-timeout', `database connection timed out: ${shown}`, {
          hint: 'check the network path to the database server',
          cause: err,
        });
      }
      return new DatabaseError('db-error', `database error on ${shown}: ${message}`, { cause: err });
  }
}

/** The database a postgres URL names, fully percent-decoded as libpq does; undefined when it names none. */
function databaseInUrl(url: string): string | undefined {
  try {
    const path = new URL(url).pathname.replace(/^\//, '');
    return path ? decodeURIComponent(path) : undefined;
  } catch {
    return undefined;
  }
}

/** Open a pg client (10 s connect timeout); errors are translated by databaseError. */
export async function connect(url: string): Promise<Pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'pgbak' });
  // node-postgres decodes the URL's path with decodeURI, which leaves %2F %3F %23 %26 %2C… encoded:
  // a database named `a/b` would be asked for as `a%2Fb`. libpq (pg_dump, psql) decodes every
  // escape, and so must we, or one database name means two different databases.
  const database = databaseInUrl(url);
  if (database !== undefined) {
    (client as unknown as { connectionParameters: { database: string } }).connectionParameters.database = database;
    (client as unknown as { database: string }).database = database;
  }
  client.on('error', () => undefined); // a dropped idle connection must not crash the process
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw databaseError(err, url);
  }
  return client;
}

export interface ServerInfo {
  readonly version: string;
  readonly versionNum: number;
  readonly major: number;
  readonly databaseSize: number;
  /** pg_control_system().system_identifier: the same on a primary and its physical replicas; undefined where it cannot be read. */
  readonly systemIdentifier: string | undefined;
}

export async function serverInfo(client: Pg.Client): Promise<ServerInfo> {
  const { rows } = await client.query<{ v: string; n: string; size: string }>(
    `SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n, pg_database_size(current_database())::text AS size`,
  );
  const row = rows[0]!;
  const versionNum = Number(row.n);
  const systemIdentifier = await systemIdentifierOf(client);
  return {
    systemIdentifier,
    version: row.v.split(' ')[0]!,
    versionNum,
    major: versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 100) / 100,
    databaseSize: Number(row.size),
  };
}

/** The server's system identifier (readable by any role since PostgreSQL 9.6); undefined when it cannot be read. */
export async function systemIdentifierOf(client: Pg.Client): Promise<string | undefined> {
  try {
    const { rows } = await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    return rows[0]?.id;
  } catch {
    return undefined;
  }
}
