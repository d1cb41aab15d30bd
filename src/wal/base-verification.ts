import { Readable } from 'node:stream';
import type { StorageBackend } from '../storage/storage-backend.js';
import { basePrefix } from './base-manifest.js';

import type { VerificationRecord } from '../model/verification-record.js';

/** Verification record written next to a backup by `pgbak verify` (src/model/verification-record.ts). */
export type { VerificationRecord };

/**
 * The restore test of a base backup (`pgbak verify --restore-test`), recorded beside it as
 * `base/<system-id>/<name>.verification` in the dumps' VerificationRecord format. Not `.json`:
 * `prune` deletes it with its base backup (it keeps `.json` keys for the manifest, deleted first).
 */
export function baseVerificationKey(systemIdentifier: string, name: string): string {
  return `${basePrefix(systemIdentifier)}${name}.verification`;
}

export async function writeBaseVerification(backend: StorageBackend, systemIdentifier: string, record: VerificationRecord): Promise<void> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  await backend.put(baseVerificationKey(systemIdentifier, record.name), Readable.from([body]), {
    contentLength: body.length,
    contentType: 'application/json',
  });
}

/** Every readable restore-test record of a cluster's base backups in one location (unreadable ones are skipped). */
export async function listBaseVerifications(backend: StorageBackend, systemIdentifier: string): Promise<VerificationRecord[]> {
  const out: VerificationRecord[] = [];
  for await (const obj of backend.list(basePrefix(systemIdentifier))) {
    if (!obj.key.endsWith('.verification') || obj.size > 1024 * 1024) continue;
    try {
      const chunks: Buffer[] = [];
      for await (const c of await backend.get(obj.key)) chunks.push(c as Buffer);
      const r = JSON.parse(Buffer.concat(chunks).toString('utf8')) as VerificationRecord;
      if (r.format === 'pgbak-verification' && typeof r.verifiedAt === 'string') out.push(r);
    } catch {
      /* not a record of ours */
    }
  }
  return out;
}
