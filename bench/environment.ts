import { execFile } from 'node:child_process';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TOOL_VERSION } from '../src/version.js';
import { psql, type PgCluster } from '../test/helpers/postgres-cluster.js';

const execFileAsync = promisify(execFile);

/** The machine the bench ran on. */
export function machine(): Record<string, string | number> {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    host: hostname(),
  };
}

async function firstLine(cmd: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, args, { cwd });
    return (stdout.trim() || stderr.trim()).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

/** Versions of every program the bench times, so results stay comparable. */
export async function versions(cluster: PgCluster, minio: string, repo: string): Promise<Record<string, string>> {
  const pick = (text: string, re: RegExp) => re.exec(text)?.[1] ?? text;
  const [pgDump, zstd, lz4, gpg, aws, commit, dirty] = await Promise.all([
    firstLine(join(cluster.bindir, 'pg_dump'), ['--version']),
    firstLine('zstd', ['-V']),
    firstLine('lz4', ['-V']),
    firstLine('gpg', ['--version']),
    firstLine('aws', ['--version']),
    firstLine('git', ['rev-parse', '--short', 'HEAD'], repo),
    firstLine('git', ['status', '--porcelain', '--', 'src'], repo),
  ]);
  return {
    pgbak: `${TOOL_VERSION} (${commit}${dirty && dirty !== 'unknown' ? ', src modified' : ''})`,
    node: process.version,
    postgres: await psql(cluster, 'postgres', 'SHOW server_version').catch(() => 'unknown'),
    pg_dump: pick(pgDump, /(\d+\.\d+)/),
    zstd: pick(zstd, /v(\d+\.\d+\.\d+)/),
    lz4: pick(lz4, /v(\d+\.\d+\.\d+)/),
    gpg: pick(gpg, /(\d+\.\d+\.\d+)/),
    aws: pick(aws, /aws-cli\/(\S+)/),
    minio,
  };
}

/** "800MB", "50MB", "3.2GB", "5MB" → bytes (decimal units). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(kb|mb|gb|kib|mib|gib)?$/i.exec(text.trim());
  if (!m) throw new Error(`--size: expected e.g. 800MB or 3.2GB (got "${text}")`);
  const unit = (m[2] ?? 'mb').toLowerCase();
  const mult = { kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 }[unit]!;
  return Math.round(Number(m[1]) * mult);
}
