// The S3 server helper was generalized to MinIO and versitygw (s3-server.ts); this name stays for
// the tests that import it.
export * from './s3-server.js';
