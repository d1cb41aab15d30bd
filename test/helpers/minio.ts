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
  /** The server process when we started it (fault tests kill it); undefined for S3_TEST_ENDPOINT. */
  readonly process: ChildProcess | undefined;
  stop(): Promise<void>;
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
 * set, else a throwaway MinIO on 127.0.0.1 at a random port with a temp data dir.
 */
export async function startS3Server(log?: (msg: string) => void): Promise<S3Server> {
  if (process.env.S3_TEST_ENDPOINT) {
    return {
      endpoint: process.env.S3_TEST_ENDPOINT,
      accessKey: process.env.S3_TEST_ACCESS_KEY ?? '',
      secretKey: process.env.S3_TEST_SECRET_KEY ?? '',
      region: process.env.S3_TEST_REGION ?? 'us-east-1',
      process: undefined,
      async stop() {},
    };
  }
  const bin = await ensureMinioBinary(log);
  const dataDir = mkdtempSync(join(tmpdir(), 'pgbak-minio-'));
  const port = await freePort();
  const accessKey = 'pgbak-test-access';
  const secretKey = 'pgbak-test-secret-' + Math.random().toString(36).slice(2, 12);
  const child = spawn(bin, ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${await freePort()}`, dataDir], {
    env: { ...process.env, MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`minio exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await fetch(`${endpoint}/minio/health/ready`);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`minio did not become ready on ${endpoint}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  log?.(`MinIO started at ${endpoint} (${dataDir})`);
  return {
    endpoint,
    accessKey,
    secretKey,
    region: 'us-east-1',
    process: child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
