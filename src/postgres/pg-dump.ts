import type pg from 'pg';
import type { TableCount } from '../catalog/manifest.js';
import { DatabaseError, type AppError } from '../errors/index.js';
import { ChildStage, defaultFailure, type ChildFailure } from '../pipeline/child-stage.js';
import { childConnection } from './connection.js';
import type { PgTool } from './pg-tools.js';
import { ident } from './sql.js';

const KEEP_STDERR = (line: string) => /error|fatal|warning|detail|hint|could not|failed|abort|closed|lost|terminat/i.test(line);

/** pg_dump / pg_dumpall stderr that means a transient server-side cause, with its error code. */
const TRANSIENT_STDERR: readonly (readonly [RegExp, string, string])[] = [
  [
    /server closed the connection unexpectedly|connection to server (?:was )?lost|could not receive data from server|SSL SYSCALL error: EOF|no connection to the server|terminating connection due to administrator command/i,
    'db-connection-lost',
    'the connection to the server was lost during the dump',
  ],
  [
    /too many clients already|too many connections for|remaining connection slots are reserved/i,
    'db-too-many-connections',
    'the server had no free connection slot',
  ],
  [/the database system is (?:starting up|shutting down|in recovery mode)/i, 'db-starting', 'the server was starting up or shutting down'],
  [/Connection refused/i, 'db-connection-refused', 'the server refused the connection'],
];

/**
 * A failed pg_dump / pg_dumpall: a DatabaseError with a transient code (so the daemon retries)
 * when its stderr says the connection was lost, refused or the server was busy or restarting;
 * else the default ProcessError. The message keeps the stderr tail either way.
 */
function pgToolFailure(info: ChildFailure): AppError {
  const fallback = defaultFailure(info);
  if (info.signal) return fallback; // killed here (an abort): not the server's doing
  for (const [re, code, what] of TRANSIENT_STDERR) {
    if (re.test(info.stderr)) {
      return new DatabaseError(code, `${what}: ${fallback.message}`, {
        hint: 'check the server log; the daemon retries transient failures (BACKUP_RETRIES)',
        cause: fallback,
      });
    }
  }
  return fallback;
}

/** pg_dump in custom format writing to stdout; credentials only in the environment. */
export function pgDumpStage(options: {
  tool: PgTool;
  url: string;
  compressionArgs: readonly string[];
  snapshot?: string | undefined;
  onTable?: (qualifiedName: string) => void;
  /** BACKUP_JOBS ≥ 2: `--format=directory --jobs=N --file=<path>` (`path` must not exist; stdout stays empty). */
  directory?: { readonly path: string; readonly jobs: number } | undefined;
}): ChildStage {
  const conn = childConnection(options.url);
  const d = options.directory;
  return new ChildStage({
    label: 'pg_dump',
    command: options.tool.path,
    args: [
      ...(d ? ['--format=directory', `--jobs=${d.jobs}`, `--file=${d.path}`] : ['--format=custom']),
      ...options.compressionArgs,
      '--verbose',
      ...(options.snapshot ? [`--snapshot=${options.snapshot}`] : []),
      `--dbname=${conn.dbnameArg}`,
    ],
    env: conn.env,
    input: false,
    keepStderr: KEEP_STDERR,
    mapFailure: pgToolFailure,
    onStderrLine: (line) => {
      const m = /dumping contents of table "(.+)"$/.exec(line);
      if (m) options.onTable?.(m[1]!);
    },
  });
}

/** pg_dumpall --globals-only (roles, tablespaces) as SQL on stdout. */
export function pgDumpallGlobalsStage(options: { tool: PgTool; url: string; noRolePasswords?: boolean }): ChildStage {
  const conn = childConnection(options.url);
  return new ChildStage({
    label: 'pg_dumpall',
    command: options.tool.path,
    args: ['--globals-only', ...(options.noRolePasswords ? ['--no-role-passwords'] : []), `--dbname=${conn.dbnameArg}`],
    env: conn.env,
    input: false,
    keepStderr: KEEP_STDERR,
    mapFailure: pgToolFailure,
  });
}

/** Tables whose data pg_dump writes, with on-disk sizes (for a progress estimate). */
export async function dumpedTables(client: pg.Client): Promise<{ schema: string; table: string; bytes: number }[]> {
  const { rows } = await client.query<{ schema: string; table: string; bytes: string }>(`
    SELECT n.nspname AS schema, c.relname AS table, pg_table_size(c.oid)::text AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2`);
  return rows.map((r) => ({ schema: r.schema, table: r.table, bytes: Number(r.bytes) }));
}

/**
 * Open a REPEATABLE READ transaction and export its snapshot, so pg_dump (`--snapshot`) and
 * the row counts see exactly the same data. Keep the client open until pg_dump has started.
 */
export async function exportSnapshot(client: pg.Client): Promise<string> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  const { rows } = await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s');
  return rows[0]!.s;
}

/**
 * Exact row counts of every dumped table, in the exported snapshot's transaction: the numbers
 * match the dump one to one, which is what lets a restore test compare them exactly.
 */
export async function countRows(
  client: pg.Client,
  tables: readonly { schema: string; table: string }[],
  signal?: AbortSignal,
): Promise<TableCount[]> {
  const out: TableCount[] = [];
  // One backend, no parallel workers: the counts (index-only scans of each table's smallest index
  // once VACUUM has set the visibility map) never take more than one core from the dump running
  // beside them. SET LOCAL ends with the snapshot's transaction (docs/performance.md, "Row counts").
  if (tables.length > 0) await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
  for (const t of tables) {
    if (signal?.aborted) break;
    const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${ident(t.schema)}.${ident(t.table)}`);
    out.push({ schema: t.schema, table: t.table, rows: Number(rows[0]!.n) });
  }
  return out;
}
