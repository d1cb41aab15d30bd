import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureMinioBinary } from '../helpers/minio.js';
import { freePort } from '../helpers/postgres-cluster.js';
import { execFileAsync } from '../helpers/services.js';

/** `YYYYMMDD_HHMMSS` (UTC) of a date, as in backup names. */
export function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
}

/**
 * Copy a backup's files in `dir` under another name, as the fault run's clone.py did: file names
 * and the manifest's name, keys and startedAt rewritten (and `edit` for anything else); sizes
 * and sha256 are left as they are, since the bytes are the same.
 */
export function cloneBackup(dir: string, name: string, newName: string, edit: (m: Record<string, any>) => void = () => {}): string[] {
  const written: string[] = [];
  for (const f of readdirSync(dir).filter((x) => x.startsWith(`${name}.`) && !x.endsWith('.verify.json') && !x.endsWith('.run.json'))) {
    const to = newName + f.slice(name.length);
    if (f.endsWith('.manifest.json')) {
      const m = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      m.name = newName;
      m.artifact.key = newName + m.artifact.key.slice(name.length);
      if (m.globals) m.globals.key = newName + m.globals.key.slice(name.length);
      edit(m);
      writeFileSync(join(dir, to), JSON.stringify(m, null, 2) + '\n');
    } else copyFileSync(join(dir, f), join(dir, to));
    written.push(to);
  }
  return written;
}

/** Lines of `text` that match `re`. */
export function linesMatching(text: string, re: RegExp): string[] {
  return text.split('\n').filter((l) => re.test(l));
}

/** A MinIO of a test's own, on a fixed data dir and port, so it can be killed and started again on the same data. */
export interface OwnMinio {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly dataDir: string;
  process: ChildProcess;
  /** Start it again on the same data dir and port (after a kill). */
  restart(): Promise<void>;
  stop(): Promise<void>;
  awsEnv(): NodeJS.ProcessEnv;
}

async function launch(bin: string, dataDir: string, port: number, consolePort: number, accessKey: string, secretKey: string): Promise<ChildProcess> {
  const child = spawn(bin, ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, dataDir], {
    env: { ...process.env, MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`minio exited with ${child.exitCode}: ${stderr}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/minio/health/ready`)).ok) return child;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`minio did not become ready on port ${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function startOwnMinio(dataDir: string): Promise<OwnMinio> {
  const bin = await ensureMinioBinary();
  const [port, consolePort] = [await freePort(), await freePort()];
  const accessKey = 'fault-access';
  const secretKey = 'fault-secret-' + Math.random().toString(36).slice(2, 10);
  const m: OwnMinio = {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey,
    secretKey,
    dataDir,
    process: await launch(bin, dataDir, port, consolePort, accessKey, secretKey),
    async restart() {
      if (m.process.exitCode === null && m.process.signalCode === null) await new Promise((r) => m.process.once('exit', r));
      m.process = await launch(bin, dataDir, port, consolePort, accessKey, secretKey);
    },
    async stop() {
      if (m.process.exitCode === null && m.process.signalCode === null) {
        const exited = new Promise((r) => m.process.once('exit', r));
        m.process.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (m.process.exitCode === null) m.process.kill('SIGKILL');
      }
    },
    awsEnv: () => ({ ...process.env, AWS_ACCESS_KEY_ID: accessKey, AWS_SECRET_ACCESS_KEY: secretKey, AWS_DEFAULT_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' }),
  };
  return m;
}

/** Every key in a bucket of an own MinIO (aws CLI, a client independent of pgbak). */
export async function bucketKeys(m: OwnMinio, bucket: string): Promise<string[]> {
  const { stdout } = await execFileAsync(
    'aws',
    ['s3api', 'list-objects-v2', '--bucket', bucket, '--endpoint-url', m.endpoint, '--query', 'Contents[].Key', '--output', 'json'],
    { env: m.awsEnv() },
  );
  return ((JSON.parse(stdout || 'null') as string[] | null) ?? []).sort();
}
