import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './postgres-cluster.js';

const execFileAsync = promisify(execFile);

/** The MinIO source version `go install` builds when no binary is found (MinIO has no semver tags). */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';

export interface S3Server {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** The server process when we started it (fault tests kill it; restart() replaces it); undefined for S3_TEST_ENDPOINT. */
  readonly process: ChildProcess | undefined;
  /** Start our MinIO again on the same data dir and port (after a kill); not for S3_TEST_ENDPOINT. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  log?: (msg: string) => void;
  /**
   * Run a MinIO of our own on this data dir (even when S3_TEST_ENDPOINT is set), kept by stop():
   * a test that kills its server and starts it again on the same data.
   */
  dataDir?: string;
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pgbak', `minio-${MINIO_VERSION}`);
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/** MINIO_BIN, else `minio` on PATH, else the cached build, else build it once with `go install`. */
export async function ensureMinioBinary(log: (msg: string) => void = (m) => process.stderr.write(m + '\n')): Promise<string> {
  if (process.env.MINIO_BIN) return process.env.MINIO_BIN;
  const fromPath = onPath('minio');
  if (fromPath) return fromPath;
  const dir = cacheDir();
  const bin = join(dir, 'minio');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  log(`building MinIO ${MINIO_VERSION} with go install into ${dir} (once; takes several minutes)…`);
  const started = Date.now();
  await execFileAsync('go', ['install', `github.com/minio/minio@${MINIO_VERSION}`], {
    env: { ...process.env, GOBIN: dir, GOFLAGS: '-trimpath' },
    maxBuffer: 64 * 1024 * 1024,
  });
  log(`MinIO built in ${Math.round((Date.now() - started) / 1000)} s`);
  return bin;
}

/**
 * A real S3 server for tests: S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY) when
 * set, else a throwaway MinIO on 127.0.0.1 at a random port with a temp data dir (or
 * `options.dataDir`). Takes the options or just the log function.
 */
export async function startS3Server(options: S3ServerOptions | ((msg: string) => void) = {}): Promise<S3Server> {
  const { log, dataDir: ownDataDir } = typeof options === 'function' ? { log: options, dataDir: undefined } : options;
  if (process.env.S3_TEST_ENDPOINT && ownDataDir === undefined) {
    return {
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
  const bin = await ensureMinioBinary(log);
  const dataDir = ownDataDir ?? mkdtempSync(join(tmpdir(), 'pgbak-minio-'));
  const port = await freePort();
  const consolePort = await freePort();
  const accessKey = 'pgbak-test-access';
  const secretKey = 'pgbak-test-secret-' + Math.random().toString(36).slice(2, 12);
  const endpoint = `http://127.0.0.1:${port}`;
  const launch = () => launchMinio(bin, { dataDir, port, consolePort, accessKey, secretKey });
  let child = await launch();
  const running = () => child.exitCode === null && child.signalCode === null;
  log?.(`MinIO started at ${endpoint} (${dataDir})`);
  return {
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
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const endpoint = `http://127.0.0.1:${o.port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`minio exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await fetch(`${endpoint}/minio/health/ready`);
      if (res.ok) return child;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`minio did not become ready on ${endpoint}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Environment for the aws CLI against `s3` (a server of a test's own; services.ts' awsEnv is the shared one's). */
export function awsEnvOf(s3: S3Server): NodeJS.ProcessEnv {
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
