import { execFile } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PGBAK_BIN } from './cli.js';
import { asServerUser, psql, startCluster, startOnFreePort, type PgCluster } from './postgres-cluster.js';
import { createBucket, services } from './services.js';

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;

/** The uid and gid of the postgres user (the server's and archive_command's user when we are root). */
export async function postgresUser(): Promise<{ uid: number; gid: number }> {
  if (!isRoot) return { uid: process.getuid!(), gid: process.getgid!() };
  const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
  const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** A setup every PITR test shares: a bucket, a work dir the postgres user owns, a GnuPG home it can use, and an env file. */
export interface PitrSetup {
  readonly dir: string;
  readonly bucket: string;
  readonly gnupgHome: string;
  /** The 0600 env file archive_command and restore_command read (owned by postgres). */
  readonly envFile: string;
  /** The variables in the env file. */
  readonly vars: Record<string, string>;
  /** Rewrite the env file with these variables changed. */
  writeEnv(changes?: Record<string, string>): void;
  /** `node bin/pgbak` as a command line for postgresql.conf. */
  readonly pgbak: string;
  /** Run pgbak as the postgres user (runuser when root) with the env file. */
  run(
    args: readonly string[],
    options?: { cwd?: string; env?: Record<string, string> },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
}

export async function pitrSetup(options: { encrypt?: boolean; prefix?: string } = {}): Promise<PitrSetup> {
  const s = services();
  const owner = await postgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'pgbak-pitr-'));
  chmodSync(dir, 0o755);
  // gpg wants its home owned by the user that runs it; postgres runs archive_command.
  const gnupgHome = mkdtempSync(join(tmpdir(), 'pgbak-pg-gpg-'));
  cpSync(s.gpg.home, gnupgHome, { recursive: true, filter: (src) => !/S\.gpg-agent/.test(src) });
  await execFileAsync('chown', ['-R', `${owner.uid}:${owner.gid}`, gnupgHome, dir]);
  chmodSync(gnupgHome, 0o700);
  const bucket = await createBucket('pitr');
  const vars: Record<string, string> = {
    STORAGE_ENDPOINT: s.s3.endpoint,
    STORAGE_ACCESS_KEY: s.s3.accessKey,
    STORAGE_SECRET_KEY: s.s3.secretKey,
    STORAGE_BUCKET: bucket,
    STORAGE_PREFIX: options.prefix ?? 'pitr/',
    STORAGE_REGION: s.s3.region,
    BACKUP_DIR: join(dir, 'backups'),
    LOG_FILE: '',
    GNUPGHOME: gnupgHome,
    ...(options.encrypt === false ? {} : { GPG_RECIPIENT: s.gpg.email }),
  };
  const envFile = join(dir, 'wal.env');
  const writeEnv = (changes: Record<string, string> = {}) => {
    Object.assign(vars, changes);
    writeFileSync(
      envFile,
      Object.entries(vars)
        .map(([k, v]) => `${k}='${v}'\n`)
        .join(''),
      { mode: 0o600 },
    );
    chmodSync(envFile, 0o600);
    chownSync(envFile, owner.uid, owner.gid);
  };
  writeEnv();
  const pgbak = `${process.execPath} ${PGBAK_BIN}`;
  const run = async (args: readonly string[], o: { cwd?: string; env?: Record<string, string> } = {}) => {
    const [cmd, rest] = asServerUser(process.execPath, [PGBAK_BIN, ...args]);
    try {
      const { stdout, stderr } = await execFileAsync(cmd, rest, {
        cwd: o.cwd ?? dir,
        env: { PATH: process.env.PATH ?? '', HOME: dir, ...o.env },
        maxBuffer: 16 * 1024 * 1024,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  return { dir, bucket, gnupgHome, envFile, vars, writeEnv, pgbak, run };
}

/** A cluster that archives every WAL file with `pgbak wal-push` (archive_timeout 0: tests switch WAL themselves). */
export async function startArchivingCluster(setup: PitrSetup): Promise<PgCluster> {
  return startCluster({
    config: [
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = '${setup.pgbak} wal-push --env-file ${setup.envFile} %p'`,
      'max_wal_senders = 4',
      'log_min_messages = info',
    ],
  });
}

/** The server log of a cluster started by startCluster. */
export function serverLog(cluster: PgCluster): string {
  return readFileSync(join(dirname(cluster.dataDir), 'server.log'), 'utf8');
}

/** Switch to a new WAL segment and wait until the archiver stored the one it closed. */
export async function switchAndWaitArchived(cluster: PgCluster, timeoutMs = 60_000): Promise<string> {
  const name = await psql(cluster, 'postgres', 'SELECT pg_walfile_name(pg_switch_wal())');
  await waitArchived(cluster, name, timeoutMs);
  return name;
}

/** Wait until pg_stat_archiver's last archived WAL is `name` or later. */
export async function waitArchived(cluster: PgCluster, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await psql(cluster, 'postgres', "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    if (last.slice(0, 24) >= name) return;
    if (Date.now() > deadline)
      throw new Error(`${name} not archived within ${timeoutMs} ms (last: ${last})\n${serverLog(cluster).slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Make a directory the postgres user owns (a restore target). */
export async function postgresDir(path: string): Promise<string> {
  const owner = await postgresUser();
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chownSync(path, owner.uid, owner.gid);
  return path;
}

/** A data directory started by pg_ctl on a free port (a restored cluster). */
export interface StartedDataDir {
  readonly port: number;
  readonly log: string;
  /** psql against it. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Start a restored data directory as the postgres user. Resolves once pg_ctl -w says it accepts
 * connections; rejects (with its log) when the server stops instead (recovery failed).
 */
export async function startDataDir(setup: PitrSetup, pgdata: string, password: string, bindir: string): Promise<StartedDataDir> {
  const owner = await postgresUser();
  const logOf = (port: number) => join(setup.dir, `server-${port}.log`);
  const port = await startOnFreePort(logOf, (p) => {
    writeFileSync(logOf(p), '');
    chownSync(logOf(p), owner.uid, owner.gid);
    return asServerUser(join(bindir, 'pg_ctl'), [
      '-D',
      pgdata,
      '-l',
      logOf(p),
      '-w',
      '-t',
      '120',
      'start',
      '-o',
      `-p ${p} -k ${setup.dir} -c listen_addresses=127.0.0.1`,
    ]);
  });
  const log = logOf(port);
  const url = (db: string) => `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
  return {
    port,
    log,
    query: (sql: string) => psql({ url, bindir }, 'postgres', sql),
    async stop() {
      const [c, a] = asServerUser(join(bindir, 'pg_ctl'), ['-D', pgdata, '-m', 'fast', '-w', 'stop']);
      await execFileAsync(c, a).catch(() => undefined);
    },
  };
}

/** Wait until a restored server has left recovery (promoted). */
export async function waitPromoted(server: StartedDataDir, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await server.query('SELECT pg_is_in_recovery()').catch(() => 't');
    if (r === 'f') return;
    if (Date.now() > deadline) throw new Error(`still in recovery after ${timeoutMs} ms\n${readFileSync(server.log, 'utf8').slice(-4000)}`);
    await new Promise((r2) => setTimeout(r2, 300));
  }
}
