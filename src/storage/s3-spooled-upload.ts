import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CleanupFailure, FreshBody } from './s3-middleware.js';
import type { SpoolFile } from './storage-backend.js';

/** The object's own fields, sent with its CreateMultipartUpload (or its single PutObject). */
export interface SpooledParams {
  readonly Bucket: string;
  readonly Key: string;
  readonly ContentType?: string | undefined;
  readonly ObjectLockMode?: 'COMPLIANCE' | 'GOVERNANCE' | undefined;
  readonly ObjectLockRetainUntilDate?: Date | undefined;
}

/**
 * A multipart upload whose parts are read from the local copy being written at the same time
 * (`spool`), not buffered: `body` carries the same bytes and is read only to find the part
 * boundaries and the MD5 of each part, so memory stays at a few stream chunks whatever the part
 * size. Each part is sent once its bytes are in the file, with its Content-MD5 from the stream
 * pass: a read-back that differs from what went through the stream is rejected by the server
 * (BadDigest). At most `queueSize` parts are in flight; while they are, `body` is not read, so
 * a slow or frozen server holds the stream back as lib-storage did (the Tee's stall limit then
 * drops the upload). A body shorter than a part is one PutObject. On any failure the parts in
 * flight settle, the multipart upload is aborted and the first failure is thrown (a failed abort
 * as CleanupFailure carrying it); `body` is destroyed when a part fails. Returns the size.
 */
export async function spooledUpload(o: {
  client: S3Client;
  params: SpooledParams;
  body: Readable;
  spool: SpoolFile;
  partSize: number;
  queueSize: number;
  onProgress: (bytes: number) => void;
  /** Called at the first failure: the caller cancels the requests still in flight one timeout later. */
  doom: () => void;
}): Promise<number> {
  const { client, params, spool } = o;
  const stop = new AbortController();
  const parts: { PartNumber: number; ETag: string }[] = [];
  const inFlight = new Set<Promise<void>>();
  let uploadId: string | undefined;
  let failure: unknown;
  let sent = 0;
  let nextPart = 1;

  const send = async (start: number, end: number, md5: string, partNumber: number | undefined) => {
    await spool.whenWritten(end, stop.signal);
    // Read from the file on each attempt (the SDK retries a part as it would a buffered one).
    const body = new FreshBody(() => spool.read(start, end)) as unknown as Readable;
    const common = { ...params, Body: body, ContentLength: end - start, ContentMD5: md5 };
    if (partNumber === undefined) {
      await client.send(new PutObjectCommand(common));
    } else {
      const { Bucket, Key } = params;
      const input = { Bucket, Key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: end - start, ContentMD5: md5 };
      const out = await client.send(new UploadPartCommand(input));
      if (!out.ETag) throw new Error(`UploadPart ${partNumber} returned no ETag`);
      parts.push({ PartNumber: partNumber, ETag: out.ETag });
    }
    sent += end - start;
    o.onProgress(sent);
  };
  const startPart = async (start: number, end: number, md5: string) => {
    if (uploadId === undefined) {
      const out = await client.send(new CreateMultipartUploadCommand(params));
      if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
      uploadId = out.UploadId;
    }
    while (inFlight.size >= o.queueSize) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
    const task: Promise<void> = send(start, end, md5, nextPart++).then(
      () => void inFlight.delete(task),
      (err: unknown) => {
        inFlight.delete(task);
        if (failure === undefined) {
          failure = err;
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
  let md5: Hash = createHash('md5');
  try {
    for await (const chunk of o.body as AsyncIterable<Buffer>) {
      let rest = chunk;
      while (rest.length > 0) {
        const take = Math.min(rest.length, o.partSize - (offset - partStart));
        md5.update(rest.subarray(0, take));
        offset += take;
        rest = rest.subarray(take);
        if (offset - partStart === o.partSize) {
          await startPart(partStart, offset, md5.digest('base64'));
          partStart = offset;
          md5 = createHash('md5');
        }
      }
    }
    if (failure !== undefined) throw failure;
    if (uploadId === undefined) {
      await send(0, offset, md5.digest('base64'), undefined);
      return offset;
    }
    if (offset > partStart) await startPart(partStart, offset, md5.digest('base64'));
    while (inFlight.size > 0) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    const { Bucket, Key } = params;
    await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    return offset;
  } catch (err) {
    failure ??= err;
    o.doom();
    stop.abort(failure);
    // A part still being stored when the upload is aborted could be left behind: let them settle
    // (the caller's request scope cancels them one timeout after the upload was doomed).
    await Promise.allSettled([...inFlight]);
    if (uploadId !== undefined) {
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId }));
      } catch (abortError) {
        throw new CleanupFailure(abortError instanceof CleanupFailure ? abortError.cause : abortError, failure);
      }
    }
    throw failure;
  }
}
