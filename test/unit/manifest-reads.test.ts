import { rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { listBackups, ManifestReads } from '../../src/catalog/catalog.js';
import { serializeManifest } from '../../src/catalog/manifest.js';
import { LocalBackend } from '../../src/storage/local-backend.js';
import { fakeManifest, writeFakeBackup } from '../helpers/fake-backups.js';
import { tempDir } from '../helpers/services.js';

/** A real BACKUP_DIR whose reads are counted by key. */
function countedBackend() {
  const dir = tempDir('pgbak-reads-');
  const backend = new LocalBackend(dir);
  const gets: string[] = [];
  const get = backend.get.bind(backend);
  backend.get = (key, options) => {
    gets.push(key);
    return get(key, options);
  };
  return { dir, backend, gets, manifestGets: () => gets.filter((k) => k.endsWith('.manifest.json')).length };
}

describe('ManifestReads: the steps after a backup read each manifest once', () => {
  it('a second listing with the same reads gets no manifest again; without them it does', async () => {
    const { dir, backend, manifestGets } = countedBackend();
    try {
      for (let i = 0; i < 5; i++) await writeFakeBackup(backend, { prefix: 'shop', time: new Date(Date.UTC(2026, 10, 1 + i)) });
      const reads = new ManifestReads();
      const first = await listBackups({ local: backend, prefix: 'shop', reads });
      expect(manifestGets()).toBe(5);
      const second = await listBackups({ local: backend, prefix: 'shop', reads });
      expect(manifestGets()).toBe(5);
      expect(second).toEqual(first);
      expect(second.map((e) => e.state)).toEqual(Array(5).fill('good'));
      await listBackups({ local: backend, prefix: 'shop' });
      expect(manifestGets()).toBe(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a manifest of another size under the same key is read again, and what it says is used', async () => {
    const { dir, backend, manifestGets } = countedBackend();
    try {
      const b = await writeFakeBackup(backend, { prefix: 'shop', time: new Date(Date.UTC(2026, 10, 1)) });
      const reads = new ManifestReads();
      expect((await listBackups({ local: backend, prefix: 'shop', reads }))[0]!.state).toBe('good');
      // Rewritten behind pgbak's back with a wrong artifact size (1000 bytes): a longer text.
      const bad = fakeManifest({
        name: b.name,
        database: 'shop',
        startedAt: new Date(Date.UTC(2026, 10, 1)),
        artifact: { key: b.artifact, body: 'x'.repeat(1000) },
      });
      const text = serializeManifest(bad);
      await backend.put(b.manifest, Readable.from([Buffer.from(text)]), { contentLength: Buffer.byteLength(text) });
      const after = await listBackups({ local: backend, prefix: 'shop', reads });
      expect(manifestGets()).toBe(2);
      expect(after[0]!.state).not.toBe('good');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
