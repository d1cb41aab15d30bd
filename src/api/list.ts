import { listBackups, type BackupState, type CatalogEntry, type CopyInfo, type LocationName } from '../catalog/catalog.js';
import type { VerificationRecord } from '../catalog/manifest.js';
import { PRIMARY_TARGET, type JobConfig } from '../config/job.js';
import { messageOf, UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { CatalogSource } from '../catalog/find-backup.js';

/** One backup as `pgbak list` shows it (and `--json` prints it: docs/json.md). */
export interface ListedBackup {
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
    if (a && url) paths.push(url(a.key));
  }
  const copies: { local?: ListedCopy; remote?: ListedCopy } = {};
  for (const w of ['local', 'remote'] as const) {
    const c = e.locations[w];
    if (c) copies[w] = { state: c.state, problems: c.problems };
  }
  const v = e.verification;
  return {
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
  return a.name === b.name && a.database === b.database && agree(a.systemIdentifier, b.systemIdentifier) && agree(a.sha256, b.sha256);
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
  const shown = entries.map((e) => listed(e, urlOf));
  const extra = options.only === 'local' ? [] : (storage.extra ?? []);
  if (extra.length === 0) return shown;
  // Further targets: which bucket targets hold a good copy of each backup.
  const holding = new Map<string, string[]>();
  for (const e of shown) holding.set(e.name, e.copies.remote?.state === 'good' ? [PRIMARY_TARGET] : []);
  for (const t of extra) {
    let there: CatalogEntry[];
    try {
      there = await listBackups({ remote: t.backend });
    } catch (err) {
      options.logger?.warn(`cannot list target ${t.name}: ${messageOf(err)}`);
      continue;
    }
    for (const e of there) if (e.state === 'good') holding.get(e.name)?.push(t.name);
  }
  return shown.map((e) => ({ ...e, targets: holding.get(e.name) ?? [] }));
}
