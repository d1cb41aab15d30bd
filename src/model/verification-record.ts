/**
 * What `pgbak verify` records beside a backup: a dump's `<name>.verify.json` (catalog/manifest.ts)
 * and a base backup's `base/<system-id>/<name>.verification` (wal/base-verification.ts).
 */
export interface VerificationRecord {
  readonly format: 'pgbak-verification';
  readonly version: 1;
  readonly name: string;
  readonly verifiedAt: string;
  readonly ok: boolean;
  readonly kind: 'checksum' | 'restore-test';
  readonly durationMs: number;
  readonly checks: readonly { readonly check: string; readonly ok: boolean; readonly detail?: string }[];
}
