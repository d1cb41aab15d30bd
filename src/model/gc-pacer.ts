/**
 * Every chunk node reads from a socket or a pipe is a fresh 64 KiB ArrayBuffer outside V8's heap.
 * V8 frees them only in a garbage collection, and it starts one for "external memory pressure"
 * only after 15-30 MB of them piled up: at loopback speed (300 MB/s) that is the peak RSS of a
 * download (+37 MB over the process's start, docs/performance.md). With `--expose-gc` (bin/pgbak's
 * shebang sets it) the stream stages call {@link paceGc} with the bytes they passed, and every
 * {@link PACE_BYTES} a minor GC (a scavenge of the 1 MiB young generation: ~0.2 ms) frees the
 * chunks already passed on. Without the flag (node dist/cli/main.js, tests) it does nothing.
 * The queues between stages stay small (64-256 KiB, not 1 MiB) for the same reason: a chunk that
 * waits through two minor GCs is moved to the old generation and lives until a full GC.
 * Measured: restore --jobs 2 from the bucket 97-103 MB → 70-74, backup (d) 74 → 68 (performance.md).
 */
export const PACE_BYTES = 2 * 1024 * 1024;

const gc = (globalThis as { gc?: (options?: { type?: 'minor' | 'major' }) => void }).gc;
let since = 0;

/** Count `bytes` that passed through node; a minor GC once {@link PACE_BYTES} passed since the last. */
export function paceGc(bytes: number): void {
  if (gc === undefined) return;
  since += bytes;
  if (since < PACE_BYTES) return;
  since = 0;
  gc({ type: 'minor' });
}
