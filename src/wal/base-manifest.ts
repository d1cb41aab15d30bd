import { Readable } from 'node:stream';
import type { StorageBackend } from '../storage/storage-backend.js';

/**
 * A base backup's manifest, written last (locally, then in the bucket): until it exists the base
 * backup does not count. Keys: `base/<system-id>/<name>.tar<encoding>` and `base/<system-id>/<name>.json`.
 */
export interface BaseManifest {
  readonly format: 'pgbak-basebackup';
  readonly version: 1;
  readonly name: string;
  readonly systemIdentifier: string;
  readonly serverVersion: string;
  readonly timeline: number;
  readonly startLsn: string;
  readonly stopLsn: string;
  /** When pg_basebackup started (pgbak's clock). */
  readonly startTime: string;
  /** When pg_basebackup had ended and its WAL was archived (pgbak's clock): a recovery target must be later. */
  readonly stopTime: string;
  readonly label: string;
  /** The backup history file PostgreSQL archived (START/STOP WAL LOCATION, CHECKPOINT, LABEL …). */
  readonly backupLabel: string;
  readonly walSegmentSize: number;
  /** The WAL segments from start to stop, all checked to be archived before this manifest was written. */
  readonly firstSegment: string;
  readonly lastSegment: string;
  readonly artifact: {
    readonly key: string;
    readonly size: number;
    readonly sha256: string;
    readonly compression: string;
    /** GPG_RECIPIENT, or null when not encrypted. */
    readonly encryptedTo: string | null;
  };
  readonly copies: readonly ('local' | 'remote')[];
  readonly durationMs: number;
}

export function basePrefix(systemIdentifier: string): string {
  return `base/${systemIdentifier}/`;
}

export function baseManifestKey(systemIdentifier: string, name: string): string {
  return `${basePrefix(systemIdentifier)}${name}.json`;
}

export async function writeBaseManifest(backend: StorageBackend, manifest: BaseManifest): Promise<void> {
  const body = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  await backend.put(baseManifestKey(manifest.systemIdentifier, manifest.name), Readable.from([body]), {
    contentLength: body.length,
    contentType: 'application/json',
  });
}

/** Every base backup manifest of a cluster in one location (unreadable ones are skipped: their backup does not count). */
export async function listBaseManifests(backend: StorageBackend, systemIdentifier: string): Promise<BaseManifest[]> {
  const out: BaseManifest[] = [];
  for await (const obj of backend.list(basePrefix(systemIdentifier))) {
    if (!obj.key.endsWith('.json')) continue;
    try {
      const chunks: Buffer[] = [];
      for await (const c of await backend.get(obj.key)) chunks.push(c as Buffer);
      const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as BaseManifest;
      if (m.format === 'pgbak-basebackup' && m.systemIdentifier === systemIdentifier) out.push(m);
    } catch {
      /* not a manifest of ours */
    }
  }
  return out.sort((a, b) => (a.stopTime < b.stopTime ? -1 : 1));
}
