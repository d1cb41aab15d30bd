import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { artifactKey, baseName, globalsKey, manifestKey, runKey, verificationKey } from '../../src/catalog/backup-name.js';
import {
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  serializeManifest,
  type Manifest,
  type VerificationRecord,
} from '../../src/catalog/manifest.js';
import type { StorageBackend } from '../../src/storage/storage-backend.js';

/**
 * Fake backups for retention and catalog tests: real keys and manifests written through real
 * backends, with a small body instead of a pg_dump archive (retention never reads artifacts).
 */

export const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** A valid manifest for `name`; override any field (e.g. a wrong artifact size). */
export function fakeManifest(opts: {
  name: string;
  database: string;
  startedAt: Date;
  artifact: { key: string; body: string | Buffer };
  globals?: { key: string; body: string | Buffer } | undefined;
  encrypted?: boolean;
  overrides?: Partial<Manifest>;
}): Manifest {
  const file = (f: { key: string; body: string | Buffer }) => ({ key: f.key, size: Buffer.byteLength(f.body), sha256: sha256(f.body) });
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    name: opts.name,
    job: opts.database,
    database: opts.database,
    host: 'localhost',
    startedAt: opts.startedAt.toISOString(),
    finishedAt: new Date(opts.startedAt.getTime() + 1000).toISOString(),
    durationMs: 1000,
    server: { version: '17.0', versionNum: 170000 },
    pgDump: { version: '17.0', path: '/usr/bin/pg_dump' },
    tool: { name: 'pgbak', version: '0.0.0-test' },
    compression: { method: 'gzip', level: 6, by: 'pg_dump' },
    encryption: opts.encrypted ? { method: 'gpg', recipient: 'test@example.test', fingerprint: 'F'.repeat(40) } : null,
    artifact: file(opts.artifact),
    globals: opts.globals ? file(opts.globals) : null,
    tables: null,
    ...opts.overrides,
  };
}

export interface FakeBackupSpec {
  /** File prefix of the name. */
  prefix: string;
  /** Database in the manifest (default: the prefix). */
  database?: string;
  time: Date;
  body?: string;
  encrypted?: boolean;
  globals?: boolean;
  /** ok (default), none (a leftover), unparseable (garbage JSON), or only (manifest without artifact). */
  manifest?: 'ok' | 'none' | 'unparseable' | 'only';
  overrides?: Partial<Manifest>;
  verification?: { ok: boolean; verifiedAt?: Date };
  /**
   * Write the run record that a pgbak run stores first (default: only for manifest 'none', so a
   * manifest-less fake is pgbak's own failed run; `false` makes it a foreign file). Its host is
   * another machine's, so retention cannot tell whether the run is still going.
   */
  run?: boolean;
}

export interface FakeBackup {
  name: string;
  /** Every key written, in write order (the manifest last, as pgbak does). */
  keys: string[];
  artifact: string;
  manifest: string;
}

const put = (backend: StorageBackend, key: string, text: string | Buffer) =>
  backend.put(key, Readable.from([Buffer.from(text)]), { contentLength: Buffer.byteLength(text) });

/** Write one fake backup to each backend (the same keys in all). */
export async function writeFakeBackup(backends: StorageBackend | StorageBackend[], spec: FakeBackupSpec): Promise<FakeBackup> {
  const name = baseName(spec.prefix, spec.time);
  const encrypted = spec.encrypted ?? false;
  const artifact = { key: artifactKey(name, { encrypted }), body: spec.body ?? `fake dump of ${name}\n` };
  const globals = spec.globals ? { key: globalsKey(name, encrypted), body: `-- globals of ${name}\n` } : undefined;
  const mode = spec.manifest ?? 'ok';
  const files: [string, string][] = [];
  if (spec.run ?? mode === 'none') {
    const record = {
      format: 'pgbak-run',
      version: 1,
      name,
      runId: `fake-${name}`,
      job: spec.database ?? spec.prefix,
      database: spec.database ?? spec.prefix,
      systemIdentifier: undefined,
      host: 'elsewhere.test',
      pid: 1,
      startedAt: spec.time.toISOString(),
      keys: [artifact.key],
    };
    files.push([runKey(name), JSON.stringify(record)]);
  }
  if (mode !== 'only') files.push([artifact.key, artifact.body]);
  if (globals) files.push([globals.key, globals.body]);
  if (spec.verification) {
    const record: VerificationRecord = {
      format: 'pgbak-verification',
      version: 1,
      name,
      verifiedAt: (spec.verification.verifiedAt ?? new Date(spec.time.getTime() + 60_000)).toISOString(),
      ok: spec.verification.ok,
      kind: 'checksum',
      durationMs: 5,
      checks: [{ check: 'sha256', ok: spec.verification.ok }],
    };
    files.push([verificationKey(name), JSON.stringify(record)]);
  }
  if (mode === 'unparseable') files.push([manifestKey(name), '{"format": "pgbak-manifest", trunc']);
  else if (mode !== 'none') {
    const m = fakeManifest({
      name,
      database: spec.database ?? spec.prefix,
      startedAt: spec.time,
      artifact,
      globals,
      encrypted,
      overrides: spec.overrides,
    });
    files.push([manifestKey(name), serializeManifest(m)]);
  }
  for (const backend of Array.isArray(backends) ? backends : [backends]) {
    for (const [key, text] of files) await put(backend, key, text);
  }
  return { name, keys: files.map(([k]) => k), artifact: artifact.key, manifest: manifestKey(name) };
}

/** Run `fn` over `items` with at most `limit` running at once. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Every key in a backend, sorted. */
export async function keysOf(backend: StorageBackend): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of backend.list()) keys.push(o.key);
  return keys.sort();
}
