import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { COALESCE_BYTES, COALESCE_MS, ChildStage } from '../../src/pipeline/child-stage.js';
import { tempDir } from '../helpers/services.js';

/** A sink that hashes what it receives and records whether the stream ended. */
class Sink extends Writable {
  readonly hash = createHash('sha256');
  bytes = 0;
  finished = false;
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb();
  }
  override _final(cb: () => void) {
    this.finished = true;
    cb();
  }
}

const sh = (label: string, script: string, input: boolean) => new ChildStage({ label, command: 'bash', args: ['-c', script], input });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('ChildStage.connect: child processes joined by kernel pipes', () => {
  it('passes every byte through cat → zstd → zstd -d without node reading the middle', async () => {
    const dir = tempDir();
    const data = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.alloc(5 * 1024 * 1024, 'pgbak ')]);
    const file = join(dir, 'data.bin');
    writeFileSync(file, data);
    for (let round = 0; round < 5; round++) {
      const source = new ChildStage({ label: 'cat', command: 'cat', args: [file], input: false });
      const zstd = new ChildStage({ label: 'zstd', command: 'zstd', args: ['-1', '-q', '-c'], input: true });
      const unzstd = new ChildStage({ label: 'zstd -d', command: 'zstd', args: ['-d', '-q', '-c'], input: true });
      const sink = new Sink();
      ChildStage.connect([source, zstd, unzstd]);
      await pipeline([source, zstd, unzstd, sink]);
      expect(sink.bytes).toBe(data.length);
      expect(sink.hash.digest('hex')).toBe(sha(data));
      // The joined children read a kernel pipe, not a pipe from node.
      expect(zstd.child.stdin).toBeNull();
      expect(unzstd.child.stdin).toBeNull();
    }
  });

  it('a killed first child fails the pipeline, and the output never ends, although the next child exited 0', async () => {
    // It closes its stdout first (zstd sees a clean end of file and exits 0), then is killed.
    const source = sh('pg_dump', 'head -c 2000000 /dev/zero; exec 1>&-; sleep 0.5; kill -9 $$', false);
    const zstd = new ChildStage({ label: 'zstd', command: 'zstd', args: ['-1', '-q', '-c'], input: true });
    const sink = new Sink();
    ChildStage.connect([source, zstd]);
    await expect(pipeline([source, zstd, sink])).rejects.toThrow(/pg_dump was killed by SIGKILL/);
    expect(sink.finished).toBe(false);
  });

  it('a failing later child is reported, not the SIGPIPE it causes upstream', async () => {
    const source = sh('producer', 'exec cat /dev/zero', false);
    // It stops reading at once (the producer dies of SIGPIPE first), then fails.
    const middle = sh('gpg', 'head -c 1000 > /dev/null; exec 0<&-; sleep 0.5; echo "no public key" >&2; exit 2', true);
    const sink = new Sink();
    ChildStage.connect([source, middle]);
    await expect(pipeline([source, middle, sink])).rejects.toThrow(/gpg exited with code 2: no public key/);
    expect(sink.finished).toBe(false);
  });

  it('stages that already started are not joined and still work through node', async () => {
    const source = sh('producer', 'printf hello', false);
    const upper = new ChildStage({ label: 'tr', command: 'tr', args: ['a-z', 'A-Z'], input: true });
    await new Promise((r) => setImmediate(r)); // both started
    ChildStage.connect([source, upper]);
    const chunks: Buffer[] = [];
    await pipeline([source, upper, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) })]);
    expect(Buffer.concat(chunks).toString()).toBe('HELLO');
    expect(upper.child.stdin).not.toBeNull();
  });

  it('writeTo: the last child writes the file itself; the stage outputs nothing and ends after every child exited 0', async () => {
    const dir = tempDir();
    const data = Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(3 * 1024 * 1024, 'wal ')]);
    const file = join(dir, 'data.bin');
    writeFileSync(file, data);
    const out = join(dir, 'out.bin');
    const fd = openSync(out, 'wx', 0o600);
    try {
      const source = new ChildStage({ label: 'cat', command: 'cat', args: [file], input: false });
      const zstd = new ChildStage({ label: 'zstd', command: 'zstd', args: ['-1', '-q', '-c'], input: true });
      const unzstd = new ChildStage({ label: 'zstd -d', command: 'zstd', args: ['-d', '-q', '-c'], input: true });
      ChildStage.connect([source, zstd, unzstd]);
      unzstd.writeTo(fd);
      const sink = new Sink();
      await pipeline([source, zstd, unzstd, sink]);
      expect(sink.bytes).toBe(0);
      expect(sink.finished).toBe(true);
      expect(unzstd.child.stdout).toBeNull();
    } finally {
      closeSync(fd);
    }
    expect(sha(readFileSync(out))).toBe(sha(data));
  });

  it('writeTo: a killed first child fails the pipeline although the writing child exited 0; writeTo after the start is refused', async () => {
    const dir = tempDir();
    const fd = openSync(join(dir, 'out.bin'), 'wx', 0o600);
    try {
      const source = sh('pg_dump', 'head -c 2000000 /dev/zero; exec 1>&-; sleep 0.5; kill -9 $$', false);
      const zstd = new ChildStage({ label: 'zstd', command: 'zstd', args: ['-1', '-q', '-c'], input: true });
      ChildStage.connect([source, zstd]);
      zstd.writeTo(fd);
      const sink = new Sink();
      await expect(pipeline([source, zstd, sink])).rejects.toThrow(/pg_dump was killed by SIGKILL/);
      expect(sink.finished).toBe(false);
      expect(() => zstd.writeTo(fd)).toThrow(/writeTo after the stage started/);
    } finally {
      closeSync(fd);
    }
  });
});

describe('ChildStage output: small writes go on joined', () => {
  /** A node child that writes `count` blocks of `size` bytes, `gapUs` microseconds apart (a busy wait: each block is its own write). */
  const writer = (count: number, size: number, gapUs: number) =>
    new ChildStage({
      label: 'writer',
      command: process.execPath,
      args: [
        '-e',
        `const b = Buffer.alloc(${size}); for (let i = 0; i < ${count}; i++) { b.fill(i % 251); require('fs').writeSync(1, b); const t = process.hrtime.bigint(); while (process.hrtime.bigint() - t < ${gapUs}000n); }`,
      ],
      input: false,
    });

  it('400 writes of 8 KiB (gpg writes so) reach node joined into chunks of COALESCE_BYTES, every byte in order', async () => {
    const sizes: number[] = [];
    const hash = createHash('sha256');
    const counting = new Writable({
      write(chunk: Buffer, _e, cb) {
        sizes.push(chunk.length);
        hash.update(chunk);
        cb();
      },
    });
    await pipeline([writer(400, 8192, 300), counting]);
    const expected = createHash('sha256');
    for (let i = 0; i < 400; i++) expected.update(Buffer.alloc(8192, i % 251));
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(400 * 8192);
    // 13 chunks of 256 KiB; a few more where the writer was held up for COALESCE_MS (a loaded machine).
    expect(COALESCE_BYTES).toBeGreaterThanOrEqual(64 * 1024);
    expect(sizes.length).toBeLessThanOrEqual(40);
    expect(sizes.filter((s) => s >= COALESCE_BYTES).length).toBeGreaterThanOrEqual(sizes.length / 2);
  });

  it('a write that is not followed by more goes on after COALESCE_MS, not at the end', async () => {
    // One byte, then nothing for 1.5 s, then one more byte and the end.
    const trickle = sh('trickle', 'printf a; sleep 1.5; printf b', false);
    const started = Date.now();
    const arrivals: { text: string; at: number }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        arrivals.push({ text: chunk.toString(), at: Date.now() - started });
        cb();
      },
    });
    await pipeline([trickle, sink]);
    expect(arrivals.map((a) => a.text).join('')).toBe('ab');
    expect(arrivals[0]!.text).toBe('a');
    expect(arrivals[0]!.at).toBeLessThan(1000);
    expect(COALESCE_MS).toBeLessThanOrEqual(50);
  });
});
