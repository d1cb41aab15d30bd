import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type { BackupResult } from '../model/backup-result.js';
import { redactValue } from '../logging/redact.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { readSmall } from './catalog.js';

/**
 * The last-run record: `.pgbak-<filePrefix>.last-run.json` next to the backups (in BACKUP_DIR and
 * in the bucket), holding the redacted BackupResult of the newest run of that database, failed
 * ones included. It lets `pgbak status` tell "the last run failed" from storage alone, on a host
 * that never ran a backup. The name is not a backup name (`parseKey` rejects it), so the catalog
 * and retention never see it; each run replaces it.
 */

const LAST_RUN_FORMAT = 'pgbak-last-run';

/** The record as stored. */
export interface LastRunRecord {
  readonly format: typeof LAST_RUN_FORMAT;
  readonly version: 1;
  readonly job: string;
  readonly database: string;
  /** The file prefix the record belongs to. */
  readonly prefix: string;
  readonly host: string;
  /** When the record was written (after the run and its reporting). */
  readonly recordedAt: string;
  readonly result: BackupResult;
}

const KEY_RE = /^\.pgbak-(.+)\.last-run\.json$/;
/** Key prefix shared by every last-run record, for listing. */
const LAST_RUN_KEY_PREFIX = '.pgbak-';

/** `.pgbak-<filePrefix>.last-run.json` */
export function lastRunKey(filePrefix: string): string {
  return `.pgbak-${filePrefix}.last-run.json`;
}

/** The file prefix of a last-run key; undefined for any other key. */
function prefixOfLastRunKey(key: string): string | undefined {
  return KEY_RE.exec(key)?.[1];
}

/** A record for `result`, redacted (no URL credentials or registered secrets). */
export function lastRunRecord(filePrefix: string, result: BackupResult, at: Date = new Date()): LastRunRecord {
  return {
    format: LAST_RUN_FORMAT,
    version: 1,
    job: result.job,
    database: result.database,
    prefix: filePrefix,
    host: hostname(),
    recordedAt: at.toISOString(),
    result: redactValue(result),
  };
}

/** Store the record atomically under its key (replacing the previous one). Throws AppErrors. */
export async function writeLastRun(backend: StorageBackend, record: LastRunRecord, signal?: AbortSignal): Promise<void> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  await backend.put(lastRunKey(record.prefix), Readable.from([body]), {
    contentLength: body.length,
    contentType: 'application/json',
    ...(signal ? { signal } : {}),
  });
}

/** Parse a stored record; undefined when it is not a valid last-run record. */
function parseLastRun(text: string): LastRunRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<LastRunRecord>;
    const res = r.result as Partial<BackupResult> | undefined;
    if (r.format !== LAST_RUN_FORMAT || typeof r.prefix !== 'string' || typeof r.recordedAt !== 'string' || !res) return undefined;
    if (typeof res.status !== 'string' || typeof res.startedAt !== 'string' || typeof res.finishedAt !== 'string') return undefined;
    if (Number.isNaN(Date.parse(res.finishedAt)) || Number.isNaN(Date.parse(r.recordedAt))) return undefined;
    return r as LastRunRecord;
  } catch {
    return undefined;
  }
}

/**
 * The record of `filePrefix` in `backend`; undefined when there is none or it is unreadable as a
 * record. Storage failures other than "not found" are thrown.
 */
export async function readLastRun(backend: StorageBackend, filePrefix: string): Promise<LastRunRecord | undefined> {
  const got = await readSmall(backend, lastRunKey(filePrefix));
  if (!got || 'tooLarge' in got) return undefined;
  const record = parseLastRun(got.text);
  return record && record.prefix === filePrefix ? record : undefined;
}

/** File prefixes that have a last-run record in `backend` (root level only). */
export async function lastRunPrefixes(backend: StorageBackend): Promise<string[]> {
  const out: string[] = [];
  for await (const obj of backend.list(LAST_RUN_KEY_PREFIX)) {
    const prefix = obj.key.includes('/') ? undefined : prefixOfLastRunKey(obj.key);
    if (prefix !== undefined) out.push(prefix);
  }
  return out;
}

/** The newer of two records (by the run's start), either may be absent. */
export function newerRecord(a: LastRunRecord | undefined, b: LastRunRecord | undefined): LastRunRecord | undefined {
  if (!a || !b) return a ?? b;
  return Date.parse(b.result.startedAt) > Date.parse(a.result.startedAt) ? b : a;
}

const RETIRED_FORMAT = 'pgbak-retired';

/**
 * A retired database (`pgbak status --forget DB`): `.pgbak-<filePrefix>.retired.json` beside the
 * last-run record, which it replaces. Status on a host without that database configured no longer
 * lists it while nothing newer than the retirement exists there (a backup or a run after it brings
 * the database back). Its backups are left alone.
 */
export interface RetirementRecord {
  readonly format: typeof RETIRED_FORMAT;
  readonly version: 1;
  readonly database: string;
  readonly prefix: string;
  readonly host: string;
  readonly retiredAt: string;
}

/** `.pgbak-<filePrefix>.retired.json` */
export function retirementKey(filePrefix: string): string {
  return `.pgbak-${filePrefix}.retired.json`;
}

/** Retire `database` in `backend`: write the marker, then remove its last-run record. Throws AppErrors. */
export async function retire(
  backend: StorageBackend,
  database: string,
  filePrefix: string,
  at: Date = new Date(),
): Promise<RetirementRecord> {
  const record: RetirementRecord = {
    format: RETIRED_FORMAT,
    version: 1,
    database,
    prefix: filePrefix,
    host: hostname(),
    retiredAt: at.toISOString(),
  };
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  await backend.put(retirementKey(filePrefix), Readable.from([body]), { contentLength: body.length, contentType: 'application/json' });
  await backend.delete(lastRunKey(filePrefix));
  return record;
}

/** The retirement of `filePrefix` in `backend`, when there is a valid one. */
export async function readRetirement(backend: StorageBackend, filePrefix: string): Promise<RetirementRecord | undefined> {
  const got = await readSmall(backend, retirementKey(filePrefix));
  if (!got || 'tooLarge' in got) return undefined;
  try {
    const r = JSON.parse(got.text) as Partial<RetirementRecord>;
    if (
      r.format !== RETIRED_FORMAT ||
      r.prefix !== filePrefix ||
      typeof r.retiredAt !== 'string' ||
      Number.isNaN(Date.parse(r.retiredAt))
    ) {
      return undefined;
    }
    return r as RetirementRecord;
  } catch {
    return undefined;
  }
}
