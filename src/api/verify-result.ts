import type { VerificationRecord } from '../catalog/manifest.js';
import type { Check, RestoreTestResult } from './restore-test.js';

/** What verify found about one backup. */
export interface BackupVerification {
  readonly name: string;
  readonly database: string | undefined;
  readonly ok: boolean;
  readonly kind: VerificationRecord['kind'];
  /** 0, IntegrityError's 9 (a copy differs from its manifest), 14 (restore test failed), or the error's. */
  readonly exitCode: number;
  readonly durationMs: number;
  readonly checks: readonly Check[];
  readonly restoreTest: RestoreTestResult | undefined;
  /** Copies that were never complete (e.g. a stray globals file of a failed upload): not checked, no record written there. */
  readonly problems: readonly string[];
  /** Where the verification records were written. */
  readonly recordedIn: readonly string[];
  /** Set when the verification could not run (storage or server unreachable, key missing): nothing recorded. */
  readonly error: { readonly code: string; readonly message: string; readonly hint?: string | undefined } | undefined;
}
