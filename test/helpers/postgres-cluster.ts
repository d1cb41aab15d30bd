import { execFile, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface PgCluster {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly bindir: string;
  readonly dataDir: string;
  /** postgresql://user:password@127.0.0.1:port/<db> */
  url(database: string): string;
  stop(): Promise<void>;
}

/** The newest /usr/lib/postgresql/N/bin that has initdb, or PG_BINDIR. */
export function findServerBindir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error('no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  return join(root, versions[0]!, 'bin');
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Run a server binary as the `postgres` user when we are root (initdb refuses root). */
/** runuser(1), which lives in /usr/sbin (not always on a non-login root's PATH). */
export const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser'].find((p) => existsSync(p)) ?? 'runuser';

function asServerUser(bin: string, args: string[]): [string, string[]] {
  return isRoot ? [RUNUSER, ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

/**
 * A throwaway PostgreSQL cluster: initdb into a temp dir, scram-sha-256 password auth on
 * 127.0.0.1 at a random port, unix socket in the temp dir, fsync off (it is thrown away).
 */
export async function startCluster(options: { password?: string; log?: (msg: string) => void } = {}): Promise<PgCluster> {
  const bindir = findServerBindir();
  const base = mkdtempSync(join(tmpdir(), 'pgbak-pg-'));
  const dataDir = join(base, 'data');
  const password = options.password ?? 'test-pw-' + Math.random().toString(36).slice(2, 10);
  const pwfile = join(base, 'pwfile');
  writeFileSync(pwfile, password + '\n');
  chmodSync(base, 0o755);
  if (isRoot) {
    const { uid, gid } = await lookupUser('postgres');
    chownSync(base, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const [cmd, args] = asServerUser(join(bindir, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=scram-sha-256',
    `--pwfile=${pwfile}`,
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  await execFileAsync(cmd, args);
  rmSync(pwfile);
  const port = await freePort();
  const logFile = join(base, 'server.log');
  const [ctl, ctlArgs] = asServerUser(join(bindir, 'pg_ctl'), [
    '-D',
    dataDir,
    '-l',
    logFile,
    '-w',
    '-t',
    '60',
    'start',
    '-o',
    `-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`,
  ]);
  await execFileAsync(ctl, ctlArgs);
  options.log?.(`PostgreSQL ${bindir} started on 127.0.0.1:${port} (${dataDir})`);
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    bindir,
    dataDir,
    url: (db: string) => `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
    async stop() {
      const [c, a] = asServerUser(join(bindir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      await execFileAsync(c, a).catch(() => undefined);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await execFileAsync('id', ['-u', name]);
  const { stdout: gid } = await execFileAsync('id', ['-g', name]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Run SQL through psql (ON_ERROR_STOP) against a database of the cluster. */
export async function psql(cluster: Pick<PgCluster, 'url' | 'bindir'>, database: string, sql: string): Promise<string> {
  return new Promise((resolveOut, reject) => {
    const child = spawn(join(cluster.bindir, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', cluster.url(database)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolveOut(out.trim()) : reject(new Error(`psql failed (${code}): ${err.trim()}`))));
    child.stdin.end(sql);
  });
}
