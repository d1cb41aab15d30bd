import type { Duplex } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { Compression, CompressionMethod } from '../config/parsers.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { decompressStage } from '../pipeline/compression.js';
import { gpgDecryptStage, gpgEncryptStage } from '../pipeline/gpg.js';

/** The suffix of a stored file that says how it was encoded: `.zst`, `.zst.gpg`, `` … */
export function encodingSuffix(compression: Compression, encrypted: boolean): string {
  return `${extensionOf(compression.method)}${encrypted ? '.gpg' : ''}`;
}

function extensionOf(method: CompressionMethod): string {
  return { zstd: '.zst', lz4: '.lz4', gzip: '.gz', none: '' }[method];
}

/** The encoding a suffix names; undefined when it is not one pgbak writes. */
export function parseEncodingSuffix(suffix: string): { method: CompressionMethod; encrypted: boolean } | undefined {
  const encrypted = suffix.endsWith('.gpg');
  const rest = encrypted ? suffix.slice(0, -4) : suffix;
  const method = ({ '.zst': 'zstd', '.lz4': 'lz4', '.gz': 'gzip', '': 'none' } as const)[rest];
  return method === undefined ? undefined : { method, encrypted };
}

/**
 * The stages that encode a physical backup's bytes: the compressor (zstd and lz4 as child
 * processes, gzip in node's zlib thread pool), then gpg to `recipient`. Created in the caller's
 * tick, so consecutive child stages are joined by kernel pipes (ChildStage.connect).
 * `threads`: zstd on every core (-T0), for a base backup's one long stream as for dumps; a WAL
 * segment (16 MiB) stays single-threaded, the push-ahead worker runs several at once instead.
 * `file`: zstd and lz4 read that file themselves (the stages then start the chain, no input);
 * with gzip or no compression the caller still streams the file in.
 */
export function encodeStages(
  compression: Compression,
  recipient: string | undefined,
  options: { threads?: boolean; file?: string } = {},
): Duplex[] {
  const stages: Duplex[] = [];
  const c = compression;
  // `file`: the compressor reads it itself (a WAL segment): 16 MiB less through node and a pipe.
  const from = options.file === undefined ? [] : ['--', options.file];
  const input = options.file === undefined;
  if (c.method === 'zstd') {
    stages.push(
      new ChildStage({
        label: 'zstd',
        command: 'zstd',
        args: [`-${c.level}`, ...(c.level > 19 ? ['--ultra'] : []), ...(options.threads ? ['-T0'] : []), '-q', '-c', ...from],
        input,
      }),
    );
  } else if (c.method === 'lz4') {
    stages.push(new ChildStage({ label: 'lz4', command: 'lz4', args: [`-${c.level}`, '-q', '-c', ...from], input }));
  } else if (c.method === 'gzip') {
    stages.push(createGzip({ level: c.level }));
  }
  // gpg resolves the recipient itself: one `gpg --list-keys` less per WAL segment.
  if (recipient) stages.push(gpgEncryptStage({ recipient, fingerprint: recipient, uid: '' }));
  return stages;
}

/** The stages that decode what {@link encodeStages} wrote. */
export function decodeStages(encoding: { method: CompressionMethod; encrypted: boolean }): Duplex[] {
  const stages: Duplex[] = [];
  if (encoding.encrypted) stages.push(gpgDecryptStage());
  if (encoding.method === 'zstd' || encoding.method === 'lz4') stages.push(decompressStage(encoding.method));
  else if (encoding.method === 'gzip') stages.push(createGunzip());
  return stages;
}
