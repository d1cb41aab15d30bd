import { homedir } from 'node:os';
import { join } from 'node:path';
import { EncryptionError } from '../errors/index.js';
import { childEnv } from './child-env.js';
import { ChildStage, execChild } from './child-stage.js';

/** Tool runs in their own process group, killed on pgbak's exit (see child-stage.ts). */
const execFileAsync = execChild;

export interface GpgKey {
  readonly recipient: string;
  readonly fingerprint: string;
  readonly uid: string;
}

const BASE_ARGS = ['--batch', '--no-tty', '--quiet'];

/**
 * The keyring gpg searches, for hints: `GNUPGHOME=/srv/gnupg`, or `/home/x/.gnupg (GNUPGHOME unset)`.
 * A key imported into another keyring is then a clear mismatch, not a "key not found" mystery.
 */
export function keyringOf(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GNUPGHOME) return `GNUPGHOME=${env.GNUPGHOME}`;
  return `${join(env.HOME || homedir(), '.gnupg')} (GNUPGHOME unset)`;
}

/** The hint of a public key missing from the keyring. */
function importHint(): string {
  return `import it: gpg --import key.pub; searched the keyring in ${keyringOf()} (set GNUPGHOME in the environment or .env to use another)`;
}

/** How long a key listing may take: gpg waits on its agent or keyboxd, which can hang. */
const LIST_TIMEOUT_MS = 30_000;

/**
 * What a failed `gpg --list-keys` or `--list-secret-keys` means: undefined when gpg answered that it
 * has no such key (exit 2, "No public key" / "No secret key": the caller's own "not found"), else
 * the error to report. That is gpg missing, killed, too slow, or unable to use the keyring or the
 * name (its own last line, e.g. "Fatal: … directory does not exist!" or "Invalid user ID"): never a
 * "key not found" that sends the operator to import a key the keyring may well hold.
 */
function listingFailure(err: unknown, command: string): EncryptionError | undefined {
  const e = err as NodeJS.ErrnoException & { stderr?: string; signal?: NodeJS.Signals | null; killed?: boolean };
  if (e.code === 'ENOENT')
    return new EncryptionError('gpg-missing', 'gpg not found', { hint: 'install GnuPG: apt install gnupg', cause: err });
  if (e.killed && e.signal === 'SIGTERM') {
    return new EncryptionError('gpg-failed', `${command} did not answer within ${LIST_TIMEOUT_MS / 1000} s`, {
      hint: 'gpg waits on its agent or keyboxd: gpgconf --kill all, then try again',
      cause: err,
    });
  }
  if (e.signal) {
    return new EncryptionError('gpg-failed', `${command} was killed by ${e.signal}`, {
      hint: 'try again; if it recurs, look for the OOM killer in the kernel log (journalctl -k)',
      cause: err,
    });
  }
  const lines = (e.stderr ?? '')
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  if (lines.some((l) => /: No (public|secret) key$/.test(l))) return undefined;
  const last = lines.at(-1)?.replace(/^gpg: /, '') ?? `exit ${String(e.code)}`;
  return new EncryptionError('gpg-failed', `${command} failed: ${last}`, {
    hint: `check the keyring in ${keyringOf()}: it must exist and be readable by this user, and the name one gpg can look up`,
    cause: err,
  });
}

/**
 * Find the public key for GPG_RECIPIENT and check that it can encrypt (not expired, not
 * revoked, has an encryption subkey). Uses the keyring in GNUPGHOME (or ~/.gnupg).
 */
export async function resolveRecipient(recipient: string): Promise<GpgKey> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('gpg', [...BASE_ARGS, '--with-colons', '--fixed-list-mode', '--list-keys', '--', recipient], {
      timeout: LIST_TIMEOUT_MS,
      env: childEnv(),
    }));
  } catch (err) {
    throw (
      listingFailure(err, `gpg --list-keys ${recipient}`) ??
      new EncryptionError('gpg-key-missing', `GPG key not found: ${recipient}`, { hint: importHint(), cause: err })
    );
  }
  const lines = stdout.split('\n').map((l) => l.split(':'));
  const pubs = lines.filter((f) => f[0] === 'pub');
  if (pubs.length === 0) throw new EncryptionError('gpg-key-missing', `GPG key not found: ${recipient}`, { hint: importHint() });
  if (pubs.length > 1) {
    throw new EncryptionError('gpg-key-ambiguous', `GPG_RECIPIENT "${recipient}" matches ${pubs.length} keys`, {
      hint: 'set GPG_RECIPIENT to the full fingerprint of one key',
    });
  }
  const pub = pubs[0]!;
  const validity = pub[1] ?? '';
  if (validity === 'r') throw new EncryptionError('gpg-key-unusable', `GPG key ${recipient} is revoked`, { hint: 'import a valid key' });
  if (validity === 'e')
    throw new EncryptionError('gpg-key-unusable', `GPG key ${recipient} has expired`, { hint: 'extend its expiry or import a new key' });
  // Field 12 holds the key's overall capabilities: an upper-case E means it can encrypt.
  if (!(pub[11] ?? '').includes('E')) {
    throw new EncryptionError('gpg-key-unusable', `GPG key ${recipient} has no usable encryption subkey`, {
      hint: 'add an encryption subkey or use another key',
    });
  }
  const fpr = lines.find((f) => f[0] === 'fpr')?.[9];
  const uid = lines.find((f) => f[0] === 'uid')?.[9] ?? '';
  if (!fpr) throw new EncryptionError('gpg-key-missing', `GPG key ${recipient} has no fingerprint`);
  return { recipient, fingerprint: fpr, uid };
}

/**
 * gpg --encrypt as a stream stage. Compression is off: the dump is already compressed, and
 * compressing twice only costs CPU. The output opens with a plain `gpg --decrypt`.
 */
export function gpgEncryptStage(key: GpgKey): ChildStage {
  return new ChildStage({
    label: 'gpg',
    command: 'gpg',
    args: [
      ...BASE_ARGS,
      '--trust-model',
      'always',
      '--compress-algo',
      'none',
      '--encrypt',
      '--recipient',
      key.fingerprint,
      '--output',
      '-',
    ],
    input: true,
    mapFailure: (info) =>
      new EncryptionError(
        'gpg-failed',
        `gpg --encrypt failed (${info.signal ?? `exit ${info.code}`}): ${info.stderr.trim().split('\n').slice(-2).join(' | ')}`,
      ),
  });
}

/** gpg --decrypt as a stream stage; needs the secret key in the keyring. */
export function gpgDecryptStage(): ChildStage {
  return new ChildStage({
    label: 'gpg',
    command: 'gpg',
    args: [...BASE_ARGS, '--pinentry-mode', 'loopback', '--decrypt', '--output', '-'],
    input: true,
    mapFailure: (info) => {
      const text = info.stderr.trim();
      if (/no secret key|secret key not available/i.test(text)) {
        return new EncryptionError('gpg-secret-key-missing', 'cannot decrypt: the secret key is not in the keyring', {
          hint: `import the private key on this host: gpg --import private-key.asc; searched the keyring in ${keyringOf()}`,
        });
      }
      return new EncryptionError(
        'gpg-failed',
        `gpg --decrypt failed (${info.signal ?? `exit ${info.code}`}): ${text.split('\n').slice(-2).join(' | ')}`,
      );
    },
  });
}

/**
 * An encrypted backup needs the secret key in the keyring (GNUPGHOME or ~/.gnupg): checked
 * before the target is touched, so a missing key is a clear error rather than a failed restore.
 */
export async function requireSecretKey(manifest: {
  readonly name: string;
  readonly encryption: { readonly fingerprint: string; readonly recipient: string } | null;
}): Promise<void> {
  const enc = manifest.encryption;
  if (!enc) return;
  try {
    const { stdout } = await execFileAsync('gpg', ['--batch', '--no-tty', '--with-colons', '--list-secret-keys', '--', enc.fingerprint], {
      timeout: LIST_TIMEOUT_MS,
      env: childEnv(),
    });
    if (/^sec/m.test(stdout)) return;
  } catch (err) {
    const failure = listingFailure(err, `gpg --list-secret-keys ${enc.fingerprint}`);
    if (failure) throw failure;
  }
  throw new EncryptionError(
    'gpg-secret-key-missing',
    `cannot decrypt ${manifest.name}: the secret key ${enc.fingerprint} (${enc.recipient}) is not in the keyring`,
    { hint: `import the private key on this host: gpg --import private-key.asc; searched the keyring in ${keyringOf()}` },
  );
}
