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
