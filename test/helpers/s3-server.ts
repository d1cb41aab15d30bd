import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureGoBinary, type GoBinary } from './go-binary.js';
import { freePort } from './postgres-cluster.js';

const execFileAsync = promisify(execFile);

/** The MinIO source version `go install` builds when no binary is found (MinIO has no semver tags). */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';
/** The versitygw release `go install` builds when no binary is found. */
export const VERSITYGW_VERSION = 'v1.8.0';

/** The S3 servers the tests can start: MinIO, and versitygw over its posix backend. */
export type S3ServerKind = 'minio' | 'versitygw';
export const S3_SERVER_KINDS: readonly S3ServerKind[] = ['minio', 'versitygw'];

/**
 * The servers S3_TEST_SERVER asks for (`minio`, `versitygw` or `both`; default `both`), the
 * first one being the primary one: the server of every test that does not name one.
 */
export function s3ServerKinds(value = process.env.S3_TEST_SERVER): S3ServerKind[] {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'both') return ['minio', 'versitygw'];
  if (v === 'minio' || v === 'versitygw') return [v];
  throw new Error(`S3_TEST_SERVER must be minio, versitygw or both, got "${value}"`);
}

export interface S3Server {
  /** Which server this is; `external` for S3_TEST_ENDPOINT. */
  readonly kind: S3ServerKind | 'external';
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** The server process when we started it (fault tests kill it; restart() replaces it); undefined for S3_TEST_ENDPOINT. */
  readonly process: ChildProcess | undefined;
  /** Start our server again on the same data dir and port (after a kill); not for S3_TEST_ENDPOINT. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  log?: (msg: string) => void;
  /**
   * Which server to start; default the primary one of S3_TEST_SERVER (MinIO for `both`). The
   * fault tests that kill and restart their own server (test/faults/*) take the default, so they
   * run against MinIO only in CI.
   */
  kind?: S3ServerKind;
  /**
   * Run a server of our own on this data dir (even when S3_TEST_ENDPOINT is set), kept by stop():
   * a test that kills its server and starts it again on the same data.
   */
  dataDir?: string;
}

const BINARIES: Record<S3ServerKind, GoBinary> = {
  minio: { name: 'minio', version: MINIO_VERSION, envVar: 'MINIO_BIN', module: 'github.com/minio/minio' },
  versitygw: {
    name: 'versitygw',
    version: VERSITYGW_VERSION,
    envVar: 'VERSITYGW_BIN',
    module: 'github.com/versity/versitygw/cmd/versitygw',
  },
};

const defaultLog = (m: string) => process.stderr.write(m + '\n');

/**
 * The server's binary: MINIO_BIN / VERSITYGW_BIN, else `minio` / `versitygw` on PATH, else the
 * cached build, else build it once with `go install` (pinned version) into the cache dir.
 */
export function ensureS3ServerBinary(kind: S3ServerKind, log: (msg: string) => void = defaultLog): Promise<string> {
  return ensureGoBinary(BINARIES[kind], log);
}

/** MINIO_BIN, else `minio` on PATH, else the cached build, else build it once with `go install`. */
export function ensureMinioBinary(log: (msg: string) => void = defaultLog): Promise<string> {
  return ensureS3ServerBinary('minio', log);
}

/**
 * A real S3 server for tests: S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY) when
 * set, else a throwaway MinIO or versitygw (`options.kind`, default the primary S3_TEST_SERVER)
 * on 127.0.0.1 at a random port with a temp data dir (or `options.dataDir`). Takes the options or
 * just the log function.
 */
export async function startS3Server(options: S3ServerOptions | ((msg: string) => void) = {}): Promise<S3Server> {
  const {
    log,
    dataDir: ownDataDir,
    kind: askedKind,
  } = typeof options === 'function' ? { log: options, dataDir: undefined, kind: undefined } : options;
  if (process.env.S3_TEST_ENDPOINT && ownDataDir === undefined && askedKind === undefined) {
    return {
      kind: 'external',
      endpoint: process.env.S3_TEST_ENDPOINT,
      accessKey: process.env.S3_TEST_ACCESS_KEY ?? '',
      secretKey: process.env.S3_TEST_SECRET_KEY ?? '',
      region: process.env.S3_TEST_REGION ?? 'us-east-1',
      process: undefined,
      async restart() {
        throw new Error('S3_TEST_ENDPOINT is not a server of the tests: it cannot be restarted');
      },
      async stop() {},
    };
  }
  const kind = askedKind ?? s3ServerKinds()[0]!;
  const bin = await ensureS3ServerBinary(kind, log);
  const dataDir = ownDataDir ?? mkdtempSync(join(tmpdir(), `pgbak-${kind}-`));
  const port = await freePort();
  const consolePort = await freePort();
  const accessKey = 'pgbak-test-access';
  const secretKey = 'pgbak-test-secret-' + Math.random().toString(36).slice(2, 12);
  const endpoint = `http://127.0.0.1:${port}`;
  const o = { dataDir, port, consolePort, accessKey, secretKey };
  const launch = () => (kind === 'minio' ? launchMinio(bin, o) : launchVersitygw(bin, o));
  let child = await launch();
  const running = () => child.exitCode === null && child.signalCode === null;
  log?.(`${kind} started at ${endpoint} (${dataDir})`);
  return {
    kind,
    endpoint,
    accessKey,
    secretKey,
    region: 'us-east-1',
    get process() {
      return child;
    },
    async restart() {
      if (running()) await new Promise((r) => child.once('exit', r));
      child = await launch();
    },
    async stop() {
      if (running()) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      if (ownDataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Start MinIO on `dataDir` at 127.0.0.1:`port` and wait (up to 60 s) until it is ready. */
async function launchMinio(
  bin: string,
  o: { dataDir: string; port: number; consolePort: number; accessKey: string; secretKey: string },
): Promise<ChildProcess> {
  const child = spawn(
    bin,
    ['server', '--quiet', '--address', `127.0.0.1:${o.port}`, '--console-address', `127.0.0.1:${o.consolePort}`, o.dataDir],
    {
      env: { ...process.env, MINIO_ROOT_USER: o.accessKey, MINIO_ROOT_PASSWORD: o.secretKey, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return waitReady(child, 'minio', `http://127.0.0.1:${o.port}/minio/health/ready`);
}

/**
 * Start versitygw's posix backend on `dataDir`/root (buckets are its folders; versioning data in
 * `dataDir`/versions) at 127.0.0.1:`port`, the root credentials through its environment, and
 * wait (up to 60 s) until its health endpoint answers.
 */
async function launchVersitygw(
  bin: string,
  o: { dataDir: string; port: number; accessKey: string; secretKey: string },
): Promise<ChildProcess> {
  const root = join(o.dataDir, 'root');
  const versions = join(o.dataDir, 'versions');
  const iam = join(o.dataDir, 'iam');
  mkdirSync(root, { recursive: true });
  mkdirSync(versions, { recursive: true });
  mkdirSync(iam, { recursive: true });
  // --versioning-dir: versioning and Object Lock; --iam-dir: user accounts (createS3User).
  const child = spawn(
    bin,
    ['--port', `127.0.0.1:${o.port}`, '--health', '/health', '--quiet', '--iam-dir', iam, 'posix', '--versioning-dir', versions, root],
    { env: { ...process.env, ROOT_ACCESS_KEY: o.accessKey, ROOT_SECRET_KEY: o.secretKey }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return waitReady(child, 'versitygw', `http://127.0.0.1:${o.port}/health`);
}

/** Wait (up to 60 s) until `url` answers 200; the child is killed when it does not. */
async function waitReady(child: ChildProcess, name: string, url: string): Promise<ChildProcess> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await fetch(url);
      if (res.ok) return child;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not become ready at ${url}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A user account on a versitygw server (role `user`: it may touch a bucket only as the bucket's
 * policy allows), through versitygw's own admin CLI; the server runs with `--iam-dir`.
 * MinIO would need its admin API (`mc admin user add`), which the tests do not have.
 */
export async function createS3User(
  s3: Pick<S3Server, 'kind' | 'endpoint' | 'accessKey' | 'secretKey'>,
  user: { accessKey: string; secretKey: string },
): Promise<void> {
  if (s3.kind !== 'versitygw') throw new Error(`createS3User needs a versitygw server, not ${s3.kind}`);
  const bin = await ensureS3ServerBinary('versitygw');
  await execFileAsync(
    bin,
    ['admin', '--endpoint-url', s3.endpoint, 'create-user', '--access', user.accessKey, '--secret', user.secretKey, '--role', 'user'],
    { env: { ...process.env, ADMIN_ACCESS_KEY: s3.accessKey, ADMIN_SECRET_KEY: s3.secretKey } },
  );
}

/** Environment for the aws CLI against `s3` (a server of a test's own; services.ts' awsEnv is the shared one's). */
export function awsEnvOf(s3: Pick<S3Server, 'accessKey' | 'secretKey' | 'region'>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey,
    AWS_DEFAULT_REGION: s3.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** Every key in a bucket of `s3`, sorted (aws CLI, a client independent of pgbak). */
export async function bucketKeys(s3: S3Server, bucket: string): Promise<string[]> {
  const { stdout } = await execFileAsync(
    'aws',
    ['s3api', 'list-objects-v2', '--bucket', bucket, '--endpoint-url', s3.endpoint, '--query', 'Contents[].Key', '--output', 'json'],
    { env: awsEnvOf(s3) },
  );
  return ((JSON.parse(stdout || 'null') as string[] | null) ?? []).sort();
}
