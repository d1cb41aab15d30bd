import { listBackups, type BackupState, type CatalogEntry, type CopyInfo, type LocationName } from '../catalog/catalog.js';
import { backupUrl, type VerificationRecord } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { messageOf, UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { openStorage, remoteTargetName, type JobStorage } from '../storage/job-storage.js';
import { CatalogSource } from '../catalog/find-backup.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { type BaseManifest, listBaseManifests } from '../wal/base-manifest.js';

/** One backup as `pgbak list` shows it (and `--json` prints it: docs/json.md). */
export interface ListedBackup {
  /** `dump` (pg_dump, the catalog's backups) or `base` (a physical base backup for point-in-time recovery). */
  readonly kind: 'dump' | 'base';
  readonly name: string;
  readonly database: string | undefined;
  /** The server's system identifier, from the manifest (undefined for a foreign dump). */
  readonly systemIdentifier: string | undefined;
  /** The artifact's sha256 from the manifest (undefined without one). */
  readonly sha256: string | undefined;
  /** ISO time the backup started. */
  readonly time: string;
  /** Artifact bytes. */
  readonly sizeBytes: number;
  readonly encrypted: boolean;
  /**
   * The locations holding a complete copy (its manifest and its artifact, good or not), local
   * first; empty when none does (a leftover of a failed run, a foreign file).
   */
  readonly locations: readonly LocationName[];
  /** The best state of its copies (good when one copy is). */
  readonly state: BackupState;
  /** Why a copy is not good, prefixed with its location, and disagreements between copies (empty when all is well). */
  readonly problems: readonly string[];
  /** Where the complete copies' artifacts are (path, s3:// URL), in the order of `locations`. */
  readonly paths: readonly string[];
  /**
   * Only with further bucket targets (STORAGE_2_*): the bucket targets holding a good copy
   * (`primary`, `secondary`, …), each with its own manifest.
   */
  readonly targets?: readonly string[] | undefined;
  /** Each location's copy, judged on its own. */
  readonly copies: { readonly local?: ListedCopy | undefined; readonly remote?: ListedCopy | undefined };
  /** A base backup's timeline and WAL positions (kind `base` only). */
  readonly base?: { readonly timeline: number; readonly startLsn: string; readonly stopLsn: string; readonly stopTime: string } | undefined;
  /** The newest verification: when (`time`), what kind, whether it passed, how long it took. */
  readonly verified: {
    readonly time: string;
    readonly ok: boolean;
    readonly kind: VerificationRecord['kind'];
    readonly durationMs: number;
  } | null;
}

/** One location's copy of a backup. */
export interface ListedCopy {
  readonly state: BackupState;
  /** Why this copy is not good (empty when good). */
  readonly problems: readonly string[];
}

export interface ListOptions {
  readonly job: Pick<JobConfig, 'backupDir' | 's3'>;
  /** Only this location (default both). */
  readonly only?: 'local' | 'remote' | undefined;
  /** Stops the bucket's requests (SIGTERM). */
  readonly signal?: AbortSignal | undefined;
  /** Gets the one warning when the bucket cannot be read and BACKUP_DIR alone is listed. */
  readonly logger?: Logger | undefined;
  /** The job's open storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
}

/** A copy is present only when its manifest and its artifact are. */
function complete(c: CopyInfo | undefined): boolean {
  return c !== undefined && c.manifest !== undefined && c.artifact !== undefined;
}

function listed(e: CatalogEntry, urlOf: Record<'local' | 'remote', ((key: string) => string) | undefined>): ListedBackup {
  const here = (['local', 'remote'] as const).filter((w) => complete(e.locations[w]));
  const paths: string[] = [];
  for (const w of here) {
    const a = e.locations[w]?.artifact;
    const url = urlOf[w];
    if (a && url) paths.push(e.manifest ? backupUrl(e.manifest, url) : url(a.key));
  }
  const copies: { local?: ListedCopy; remote?: ListedCopy } = {};
  for (const w of ['local', 'remote'] as const) {
    const c = e.locations[w];
    if (c) copies[w] = { state: c.state, problems: c.problems };
  }
  const v = e.verification;
  return {
    kind: 'dump',
    name: e.name,
    database: e.database,
    systemIdentifier: e.systemIdentifier,
    sha256: e.manifest?.artifact.sha256,
    time: e.time.toISOString(),
    sizeBytes: e.size,
    encrypted: e.encrypted,
    locations: here,
    state: e.state,
    problems: e.problems,
    paths,
    copies,
    verified: v ? { time: v.verifiedAt, ok: v.ok, kind: v.kind, durationMs: v.durationMs } : null,
  };
}

const STATE_RANK: Record<BackupState, number> = { good: 0, corrupt: 1, incomplete: 2, foreign: 3 };

/**
 * Are two listings (from two jobs sharing BACKUP_DIR or a bucket) the same backup? Only with the
 * same name, the same database and, where both know them, the same server and the same artifact
 * sha256: a same-named backup of another server's database of that name is another backup.
 */
export function sameBackup(a: ListedBackup, b: ListedBackup): boolean {
  const agree = <T>(x: T | undefined, y: T | undefined) => x === undefined || y === undefined || x === y;
  return (
    a.kind === b.kind &&
    a.name === b.name &&
    a.database === b.database &&
    agree(a.systemIdentifier, b.systemIdentifier) &&
    agree(a.sha256, b.sha256)
  );
}

/**
 * One listing of a backup seen by several jobs: every location either saw (a job whose bucket
 * prefix holds it sees it remote too), each copy as the job that saw it judged it, the best state,
 * every problem once, the newest verification.
 */
export function mergeListed(a: ListedBackup, b: ListedBackup): ListedBackup {
  const locations = (['local', 'remote'] as const).filter((w) => a.locations.includes(w) || b.locations.includes(w));
  const pathOf = (w: LocationName) => {
    for (const x of [a, b]) {
      const i = x.locations.indexOf(w);
      if (i >= 0 && x.paths[i] !== undefined) return x.paths[i];
    }
    return undefined;
  };
  const paths = locations.map(pathOf).filter((p) => p !== undefined);
  const copies = { local: a.copies.local ?? b.copies.local, remote: a.copies.remote ?? b.copies.remote };
  const state = STATE_RANK[b.state] < STATE_RANK[a.state] ? b.state : a.state;
  const problems = [...new Set([...a.problems, ...b.problems])];
  const verified = !a.verified ? b.verified : !b.verified ? a.verified : a.verified.time >= b.verified.time ? a.verified : b.verified;
  return {
    ...a,
    systemIdentifier: a.systemIdentifier ?? b.systemIdentifier,
    sha256: a.sha256 ?? b.sha256,
    locations,
    paths,
    copies: Object.fromEntries(Object.entries(copies).filter(([, c]) => c !== undefined)),
    state,
    problems,
    verified,
    ...(a.targets || b.targets ? { targets: [...new Set([...(a.targets ?? []), ...(b.targets ?? [])])] } : {}),
  };
}

/**
 * Every backup in BACKUP_DIR and in the bucket (whatever its database), merged by name, newest
 * first, with its state and newest verification.
 */
export async function list(options: ListOptions): Promise<ListedBackup[]> {
  await using storage = openStorage(options.job, { signal: options.signal, shared: options.storage });
  if (options.only === 'remote' && !storage.remote) {
    throw new UsageError('--from remote: no bucket is configured', { hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
  }
  const source = new CatalogSource({
    local: options.only === 'remote' ? undefined : storage.local,
    remote: options.only === 'local' ? undefined : storage.remote,
  });
  const entries = await source.list();
  for (const w of source.warnings) options.logger?.warn(w);
  const urlOf = {
    local: (k: string) => storage.local.urlOf(k),
    remote: storage.remote ? (k: string) => storage.remote!.urlOf(k) : undefined,
  };
  const bases = await listBaseBackups(
    {
      local: options.only === 'remote' ? undefined : storage.local,
      remote: options.only === 'local' ? undefined : storage.remote,
    },
    (w) => options.logger?.warn(w),
  );
  const dumps = await withTargets(
    entries.map((e) => listed(e, urlOf)),
    storage,
    options.only,
    options.logger,
  );
  return [...dumps, ...bases];
}

/** Only with further bucket targets (STORAGE_2_*): which bucket targets hold a good copy of each backup. */
async function withTargets(
  shown: ListedBackup[],
  storage: JobStorage,
  only: ListOptions['only'],
  logger: Logger | undefined,
): Promise<ListedBackup[]> {
  const extra = only === 'local' ? [] : (storage.extra ?? []);
  if (extra.length === 0) return shown;
  // Further targets: which bucket targets hold a good copy of each backup.
  const holding = new Map<string, string[]>();
  for (const e of shown) holding.set(e.name, e.copies.remote?.state === 'good' ? [remoteTargetName(storage)] : []);
  for (const t of extra) {
    let there: CatalogEntry[];
    try {
      there = await listBackups({ remote: t.backend });
    } catch (err) {
      logger?.warn(`cannot list target ${t.name}: ${messageOf(err)}`);
      continue;
    }
    for (const e of there) {
      if (e.state !== 'good') continue;
      const held = holding.get(e.name);
      if (held) held.push(t.name);
      else {
        // Only in this target (the first bucket lost it, or never had it): listed too, as its copy there.
        holding.set(e.name, [t.name]);
        shown.push(listed(e, { local: undefined, remote: (k) => t.backend.urlOf(k) }));
      }
    }
  }
  shown.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  return shown.map((e) => ({ ...e, targets: holding.get(e.name) ?? [] }));
}

/**
 * The base backups (`base/<system-id>/<name>.json` + artifact) in the given locations, as `pgbak
 * list` shows them: kind `base`, with the timeline and LSNs. A copy counts when its manifest and
 * its artifact are both there; a manifest whose artifact is gone is `incomplete` there.
 */
export async function listBaseBackups(
  backends: Partial<Record<LocationName, StorageBackend>>,
  warn: (message: string) => void,
): Promise<ListedBackup[]> {
  const found = new Map<string, { m: BaseManifest; here: Map<LocationName, { state: BackupState; path: string; problems: string[] }> }>();
  for (const where of ['local', 'remote'] as const) {
    const backend = backends[where];
    if (!backend) continue;
    const keys = new Set<string>();
    const sysids = new Set<string>();
    try {
      for await (const o of backend.list('base/')) {
        keys.add(o.key);
        const id = /^base\/(\d+)\//.exec(o.key)?.[1];
        if (id) sysids.add(id);
      }
    } catch (err) {
      // The dumps' listing says the same of an unreachable bucket; base backups there are left out.
      warn(`base backups in ${backend.urlOf('base/')} not listed: ${messageOf(err)}`);
      continue;
    }
    for (const sysid of sysids) {
      for (const m of await listBaseManifests(backend, sysid)) {
        const id = `${sysid}/${m.name}`;
        const entry = found.get(id) ?? { m, here: new Map() };
        const ok = keys.has(m.artifact.key);
        entry.here.set(where, {
          state: ok ? 'good' : 'incomplete',
          path: backend.urlOf(m.artifact.key),
          problems: ok ? [] : [`${where}: artifact missing`],
        });
        found.set(id, entry);
      }
    }
  }
  return [...found.values()].map(({ m, here }) => {
    const locations = (['local', 'remote'] as const).filter((w) => here.get(w)?.state === 'good');
    const copies = Object.fromEntries([...here].map(([w, c]) => [w, { state: c.state, problems: c.problems }]));
    return {
      kind: 'base' as const,
      name: m.name,
      database: undefined,
      systemIdentifier: m.systemIdentifier,
      sha256: m.artifact.sha256,
      time: m.startTime,
      sizeBytes: m.artifact.size,
      encrypted: m.artifact.encryptedTo !== null,
      locations,
      state: locations.length ? 'good' : 'incomplete',
      problems: [...here.values()].flatMap((c) => c.problems),
      paths: locations.map((w) => here.get(w)!.path),
      copies,
      verified: null,
      base: { timeline: m.timeline, startLsn: m.startLsn, stopLsn: m.stopLsn, stopTime: m.stopTime },
    };
  });
}

/**
 * `list --database NAME`: the backups of that database. None while others are listed: a usage
 * error naming the databases there are backups of (a typo is not "no backups").
 */
export function backupsOfDatabase(listed: readonly ListedBackup[], database: string): ListedBackup[] {
  const picked = listed.filter((b) => b.database === database);
  const others = [...new Set(listed.map((b) => b.database).filter((d): d is string => d !== undefined))].sort();
  if (picked.length === 0 && others.length > 0) {
    throw new UsageError(`--database ${database}: no backups of that database here`, { hint: `backups are of: ${others.join(', ')}` });
  }
  return picked;
}
