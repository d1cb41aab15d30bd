import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ProcessError } from '../errors/index.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { childConnection } from './connection.js';
import { nullSink } from '../pipeline/null-sink.js';
import type { PgTool } from './pg-tools.js';
import { connectMaintenance } from './target-database.js';

/** What applying `pg_dumpall --globals-only` output did. */
export interface GlobalsResult {
  /** Roles the SQL created (they did not exist on the server). */
  readonly created: readonly string[];
  /** Roles that already existed and were left exactly as they were. */
  readonly existing: readonly string[];
  /** Statements that failed (e.g. a tablespace whose directory is missing), passwords masked. */
  readonly errors: readonly string[];
}

const IDENT = String.raw`("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const ROLE_LINE = new RegExp(String.raw`^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE|SECURITY LABEL FOR \S+ ON ROLE) ${IDENT}[ ;]`);

function unquote(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase();
}

/** Mask anything that looks like a password in a psql message. */
export function maskPasswords(text: string): string {
  return text.replace(/(PASSWORD\s+)'(?:[^']|'')*'/gi, "$1'***'").replace(/SCRAM-SHA-256\$[^\s']+|md5[0-9a-f]{32}/g, '***');
}

/**
 * Keep the statements about roles that do not exist yet; drop every CREATE/ALTER/COMMENT of a
 * role that exists, so an existing role (the one connecting, above all) keeps its password and
 * attributes. Memberships, grants and tablespaces stay (their failures are tolerated).
 */
export function filterGlobals(sql: string, existingRoles: ReadonlySet<string>): { sql: string; created: string[]; existing: string[] } {
  const created = new Set<string>();
  const existing = new Set<string>();
  const out: string[] = [];
  for (const line of sql.split('\n')) {
    const m = ROLE_LINE.exec(line);
    if (m) {
      const role = unquote(m[1]!);
      if (existingRoles.has(role)) {
        existing.add(role);
        continue;
      }
      if (line.startsWith('CREATE ROLE')) created.add(role);
    }
    out.push(line);
  }
  return { sql: out.join('\n'), created: [...created], existing: [...existing] };
}

/**
 * Apply stored globals (roles, memberships, tablespaces) to the target's server with psql,
 * tolerating roles that already exist. The SQL holds password hashes: it goes to psql's stdin
 * only, is never logged, and psql's messages are masked before they are returned.
 */
export async function applyGlobals(options: {
  psql: PgTool;
  targetUrl: string;
  sql: string;
  signal?: AbortSignal | undefined;
}): Promise<GlobalsResult> {
  const client = await connectMaintenance(options.targetUrl);
  let roles: Set<string>;
  let serverUrl: string;
  try {
    const { rows } = await client.query<{ rolname: string; db: string }>('SELECT rolname, current_database() AS db FROM pg_roles');
    roles = new Set(rows.map((r) => r.rolname));
    const u = new URL(options.targetUrl);
    u.pathname = '/' + encodeURIComponent(rows[0]?.db ?? 'postgres');
    serverUrl = u.toString();
  } finally {
    await client.end().catch(() => undefined);
  }
  const filtered = filterGlobals(options.sql, roles);
  const conn = childConnection(serverUrl);
  const errors: string[] = [];
  const psql = new ChildStage({
    label: 'psql',
    command: options.psql.path,
    args: ['-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=0', `--dbname=${conn.dbnameArg}`, '-f', '-'],
    env: conn.env,
    input: true,
    // Never keep raw psql output: it may echo a statement with a password hash.
    keepStderr: () => false,
    onStderrLine: (line) => {
      if (/ERROR:|FATAL:/.test(line)) errors.push(maskPasswords(line.replace(/^psql:[^:]*:\d+: /, '')));
    },
    mapFailure: (info) => {
      const first = errors[0] ?? `psql exited with code ${info.code ?? info.signal}`;
      return new ProcessError(`applying the globals with psql failed: ${first}`);
    },
  });
  await pipeline([Readable.from([Buffer.from(filtered.sql)]), psql, nullSink()], { signal: options.signal });
  return { created: filtered.created, existing: filtered.existing, errors };
}
