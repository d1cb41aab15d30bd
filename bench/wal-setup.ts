import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { RUNUSER, psql, type PgCluster } from '../test/helpers/postgres-cluster.js';
import type { BenchContext } from './scenarios.js';

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;

/** Run as the postgres user when we are root (the server's, archive_command's and restore_command's user). */
export function asPostgres(argv: readonly string[]): [string, string[]] {
  return isRoot ? [RUNUSER, ['-u', 'postgres', '--', ...argv]] : [argv[0]!, argv.slice(1)];
}

/**
 * What the WAL scenarios share, made once per bench run: a directory the postgres user owns,
 * a copy of the GnuPG home it can use, the 0600 env file `pgbak wal-push` reads (secrets in
 * the file, never on a command line), a timing wrapper for archive_command and, when
 * pgBackRest is installed, its configuration and stanza on the same cluster.
 */
export interface WalBench {
  readonly dir: string;
  readonly envFile: string;
  /**
   * pgbak doing the work of the pgBackRest configuration beside it: WAL_COMPRESSION zstd:3 into a
   * local BACKUP_DIR (a posix repository), no gpg, no bucket; its own WAL archive there.
   */
  readonly sameWorkEnvFile: string;
  /** archive_command's pushes into that archive (the sh client, no call log). */
  readonly sameWorkPush: string;
  /** archive_command's wrapper: runs bin/pgbak-wal-push (the sh client), appends "start_ns end_ns rc kind file" to callLog. */
  readonly wrapper: string;
  /** The same with `pgbak wal-push` (node on every call). */
  readonly nodeWrapper: string;
  readonly callLog: string;
  /** `pgbackrest --config … --stanza=bench`, or undefined (with why) when it is not installed. */
  readonly pgbackrest: { readonly argv: readonly string[]; readonly env: NodeJS.ProcessEnv } | undefined;
  readonly pgbackrestMissing?: string;
  readonly socketDir: string;
}

let shared: Promise<WalBench> | undefined;

export function walBench(ctx: BenchContext): Promise<WalBench> {
  shared ??= setUp(ctx);
  return shared;
}

async function setUp(ctx: BenchContext): Promise<WalBench> {
  const { stdout: ids } = await execFileAsync('id', ['-u', 'postgres']).catch(() => ({ stdout: String(process.getuid?.()) }));
  const owner = isRoot ? `${ids.trim()}:${(await execFileAsync('id', ['-g', 'postgres'])).stdout.trim()}` : undefined;
  chmodSync(ctx.scratch, 0o711); // the postgres user passes through to its own directory
  const dir = join(ctx.scratch, 'wal');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const gnupg = join(dir, 'gnupg');
  cpSync(ctx.gpg.home, gnupg, { recursive: true, filter: (src) => !/S\.gpg-agent/.test(src) });
  chmodSync(gnupg, 0o700);
  const envFile = join(dir, 'wal.env');
  const vars: Record<string, string> = {
    STORAGE_ENDPOINT: ctx.s3.endpoint,
    STORAGE_ACCESS_KEY: ctx.s3.accessKey,
    STORAGE_SECRET_KEY: ctx.s3.secretKey,
    STORAGE_BUCKET: ctx.buckets.wal,
    STORAGE_REGION: ctx.s3.region,
    STORAGE_PREFIX: 'wal-bench/',
    BACKUP_DIR: join(dir, 'backups'),
    LOG_FILE: '',
    GNUPGHOME: gnupg,
    GPG_RECIPIENT: ctx.gpg.email,
    WAL_COMPRESSION: `zstd:${ctx.zstdLevel}`,
    ...ctx.pgbakExtra,
  };
  writeFileSync(
    envFile,
    Object.entries(vars)
      .map(([k, v]) => `${k}='${v}'\n`)
      .join(''),
    { mode: 0o600 },
  );
  const sameWorkEnvFile = join(dir, 'same-work.env');
  const same = Object.fromEntries(Object.entries(vars).filter(([k]) => !k.startsWith('STORAGE_') && k !== 'GPG_RECIPIENT'));
  writeFileSync(
    sameWorkEnvFile,
    Object.entries({ ...same, BACKUP_DIR: join(dir, 'backups-same-work') })
      .map(([k, v]) => `${k}='${v}'\n`)
      .join(''),
    { mode: 0o600 },
  );
  const sameWorkPush = `PGBAK_NODE="${process.execPath}" "${join(dirname(ctx.pgbakBin), 'pgbak-wal-push')}" --env-file "${sameWorkEnvFile}"`;
  const callLog = join(dir, 'calls.log');
  writeFileSync(callLog, '');
  const script = (command: string) => `#!/bin/sh
# archive_command for the bench: each call's start, end (ns), exit code and kind logged.
s=$(date +%s%N)
err=$(${command} --env-file "${envFile}" "$1" 2>&1)
rc=$?
e=$(date +%s%N)
case "$err" in *"archived ahead"*) k=ahead ;; *) k=push ;; esac
echo "$s $e $rc $k \${1##*/}" >> "${callLog}"
[ $rc -eq 0 ] || printf '%s\\n' "$err" >&2
exit $rc
`;
  const wrapper = join(dir, 'wal-push-client.sh');
  writeFileSync(wrapper, script(`PGBAK_NODE="${process.execPath}" "${join(dirname(ctx.pgbakBin), 'pgbak-wal-push')}"`), { mode: 0o755 });
  const nodeWrapper = join(dir, 'wal-push-node.sh');
  writeFileSync(nodeWrapper, script(`"${process.execPath}" "${ctx.pgbakBin}" wal-push`), { mode: 0o755 });
  const socketDir = dirname(ctx.pg.dataDir);
  let pgbackrest: WalBench['pgbackrest'];
  let pgbackrestMissing: string | undefined;
  const which = spawnSync('pgbackrest', ['version'], { encoding: 'utf8' });
  if (which.status !== 0) {
    pgbackrestMissing = 'pgbackrest is not installed (apt-get install pgbackrest): the pgBackRest scenarios are skipped';
  } else {
    const conf = join(dir, 'pgbackrest.conf');
    writeFileSync(
      conf,
      [
        '[global]',
        `repo1-path=${join(dir, 'pgbackrest-repo')}`,
        'repo1-retention-full=2',
        'compress-type=zst',
        'compress-level=3',
        'process-max=2',
        'start-fast=y',
        `lock-path=${join(dir, 'pgbackrest-lock')}`,
        `log-path=${join(dir, 'pgbackrest-log')}`,
        'log-level-console=warn',
        'log-level-file=off',
        '',
        '[bench]',
        `pg1-path=${ctx.pg.dataDir}`,
        `pg1-port=${ctx.pg.port}`,
        `pg1-socket-path=${socketDir}`,
        'pg1-user=postgres',
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    pgbackrest = {
      argv: ['pgbackrest', `--config=${conf}`, '--stanza=bench'],
      env: { PATH: process.env.PATH, HOME: dir, PGPASSWORD: ctx.pg.password },
    };
  }
  if (owner) await execFileAsync('chown', ['-R', owner, dir]);
  await restartWithFullPageWrites(ctx.pg, socketDir);
  if (pgbackrest) {
    await setArchiveCommand(ctx.pg, `${wrapper} %p`);
    const [cmd, args] = asPostgres([...pgbackrest.argv, 'stanza-create']);
    await execFileAsync(cmd, args, { env: pgbackrest.env });
  }
  return {
    dir,
    envFile,
    sameWorkEnvFile,
    sameWorkPush,
    wrapper,
    nodeWrapper,
    callLog,
    pgbackrest,
    ...(pgbackrestMissing ? { pgbackrestMissing } : {}),
    socketDir,
  };
}

/**
 * The bench's cluster runs with full_page_writes off (test/helpers/postgres-cluster.ts); a real
 * server writes full pages after each checkpoint, which is most of pgbench's WAL. fsync and
 * synchronous_commit stay off: WAL comes faster, the harder case for the archiver.
 */
async function restartWithFullPageWrites(pg: PgCluster, socketDir: string): Promise<void> {
  const opts = `-p ${pg.port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=on -c max_connections=100`;
  const [cmd, args] = asPostgres([
    join(pg.bindir, 'pg_ctl'),
    '-D',
    pg.dataDir,
    '-l',
    join(socketDir, 'server.log'),
    '-w',
    '-t',
    '120',
    '-m',
    'fast',
    'restart',
    '-o',
    opts,
  ]);
  await execFileAsync(cmd, args);
}

/** Change archive_command and reload (archive_mode is on from the start when WAL scenarios run). */
export async function setArchiveCommand(pg: PgCluster, command: string): Promise<void> {
  await psql(pg, 'postgres', `ALTER SYSTEM SET archive_command = '${command.replaceAll("'", "''")}'; SELECT pg_reload_conf();`);
  // The archiver reads the new value at its next loop; a moment is enough.
  await new Promise((r) => setTimeout(r, 300));
}

/** archive_command for pgbak (its bucket archive and its same-work local one), plus pgBackRest's archive-push when it takes part. */
export function archiveCommand(w: WalBench): string {
  const pgbak = `${w.wrapper} %p && ${w.sameWorkPush} %p`;
  return w.pgbackrest ? `${pgbak} && ${w.pgbackrest.argv.join(' ')} archive-push %p` : pgbak;
}

/** `.ready` files waiting in pg_wal/archive_status. */
export function readyCount(pg: PgCluster): number {
  const dir = join(pg.dataDir, 'pg_wal', 'archive_status');
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ready')).length : 0;
}

export async function archiverCounts(pg: PgCluster): Promise<{ archived: number; failed: number }> {
  const [a, f] = (await psql(pg, 'postgres', 'SELECT archived_count, failed_count FROM pg_stat_archiver')).split('|');
  return { archived: Number(a), failed: Number(f) };
}

/** Wait until no `.ready` file is left; the seconds it took. */
export async function waitDrained(pg: PgCluster, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (readyCount(pg) > 0) {
    if (performance.now() - started > timeoutMs) throw new Error(`${readyCount(pg)} .ready files left after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return (performance.now() - started) / 1000;
}

/** One archive_command call, from the wrapper's log. */
export interface Call {
  readonly ms: number;
  readonly rc: number;
  readonly kind: 'ahead' | 'push';
  readonly file: string;
}

export function readCalls(text: string): Call[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [s, e, rc, kind, file] = line.split(' ');
      return { ms: (Number(e) - Number(s)) / 1e6, rc: Number(rc), kind: kind === 'ahead' ? 'ahead' : 'push', file: file ?? '' };
    });
}

/** Remove a restored data directory (owned by postgres). */
export function removeDir(path: string): void {
  rmSync(path, { recursive: true, force: true });
}
