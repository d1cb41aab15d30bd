import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { JobConfig } from '../config/job.js';
import { AppError, ExitCode, IntegrityError, toAppError, UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { formatDuration } from '../model/human-units.js';
import { childEnv } from '../pipeline/child-env.js';
import { execChild } from '../pipeline/child-stage.js';
import { connect } from '../postgres/connection.js';
import { majorOf } from '../postgres/pg-tools.js';
import { findServerBinaries } from '../postgres/server-binaries.js';
import { logRestoreTest, type Check } from './restore-test.js';
import { restorePitr } from './restore-pitr.js';

/** What the restore test of a base backup found (a failing check is a result, not an error). */
export interface BaseRestoreTestResult {
  readonly ok: boolean;
  readonly backup: string;
  /** The temporary data directory (removed again). */
  readonly pgdata: string;
  readonly durationMs: number;
  readonly checks: readonly Check[];
  /** The exit code of a failure: 9 the base backup differs from its manifest, 14 recovery or the query failed. */
  readonly exitCode: number;
}

/** How long the temporary server may take to recover to the end of the archive. */
const RECOVERY_TIMEOUT_MS = 6 * 3600_000;

/**
 * `pgbak verify --restore-test` of the newest base backup: `restore --latest` into a temporary
 * directory under BACKUP_DIR (archive_mode off, so the promotion never reaches the archive), start
 * it with the server binaries of its own major on a free port, reachable only through a Unix
 * socket in a private temporary directory (trust auth there: nothing else listens), wait until it
 * has replayed the archive and promoted, then count databases and the job database's tables. The
 * server is always stopped and both directories removed, also on an abort (Ctrl-C).
 * Environment problems (running as root, no server binaries, the bucket unreachable) are thrown.
 */
export async function baseRestoreTest(options: {
  job: JobConfig;
  pgbakCommand: readonly string[];
  logger: Logger;
  signal?: AbortSignal | undefined;
}): Promise<BaseRestoreTestResult | undefined> {
  const { job, logger, signal } = options;
  if (process.getuid?.() === 0) {
    throw new UsageError('the restore test of a base backup starts PostgreSQL, which refuses to run as root', {
      hint: 'run `pgbak verify --restore-test` as the postgres user (or the daemon’s own user)',
    });
  }
  const t0 = Date.now();
  await mkdir(job.backupDir, { recursive: true });
  const root = await mkdtemp(join(job.backupDir, '.pgbak-restore-test-'));
  // The socket path must stay under 107 bytes: a short private directory of its own.
  const socketDir = await mkdtemp(join(tmpdir(), 'pgbak-rt-'));
  const pgdata = join(root, 'pgdata');
  const log = join(root, 'server.log');
  const checks: Check[] = [];
  let bindir: string | undefined;
  let backup = '';
  let exitCode: number = ExitCode.ok;
  let restored: Awaited<ReturnType<typeof restorePitr>> | undefined;
  try {
    try {
      restored = await restorePitr({ job, pgdata, latest: true, archive: false, pgbakCommand: options.pgbakCommand, logger, signal });
    } catch (err) {
      const e = toAppError(err);
      if (e.code === 'no-base-backup' || (e.code === 'not-found' && /no WAL archive|no base backup/.test(e.message))) return undefined;
      if (!(e instanceof IntegrityError)) throw e;
      checks.push({ check: 'base backup', ok: false, detail: `${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}` });
      exitCode = ExitCode.integrity;
      return { ok: false, backup: /base backup (\S+)/.exec(e.message)?.[1] ?? '', pgdata, durationMs: Date.now() - t0, checks, exitCode };
    }
    backup = restored.backup;
    checks.push({ check: 'base backup', ok: true, detail: `${restored.backup} extracted, sha256 matches its manifest` });
    const version = (await readFile(join(pgdata, 'PG_VERSION'), 'utf8').catch(() => '0')).trim();
    bindir = await findServerBinaries(majorOf(version), job.pgTools.pgDumpPath);
    const port = await freePort();
    await writeFile(join(root, 'pg_hba.conf'), 'local all all trust\n', { mode: 0o600 });
    await appendFile(
      join(pgdata, 'postgresql.auto.conf'),
      [
        '# pgbak verify --restore-test: a throwaway server, reachable through its own socket only',
        `port = ${port}`,
        "listen_addresses = ''",
        `unix_socket_directories = '${socketDir}'`,
        `hba_file = '${join(root, 'pg_hba.conf')}'`,
        'ssl = off',
        'logging_collector = off',
        "log_destination = 'stderr'",
        "cluster_name = 'pgbak-restore-test'",
        '',
      ].join('\n'),
    );
    const recovery = await startAndRecover({ bindir, pgdata, log, port, socketDir, job, signal });
    checks.push(recovery.check);
    if (recovery.check.ok) checks.push(await sanity(recovery.url, job.database));
    if (!checks.every((c) => c.ok)) exitCode = ExitCode.verifyFailed;
  } finally {
    if (bindir && existsSync(join(pgdata, 'postmaster.pid'))) {
      await execChild(join(bindir, 'pg_ctl'), ['-D', pgdata, '-m', 'immediate', '-w', 'stop'], { env: childEnv() }).catch((err: unknown) =>
        logger.warn('could not stop the restore test server', { pgdata, error: toAppError(err).message }),
      );
    }
    // The WAL prefetch worker restore started: its data directory goes now.
    if (restored?.prefetchWorkerPid) {
      try {
        process.kill(restored.prefetchWorkerPid);
      } catch {
        // Ended already.
      }
    }
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
    await rm(socketDir, { recursive: true, force: true }).catch(() => undefined);
  }
  const ok = checks.every((c) => c.ok);
  const durationMs = Date.now() - t0;
  logRestoreTest(logger, 'restore test of base backup', backup, checks, durationMs);
  return { ok, backup, pgdata, durationMs, checks, exitCode };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Start the server and wait until it has promoted. A server that stops on its own (recovery
 * failed: a missing or corrupt segment, wal-fetch exit ≥ 126) is a failed check naming the cause
 * from its log; so is a timeout. An abort stops waiting (the caller stops the server).
 */
async function startAndRecover(o: {
  bindir: string;
  pgdata: string;
  log: string;
  port: number;
  socketDir: string;
  job: JobConfig;
  signal: AbortSignal | undefined;
}): Promise<{ check: Check; url: (db: string) => string }> {
  const url = (db: string, user: string) =>
    `postgresql://${encodeURIComponent(user)}@${encodeURIComponent(o.socketDir)}:${o.port}/${encodeURIComponent(db)}`;
  const failed = async (what: string): Promise<{ check: Check; url: (db: string) => string }> => ({
    check: { check: 'recovery', ok: false, detail: `${what}: ${await causeFromLog(o.log)}` },
    url: (db) => url(db, 'postgres'),
  });
  const t0 = Date.now();
  // pg_ctl starts the postmaster in a session of its own: a Ctrl-C reaches pgbak, which stops it.
  // -w: until it accepts connections (hot standby: once consistent, at the base backup's end).
  const args = ['-D', o.pgdata, '-l', o.log, '-w', '-t', '600', 'start'];
  try {
    await execChild(join(o.bindir, 'pg_ctl'), args, { env: childEnv(), timeout: 620_000, ...(o.signal ? { signal: o.signal } : {}) });
  } catch (err) {
    if (o.signal?.aborted) throw err;
    return failed('the server stopped before it accepted connections');
  }
  const users = [...new Set([userOf(o.job.databaseUrl), userInfo().username, 'postgres'].filter((u): u is string => Boolean(u)))];
  const deadline = Date.now() + RECOVERY_TIMEOUT_MS;
  let user: string | undefined;
  for (;;) {
    if (o.signal?.aborted) throw new AppError('interrupted', 'interrupted', { exitCode: ExitCode.interrupted });
    if (!existsSync(join(o.pgdata, 'postmaster.pid'))) return failed('recovery stopped before the server promoted');
    for (const u of user ? [user] : users) {
      const client = await connect(url('postgres', u)).catch((err: unknown) => toAppError(err));
      if (client instanceof AppError) {
        if (client.code === 'db-auth-failed' && !user) continue; // no such role: try the next
        break; // still starting up
      }
      user = u;
      try {
        const r = await client.query<{ rec: boolean; tl: string }>(
          'SELECT pg_is_in_recovery() AS rec, (SELECT timeline_id::text FROM pg_control_checkpoint()) AS tl',
        );
        if (!r.rows[0]!.rec) {
          return {
            check: { check: 'recovery', ok: true, detail: `replayed the WAL archive and promoted in ${formatDuration(Date.now() - t0)}` },
            url: (db) => url(db, u),
          };
        }
      } finally {
        await client.end().catch(() => undefined);
      }
      break;
    }
    if (Date.now() > deadline) return failed(`still recovering after ${formatDuration(RECOVERY_TIMEOUT_MS)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The databases, and the job database's tables: the restored cluster answers queries. */
async function sanity(url: (db: string) => string, database: string): Promise<Check> {
  try {
    const client = await connect(url('postgres'));
    let dbs: string[];
    try {
      dbs = (await client.query<{ d: string }>('SELECT datname AS d FROM pg_database WHERE datallowconn ORDER BY 1')).rows.map((r) => r.d);
    } finally {
      await client.end().catch(() => undefined);
    }
    if (!dbs.includes(database)) return { check: 'query', ok: true, detail: `${dbs.length} databases (${dbs.join(', ')})` };
    const db = await connect(url(database));
    try {
      const { rows } = await db.query<{ n: string }>(
        "SELECT count(*)::text AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND s.nspname NOT IN ('pg_catalog', 'information_schema')",
      );
      return { check: 'query', ok: true, detail: `${dbs.length} databases; ${database} has ${rows[0]!.n} tables` };
    } finally {
      await db.end().catch(() => undefined);
    }
  } catch (err) {
    return { check: 'query', ok: false, detail: `the promoted server did not answer: ${toAppError(err).message}` };
  }
}

/** The line of the server log that says why recovery stopped: pgbak wal-fetch's error, else PostgreSQL's FATAL/PANIC. */
async function causeFromLog(log: string): Promise<string> {
  const lines = (await readFile(log, 'utf8').catch(() => '')).split('\n');
  // pgbak's own error (wal-fetch, as restore_command): `pgbak: error: …` then `hint: …`.
  const pgbak = lines
    .filter((l) => l.startsWith('pgbak: error:'))
    .pop()
    ?.replace(/^pgbak: error: /, '');
  const fatal = lines.filter((l) => /\b(FATAL|PANIC):/.test(l)).pop();
  const hint = lines.filter((l) => /^\s*hint:/.test(l)).pop();
  const cause = pgbak ?? fatal ?? lines.filter(Boolean).pop() ?? 'no server log';
  return `${cause.trim()}${hint && hint !== pgbak ? ` (${hint.trim()})` : ''}`;
}

function userOf(databaseUrl: string | undefined): string | undefined {
  if (!databaseUrl) return undefined;
  try {
    return decodeURIComponent(new URL(databaseUrl).username) || undefined;
  } catch {
    return undefined;
  }
}
