import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError } from '../errors/index.js';
import { ChildStage } from '../pipeline/child-stage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { ArchivedWal } from './wal-archive.js';
import { decodeStages } from './wal-encoding.js';

/** The decoded text of a small archived file (a .history or .backup file), checked against its sha256. */
export async function readArchivedText(backend: StorageBackend, copy: ArchivedWal, signal?: AbortSignal): Promise<string> {
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      chunks.push(chunk);
      cb();
    },
  });
  const stages = decodeStages(copy.encoding);
  ChildStage.connect(stages);
  const body = await backend.get(copy.key, signal ? { signal } : {});
  await pipeline([body, ...stages, sink], ...(signal ? [{ signal }] : []));
  const sha = hash.digest('hex');
  if (sha !== copy.sha256)
    throw new IntegrityError(`${copy.file.name} in ${backend.urlOf(copy.key)} is corrupt (sha256 ${sha}, recorded ${copy.sha256})`);
  return Buffer.concat(chunks).toString('utf8');
}

/** The fields of a backup history file (`START WAL LOCATION: 0/4000028 (file …)` …). */
export interface BackupHistory {
  readonly startLsn: string;
  readonly stopLsn: string;
  readonly startTimeline: number;
  readonly stopTimeline: number;
  readonly label: string;
}

export function parseBackupHistory(text: string): BackupHistory | undefined {
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const start = /^([0-9A-F]+\/[0-9A-F]+)/i.exec(field('START WAL LOCATION') ?? '')?.[1];
  const stop = /^([0-9A-F]+\/[0-9A-F]+)/i.exec(field('STOP WAL LOCATION') ?? '')?.[1];
  const label = field('LABEL');
  if (!start || !stop || label === undefined) return undefined;
  return {
    startLsn: start,
    stopLsn: stop,
    startTimeline: Number(field('START TIMELINE') ?? 1),
    stopTimeline: Number(field('STOP TIMELINE') ?? field('START TIMELINE') ?? 1),
    label,
  };
}
