import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { ConflictError } from '../errors/index.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { runKey } from './backup-name.js';

/**
 * The run record `<name>.run.json`: the FIRST thing a backup run stores, in every location, with a
 * create-only put. It does two jobs:
 * - it claims the name: a second writer (an HA pair, a host and its replacement on the same
 *   schedule) whose create-only put finds the key taken moves on to another name instead of
 *   writing over the first run's objects;
 * - it proves ownership: a dump without a manifest is a leftover of pgbak's own failed run only when
 *   a run record names it; without one it is a foreign file (the guide's script, a manual pg_dump)
 *   and retention keeps it.
 * It stays beside the backup and is deleted with it, last.
 */

const RUN_RECORD_FORMAT = 'pgbak-run';

export interface RunRecord {
  readonly format: typeof RUN_RECORD_FORMAT;
  readonly version: 1;
  /** The backup name this run claimed. */
  readonly name: string;
  readonly runId: string;
  readonly job: string;
  readonly database: string;
  readonly systemIdentifier: string | undefined;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: string;
  /** What the run will store under this name (artifact, globals, manifest). */
  readonly keys: readonly string[];
}

export function newRunRecord(fields: Omit<RunRecord, 'format' | 'version' | 'host' | 'pid'>): RunRecord {
  return { format: RUN_RECORD_FORMAT, version: 1, host: hostname(), pid: process.pid, ...fields };
}

/** Parse a stored run record; undefined when it is not one. */
export function parseRunRecord(text: string): RunRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<RunRecord>;
    if (r.format !== RUN_RECORD_FORMAT || typeof r.name !== 'string' || typeof r.database !== 'string' || typeof r.runId !== 'string')
      return undefined;
    if (typeof r.startedAt !== 'string' || Number.isNaN(Date.parse(r.startedAt))) return undefined;
    return r as RunRecord;
  } catch {
    return undefined;
  }
}

/**
 * Store the record create-only. Resolves false when the name is already claimed in `backend`
 * (another run, here or on another host, has it); storage failures are thrown.
 */
export async function claimName(backend: StorageBackend, record: RunRecord, signal?: AbortSignal): Promise<boolean> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  try {
    await backend.put(runKey(record.name), Readable.from([body]), {
      contentLength: body.length,
      contentType: 'application/json',
      ifNoneMatch: true,
      ...(signal ? { signal } : {}),
    });
    return true;
  } catch (err) {
    if (err instanceof ConflictError) return false;
    throw err;
  }
}
