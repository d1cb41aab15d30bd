import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { type S3Client, xmlBlocks, xmlEscape, xmlText } from './s3-client.js';
import { CleanupFailure, deadlineSignal, httpStatusOf, s3ErrorName } from './s3-errors.js';
import type { SpoolFile } from './storage-backend.js';

/** The most parts a multipart upload may have (S3's limit). */
const MAX_PARTS = 10_000;

/** zlib.crc32 (node ≥ 20.15; absent before, when every part carries Content-MD5). */
const crc32 = (zlib as { crc32?: (data: Buffer, value?: number) => number }).crc32;

/** The base64 of a CRC32's four bytes, big-endian (the `x-amz-checksum-crc32` header's form). */
export function crc32Base64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}

/**
 * The checksum of one part, taken over the stream's bytes as they pass: the server computes the
 * same over the bytes it receives and refuses the part when they differ. CRC32 where the server
 * takes it ({@link createUpload}), else Content-MD5. Both are computed until the server has
 * answered (the first part, and a single PutObject, which always carries Content-MD5).
 */
class PartSum {
  private md5: Hash | undefined;
  private crc: number | undefined;

  constructor(kind: 'crc32' | 'md5' | 'both') {
    if (kind !== 'md5') this.crc = 0;
    if (kind !== 'crc32') this.md5 = createHash('md5');
  }

  update(piece: Buffer): void {
    this.md5?.update(piece);
    if (this.crc !== undefined) this.crc = crc32!(piece, this.crc);
  }

  /** The part's header: CRC32 when asked for and taken, else Content-MD5. */
  digest(kind: 'crc32' | 'md5'): PartDigest {
    if (kind === 'crc32' && this.crc !== undefined) return { crc32: crc32Base64(this.crc) };
    if (!this.md5) throw new Error('PartSum: no MD5 taken for this part');
    return { md5: this.md5.digest('base64') };
  }
}

type PartDigest = { readonly md5: string; readonly crc32?: undefined } | { readonly crc32: string; readonly md5?: undefined };

const partHeaders = (d: PartDigest): Record<string, string> => (d.crc32 ? { 'x-amz-checksum-crc32': d.crc32 } : { 'content-md5': d.md5! });

/** One object's upload: where it goes and the headers it is created with. */
export interface UploadParams {
  readonly client: S3Client;
  readonly bucket: string;
  /** The whole key (prefix included). */
  readonly key: string;
  /** Content-Type, Object Lock headers: sent with the CreateMultipartUpload (or the single PutObject). */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** Create only: `If-None-Match: *` on the PutObject, or on the CompleteMultipartUpload. */
  readonly ifNoneMatch?: boolean | undefined;
}

/**
 * Streams `body` to S3: one PutObject when it is shorter than a part, else a multipart upload of
 * `partSize` parts, at most `queueSize` in flight; while they are, `body` is not read, so a slow or
 * frozen server holds the stream back (the Tee's stall limit then drops the upload).
 *
 * With `spool` (the local copy of the same bytes, being written at the same time), parts are not
 * buffered: `body` is read only to find the part boundaries and the checksum of each part, and part
 * *k* is sent as a read of `[k·P, (k+1)·P)` from the file once those bytes are written, with the
 * checksum of the stream pass: a read-back that differs is refused by the server (BadDigest).
 * Memory then stays at a few stream chunks whatever the part size. Without it, each part's chunks
 * are kept until the part is stored (memory ≈ partSize × (queueSize + 1)).
 *
 * Every part carries its checksum ({@link PartSum}: CRC32 where the server takes it, ~10 × less
 * CPU than MD5, else Content-MD5) and is retried from its own bytes (a fresh read of the file).
 * Each request honours `signal` (the caller cancels the requests in flight through it). On any
 * failure no request is cut off here: the parts in flight settle (a working server answers them,
 * and `doom` has the caller cancel them one timeout later), then the multipart upload is aborted
 * (within `timeoutMs`, not cancelled by `signal`) and the first failure is thrown; a failed abort
 * throws CleanupFailure carrying it. `body` is destroyed when a part fails. Returns the size.
 *
 * Why parts are not cut off at the first failure: a part whose body was sent in full is stored by
 * the server even when the client hangs up, and if that happens after the abort it brings the
 * upload back (AWS warns of it). versitygw 1.8 even hides it: the abort removes the key's upload
 * directory, the late part recreates it without the key's name, and the listing skips it until the
 * next upload of the same key makes it visible again (a CI flake of the stop-27 note, found by
 * logging each request's upload id).
 */
export async function uploadObject(
  p: UploadParams,
  o: {
    readonly body: Readable;
    readonly spool?: SpoolFile | undefined;
    readonly partSize: number;
    readonly queueSize: number;
    readonly signal: AbortSignal;
    readonly timeoutMs: number;
    readonly onProgress: (bytes: number) => void;
    /** Called at the first failure: the caller cancels the requests still in flight one timeout later (through `signal`). */
    readonly doom: () => void;
    /** Called with true while `body` is not read because `queueSize` parts are in flight, false after (PutOptions.onAwaitingServer). */
    readonly onAwaitingServer?: ((waiting: boolean) => void) | undefined;
  },
): Promise<number> {
  const { client, bucket, key } = p;
  /** Ends the waits for the local file at the first failure (never an HTTP request: see above). */
  const stop = new AbortController();
  /** Every HTTP request of the upload: cancelled by the caller only. */
  const requests = o.signal;
  const parts: { n: number; etag: string; crc32: string | undefined }[] = [];
  /** The parts' checksum: decided by CreateMultipartUpload's answer (see PartSum). */
  let kind: 'crc32' | 'md5' | undefined = crc32 ? undefined : 'md5';
  const inFlight = new Set<Promise<void>>();
  let uploadId: string | undefined;
  let failure: unknown;
  /** Parts in flight at the first failure: if the caller then cut them off, the server may still store one after the abort. */
  let inFlightAtFailure = 0;
  let sent = 0;
  let nextPart = 1;

  /** The bytes [start, end) as a body that can be sent again: a read of the spool, or the kept chunks. */
  const bodyOf = async (start: number, end: number, chunks: Buffer[]) => {
    const { spool } = o;
    if (!spool) return () => Readable.from(chunks, { objectMode: false });
    await spool.whenWritten(end, AbortSignal.any([requests, stop.signal]));
    return () => spool.read(start, end);
  };
  const send = async (start: number, end: number, sum: PartDigest, chunks: Buffer[], partNumber: number | undefined) => {
    const body = await bodyOf(start, end, chunks);
    // A part whose request has not started by the first failure is not sent.
    stop.signal.throwIfAborted();
    const common = { bucket, key, method: 'PUT' as const, body, contentLength: end - start, signal: requests };
    if (partNumber === undefined) {
      const headers = { ...p.headers, ...partHeaders(sum), ...(p.ifNoneMatch ? { 'if-none-match': '*' } : {}) };
      await client.send({ ...common, headers });
    } else {
      const query = { partNumber: String(partNumber), uploadId };
      const out = await client.send({ ...common, query, headers: partHeaders(sum) });
      const etag = out.headers.etag;
      if (typeof etag !== 'string' || etag === '') throw new Error(`UploadPart ${partNumber} returned no ETag`);
      // A server that computed another CRC32 than the stream's should have refused the part.
      const echoed = out.headers['x-amz-checksum-crc32'];
      if (sum.crc32 && typeof echoed === 'string' && echoed !== sum.crc32) {
        throw new Error(`UploadPart ${partNumber}: the server stored CRC32 ${echoed}, the stream's is ${sum.crc32}`);
      }
      parts.push({ n: partNumber, etag, crc32: sum.crc32 });
    }
    sent += end - start;
    o.onProgress(sent);
  };
  const startPart = async (start: number, end: number, sum: PartSum, chunks: Buffer[]) => {
    if (uploadId === undefined) {
      ({ uploadId, kind } = await createUpload(p, crc32 !== undefined, requests));
    }
    if (inFlight.size >= o.queueSize) {
      o.onAwaitingServer?.(true);
      try {
        while (inFlight.size >= o.queueSize) await Promise.race(inFlight);
      } finally {
        o.onAwaitingServer?.(false);
      }
    }
    if (failure !== undefined) throw failure;
    if (nextPart > MAX_PARTS) {
      throw new Error(`the object needs more than ${MAX_PARTS} parts of ${o.partSize} bytes: set a larger STORAGE_PART_SIZE`);
    }
    const task: Promise<void> = send(start, end, sum.digest(kind!), chunks, nextPart++).then(
      () => void inFlight.delete(task),
      (err: unknown) => {
        inFlight.delete(task);
        if (failure === undefined) {
          failure = err;
          inFlightAtFailure = inFlight.size;
          o.doom();
          stop.abort(err);
          // Wakes the loop below when it waits for data (without an error: the part's is reported).
          o.body.destroy();
        }
      },
    );
    inFlight.add(task);
  };

  let offset = 0;
  let partStart = 0;
  let sum = new PartSum(kind ?? 'both');
  let chunks: Buffer[] = [];
  try {
    for await (const chunk of o.body as AsyncIterable<Buffer>) {
      let rest = chunk;
      while (rest.length > 0) {
        const take = Math.min(rest.length, o.partSize - (offset - partStart));
        const piece = rest.subarray(0, take);
        sum.update(piece);
        if (!o.spool) chunks.push(piece);
        offset += take;
        rest = rest.subarray(take);
        if (offset - partStart === o.partSize) {
          await startPart(partStart, offset, sum, chunks);
          partStart = offset;
          sum = new PartSum(kind ?? 'both');
          chunks = [];
        }
      }
    }
    if (failure !== undefined) throw failure;
    if (uploadId === undefined) {
      await send(0, offset, sum.digest('md5'), chunks, undefined);
      return offset;
    }
    if (offset > partStart) await startPart(partStart, offset, sum, chunks);
    while (inFlight.size > 0) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
    parts.sort((a, b) => a.n - b.n);
    // With the CRC32 declared at creation, the completion names each part's (S3 refuses it otherwise).
    const part = (x: (typeof parts)[number]) =>
      `<Part><PartNumber>${x.n}</PartNumber><ETag>${xmlEscape(x.etag)}</ETag>${x.crc32 ? `<ChecksumCRC32>${x.crc32}</ChecksumCRC32>` : ''}</Part>`;
    const doc = `<CompleteMultipartUpload>${parts.map(part).join('')}</CompleteMultipartUpload>`;
    await client.send({
      method: 'POST',
      bucket,
      key,
      query: { uploadId },
      headers: { 'content-type': 'application/xml', ...(p.ifNoneMatch ? { 'if-none-match': '*' } : {}) },
      body: doc,
      signal: requests,
    });
    return offset;
  } catch (err) {
    if (failure === undefined) {
      failure = err;
      inFlightAtFailure = inFlight.size;
    }
    o.doom();
    stop.abort(failure);
    // A part still being stored when the upload is aborted could be left behind: let them settle
    // (the caller cancels them one timeout after the upload was doomed).
    await Promise.allSettled([...inFlight]);
    if (uploadId !== undefined) {
      try {
        await abortUpload(p, uploadId, o.timeoutMs, inFlightAtFailure > 0 && requests.aborted);
      } catch (abortError) {
        throw new CleanupFailure(abortError, failure);
      }
    }
    throw failure;
  }
}

/**
 * CreateMultipartUpload, asking for CRC32 part checksums (`x-amz-checksum-algorithm`) when node
 * has zlib.crc32. CRC32 only when the server names the algorithm back (AWS, MinIO, versitygw do).
 * A server that does not is one whose checking of CRC32 pgbak cannot rely on; one that refuses
 * the header (400, 501) may not know it. Either gets an upload created without it, whose parts
 * carry Content-MD5 as before: the first one (no part sent to it yet) is aborted once.
 */
async function createUpload(p: UploadParams, askCrc32: boolean, signal: AbortSignal): Promise<{ uploadId: string; kind: 'crc32' | 'md5' }> {
  const { client, bucket, key } = p;
  const create = async (crc: boolean) => {
    const headers = { ...p.headers, ...(crc ? { 'x-amz-checksum-algorithm': 'CRC32' } : {}) };
    const out = await client.send({ method: 'POST', bucket, key, query: { uploads: '' }, headers, signal });
    const id = xmlText(out.body, 'UploadId');
    if (!id) throw new Error('CreateMultipartUpload returned no UploadId');
    return { id, named: String(out.headers['x-amz-checksum-algorithm'] ?? '').toUpperCase() === 'CRC32' };
  };
  if (askCrc32) {
    let first: { id: string; named: boolean } | undefined;
    try {
      first = await create(true);
    } catch (err) {
      const status = httpStatusOf(err);
      if (status !== 400 && status !== 501) throw err;
    }
    if (first?.named) return { uploadId: first.id, kind: 'crc32' };
    // Nothing was sent to it; if the abort fails, prune's sweep of stale uploads removes it.
    if (first) await client.send({ method: 'DELETE', bucket, key, query: { uploadId: first.id }, signal }).catch(() => undefined);
  }
  return { uploadId: (await create(false)).id, kind: 'md5' };
}

/** After an abort, the upload is listed again after these waits (ms; see {@link abortUpload}). */
const ABORT_CHECKS_MS: readonly number[] = [250, 500, 1000, 2000];

/**
 * AbortMultipartUpload, sent again whenever the upload is listed again. The listing follows
 * {@link ABORT_CHECKS_MS}. Once the upload is gone it returns, unless `partsCut` (the caller cut
 * part requests off in flight, a frozen server or a timeout): a part the server was still storing
 * can then bring the upload back after the abort, so it watches the whole 3.75 s, a failed run's
 * cost only. A server that hides such an upload (versitygw, see {@link uploadObject}) is not seen
 * by the watch, nor by prune's listing (docs/storage.md). Gone already (completed or aborted
 * meanwhile): nothing is left behind.
 */
async function abortUpload(p: UploadParams, uploadId: string, timeoutMs: number, partsCut: boolean): Promise<void> {
  const { client, bucket, key } = p;
  const abort = async () => {
    try {
      await client.send({ method: 'DELETE', bucket, key, query: { uploadId }, signal: deadlineSignal(timeoutMs) });
    } catch (err) {
      if (s3ErrorName(err) !== 'NoSuchUpload') throw err;
    }
  };
  await abort();
  for (const wait of ABORT_CHECKS_MS) {
    await new Promise((r) => setTimeout(r, wait));
    // The abort itself went through: a listing that fails (no s3:ListBucketMultipartUploads) ends the check.
    const listed = await client
      .send({ method: 'GET', bucket, query: { uploads: '', prefix: key }, signal: deadlineSignal(timeoutMs) })
      .catch(() => undefined);
    if (!listed) return;
    if (xmlBlocks(listed.body, 'Upload').some((u) => xmlText(u, 'UploadId') === uploadId)) await abort();
    else if (!partsCut) return;
  }
}
