import { ageDecryptStage, requireAgeIdentity } from './age.js';
import type { ChildStage } from './child-stage.js';
import { gpgDecryptStage, requireSecretKey } from './gpg.js';

/** How a backup is encrypted, as its manifest records it. */
export type EncryptionInfo =
  | null
  | { readonly method: 'gpg'; readonly recipient: string; readonly fingerprint: string }
  | { readonly method: 'age'; readonly recipients: readonly string[] };

/** The stage that decrypts an artifact encrypted as `encryption` (undefined: not encrypted). */
export function decryptStage(encryption: EncryptionInfo, ageIdentityFile: string | undefined): ChildStage | undefined {
  if (!encryption) return undefined;
  return encryption.method === 'age' ? ageDecryptStage(ageIdentityFile) : gpgDecryptStage();
}

/** The key that decrypts the backup is at hand (gpg: the keyring; age: AGE_IDENTITY_FILE); checked before the target is touched. */
export async function requireDecryptionKey(
  manifest: { readonly name: string; readonly encryption: EncryptionInfo },
  ageIdentityFile: string | undefined,
): Promise<void> {
  const enc = manifest.encryption;
  if (!enc) return;
  if (enc.method === 'age') await requireAgeIdentity(manifest.name, enc.recipients, ageIdentityFile);
  else await requireSecretKey({ name: manifest.name, encryption: enc });
}
