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
 *
 * Some chunks are moved there all the same (~12 KB of objects per scavenge, traced with
 * --trace-gc-nvp), and a long run piles them up: no full GC ran during a 3.2 GB backup's stream
 * or a 630 MB archive's download, and the process's malloc heap grew by their 64 KiB buffers
 * (backup (e) 88-90 MB, restore --jobs 2 83-88 MB at 3.2 GB). So every {@link MAJOR_BYTES} the
 * paced GC is a full one, `gc()`: 1-25 ms here, 10-12 of them in those runs, which then peaked at
 * 74-76 MB. Not `gc({ type: 'major' })`: Node 20's V8 runs a scavenge for it (`--trace-gc`).
 * Measured in docs/performance.md.
 */
export const PACE_BYTES = 2 * 1024 * 1024;
/** Bytes passed (as counted by {@link paceGc}) from one full GC to the next. */
export const MAJOR_BYTES = 128 * 1024 * 1024;

type Gc = (options?: { type: 'minor' }) => void;
const gc = (globalThis as { gc?: Gc }).gc;
let since = 0;
let sinceMajor = 0;

/** Count `bytes` that passed through node; a minor GC once {@link PACE_BYTES} passed since the last, a full one every {@link MAJOR_BYTES}. */
export function paceGc(bytes: number): void {
  if (gc === undefined) return;
  since += bytes;
  if (since < PACE_BYTES) return;
  sinceMajor += since;
  since = 0;
  if (sinceMajor < MAJOR_BYTES) {
    gc({ type: 'minor' });
    return;
  }
  sinceMajor = 0;
  gc();
}
