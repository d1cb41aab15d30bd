import { Readable } from 'node:stream';
import { AppError, ConflictError, ExitCode, NotFoundError } from '../errors/index.js';
import type { StorageBackend, StoredObject } from '../storage/storage-backend.js';
import { parseEncodingSuffix } from './wal-encoding.js';
import { parseWalFileName, type WalFileName } from './wal-names.js';

/**
 * The WAL archive's layout in a job's storage (the bucket when one is configured, else BACKUP_DIR):
 *
 *   wal/cluster.json                               the cluster this prefix belongs to (created by the first push)
 *   wal/<system-id>/<file>~<sha256><encoding>      one archived file: its name, the sha256 of its plain
 *                                                   bytes, then how it is stored (.zst, .gpg …)
 *
 * The plain sha256 in the key lets a push compare a file already there without downloading it,
 * lets a fetch check what it decoded, and makes two different contents of one name two keys that
 * `verify --wal` sees, never one object silently replaced.
 */
export const MARKER_KEY = 'wal/cluster.json';

export interface ClusterMarker {
  readonly format: 'pgbak-wal-cluster';
  readonly systemIdentifier: string;
  readonly segmentSize: number;
  readonly createdAt: string;
}

/** One archived file. */
export interface ArchivedWal {
  readonly key: string;
  readonly file: WalFileName;
  /** The sha256 of the plain (decoded) file. */
  readonly sha256: string;
  readonly encoding: { method: 'gzip' | 'zstd' | 'lz4' | 'none'; encrypted: boolean };
  readonly size: number;
  readonly modified: Date;
}

/** Where the archive is, for people: `s3://bucket/prefix/wal/`. */
export function archiveLocation(backend: StorageBackend): string {
  return backend.urlOf(MARKER_KEY).replace(/cluster\.json$/, '');
}

export function walPrefix(systemIdentifier: string): string {
  return `wal/${systemIdentifier}/`;
}

export function walKey(systemIdentifier: string, name: string, sha256: string, suffix: string): string {
  return `${walPrefix(systemIdentifier)}${name}~${sha256}${suffix}`;
}

const KEY = /^wal\/(\d+)\/([^/~]+)~([0-9a-f]{64})([.a-z0-9]*)$/;

/** Parse an archive key; undefined for anything pgbak did not write there. */
export function parseWalKey(obj: StoredObject): ArchivedWal | undefined {
  const m = KEY.exec(obj.key);
  if (!m) return undefined;
  const file = parseWalFileName(m[2]!);
  const encoding = parseEncodingSuffix(m[4]!);
  if (!file || !encoding) return undefined;
  return { key: obj.key, file, sha256: m[3]!, encoding, size: obj.size, modified: obj.modified };
}

/** The archived copies of one file name (normally one). */
export async function findArchived(backend: StorageBackend, systemIdentifier: string, name: string): Promise<ArchivedWal[]> {
  const out: ArchivedWal[] = [];
  for await (const obj of backend.list(`${walPrefix(systemIdentifier)}${name}~`)) {
    const parsed = parseWalKey(obj);
    if (parsed && parsed.file.name === name) out.push(parsed);
  }
  return out;
}

/** Every archived file of a cluster, sorted by name (timeline, then segment). */
export async function listArchived(backend: StorageBackend, systemIdentifier: string): Promise<ArchivedWal[]> {
  const out: ArchivedWal[] = [];
  for await (const obj of backend.list(walPrefix(systemIdentifier))) {
    const parsed = parseWalKey(obj);
    if (parsed) out.push(parsed);
  }
  return out.sort((a, b) => (a.file.name < b.file.name ? -1 : a.file.name > b.file.name ? 1 : 0));
}

/** The archive's cluster marker; undefined when nothing was archived under this prefix yet. */
export async function readMarker(backend: StorageBackend): Promise<ClusterMarker | undefined> {
  let body: Readable;
  try {
    body = await backend.get(MARKER_KEY);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    const m = JSON.parse(text) as ClusterMarker;
    if (m.format === 'pgbak-wal-cluster' && /^\d+$/.test(m.systemIdentifier)) return m;
  } catch {
    /* reported below */
  }
  throw new AppError('wal-marker-corrupt', `${backend.urlOf(MARKER_KEY)} is not a pgbak WAL archive marker`, {
    exitCode: ExitCode.integrity,
    hint: 'something else wrote there; point STORAGE_PREFIX at a prefix of its own for this cluster',
  });
}

/** The error of a cluster pushing into (or restoring from) another cluster's archive. */
export function wrongClusterError(backend: StorageBackend, archive: string, ours: string): AppError {
  return new AppError(
    'wal-wrong-cluster',
    `the WAL archive at ${archiveLocation(backend)} belongs to the cluster with system identifier ${archive}, not to this one (${ours})`,
    {
      exitCode: ExitCode.usage,
      hint: 'each cluster needs its own STORAGE_PREFIX (or bucket): a WAL archive holds one cluster only; after an initdb or pg_upgrade use a new prefix',
    },
  );
}

/**
 * The archive's marker, created for `systemIdentifier` when there is none yet (create-only, so
 * two first pushes agree). Throws when the archive belongs to another cluster.
 */
export async function claimArchive(backend: StorageBackend, systemIdentifier: string, segmentSize: number): Promise<ClusterMarker> {
  let marker = await readMarker(backend);
  if (!marker) {
    const mine: ClusterMarker = { format: 'pgbak-wal-cluster', systemIdentifier, segmentSize, createdAt: new Date().toISOString() };
    const body = Buffer.from(JSON.stringify(mine, null, 2) + '\n');
    try {
      await backend.put(MARKER_KEY, Readable.from([body]), {
        ifNoneMatch: true,
        contentLength: body.length,
        contentType: 'application/json',
      });
      marker = mine;
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      marker = await readMarker(backend);
      if (!marker) throw err;
    }
  }
  if (marker.systemIdentifier !== systemIdentifier) throw wrongClusterError(backend, marker.systemIdentifier, systemIdentifier);
  return marker;
}
