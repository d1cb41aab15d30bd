import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ConfigError, EncryptionError } from '../errors/index.js';
import { childEnv } from './child-env.js';
import { CHILD_SPAWN_OPTIONS, ChildStage, trackChild } from './child-stage.js';

/**
 * age encryption with the `age` binary (Debian's `age` package) as a stream stage, joined to
 * pg_dump and zstd by kernel pipes like gpg. The in-process `age-encryption` package (typage)
 * decodes the same files but is ~10 times slower here (38 vs 388 MB/s, README "age encryption"),
 * and would run on node's own thread. Recipients are public keys: they may be in argv. The
 * identity file only ever reaches age as a path (`-i FILE`), never its content.
 */

/** What AGE_RECIPIENTS resolves to: the keys (a recipients file read) and where they came from. */
export interface AgeRecipients {
  readonly recipients: readonly string[];
  /** `AGE_RECIPIENTS` or the recipients file's path, for messages. */
  readonly source: string;
}

const MISSING_HINT = 'install age: apt install age (Debian/Ubuntu), or put the age binary on PATH';

/** The installed age's version (`1.1.1`), or undefined when it does not say. */
export async function ageVersion(): Promise<string | undefined> {
  const r = await runAge(['--version'], '');
  return r.code === 0 ? r.stdout.trim().replace(/^v/, '') : undefined;
}

/** Short form of a key for messages: `age1elwc…tpr`. */
export function shortKey(key: string): string {
  return key.length > 24 ? `${key.slice(0, 12)}…${key.slice(-6)}` : key;
}

/**
 * The recipients of AGE_RECIPIENTS (inline keys, or a recipients file: one key a line, `#`
 * comments), checked with the installed age itself: an unknown or malformed key, or one this age
 * cannot encrypt to (`age1pq1…` needs age 1.3 or later), is a configuration error naming it.
 */
export async function resolveAgeRecipients(
  setting: { readonly keys: readonly string[] } | { readonly file: string },
): Promise<AgeRecipients> {
  let recipients: readonly string[];
  let source = 'AGE_RECIPIENTS';
  if ('file' in setting) {
    source = setting.file;
    let text: string;
    try {
      text = await readFile(setting.file, 'utf8');
    } catch (err) {
      throw new ConfigError([`AGE_RECIPIENTS: cannot read the recipients file ${setting.file} (${(err as NodeJS.ErrnoException).code})`], {
        hint: 'give age1… keys separated by commas, or the path of a readable file with one age1… key a line',
      });
    }
    recipients = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    if (recipients.length === 0) {
      throw new ConfigError([`AGE_RECIPIENTS: the recipients file ${setting.file} holds no key`], {
        hint: 'put one age1… public key a line in it (age-keygen -y key.txt prints the public key of an identity)',
      });
    }
  } else {
    recipients = setting.keys;
  }
  // Encrypt nothing to every recipient: age itself says which one it cannot use.
  const r = await runAge(['--encrypt', ...recipients.flatMap((k) => ['-r', k])], '');
  if (r.code !== 0) {
    const cause = lastError(r.stderr);
    const index = /recipient #(\d+)/.exec(cause)?.[1];
    const named = /recipient "([^"]+)"/.exec(cause)?.[1] ?? (index !== undefined ? recipients[Number(index)] : undefined);
    const pq = recipients.filter((k) => k.startsWith('age1pq1'));
    const version = await ageVersion();
    throw new ConfigError(
      [`AGE_RECIPIENTS: age ${version ?? ''} cannot encrypt to ${named ? shortKey(named) : 'the recipients'}: ${cause}`],
      {
        hint: recipientHint(cause, pq.length > 0, version),
      },
    );
  }
  return { recipients, source };
}

/** The hint of a recipient age refused: a too-old age for post-quantum keys, a mix of kinds, or a bad key. */
function recipientHint(cause: string, hasPq: boolean, version: string | undefined): string {
  if (hasPq && /plugin/.test(cause))
    return `post-quantum age1pq1… recipients need age 1.3 or later (this is age ${version ?? 'of unknown version'}; Debian 12's package is 1.1.1): install a newer age on PATH, or use X25519 age1… keys`;
  if (/mix post-quantum and classic/.test(cause))
    return 'age encrypts to post-quantum or to classic keys, not both in one file: make every recipient an age1pq1… key (age-keygen -pq), or none';
  return 'check the key against `age-keygen -y key.txt` on the machine that holds its identity (age1… in lower case, no quotes)';
}

/** age --encrypt to every recipient as a stream stage (binary output, no armor). */
export function ageEncryptStage(recipients: readonly string[]): ChildStage {
  return new ChildStage({
    label: 'age',
    command: 'age',
    args: ['--encrypt', ...recipients.flatMap((k) => ['-r', k])],
    input: true,
    mapFailure: (info) =>
      new EncryptionError('age-failed', `age --encrypt failed (${info.signal ?? `exit ${info.code}`}): ${lastError(info.stderr)}`),
  });
}

/** age --decrypt with the identity file as a stream stage. */
export function ageDecryptStage(identityFile: string | undefined): ChildStage {
  if (!identityFile) throw identityMissing('this backup');
  return new ChildStage({
    label: 'age',
    command: 'age',
    args: ['--decrypt', '-i', identityFile],
    input: true,
    mapFailure: (info) => {
      const cause = lastError(info.stderr);
      if (/no identity matched/i.test(cause)) return identityMismatch('the backup', identityFile, []);
      return new EncryptionError('age-failed', `age --decrypt failed (${info.signal ?? `exit ${info.code}`}): ${cause}`, {
        hint: `check AGE_IDENTITY_FILE (${identityFile}) and the backup with \`pgbak verify\``,
      });
    },
  });
}

/**
 * An age-encrypted backup needs AGE_IDENTITY_FILE holding one of its recipients' identities:
 * checked before the target is touched, so a missing or wrong identity is one clear error.
 * Plain X25519 identities are compared with the manifest's recipients (`age-keygen -y`); others
 * (ssh keys, plugins) are only checked to be readable by age, decryption tells the rest.
 */
export async function requireAgeIdentity(name: string, recipients: readonly string[], identityFile: string | undefined): Promise<void> {
  if (!identityFile) throw identityMissing(name, recipients);
  const probe = await runAge(['--decrypt', '-i', identityFile], '');
  const cause = lastError(probe.stderr);
  if (!/failed to read header|parsing age header/i.test(cause)) {
    throw new EncryptionError(
      'age-identity-unreadable',
      `cannot decrypt ${name}: AGE_IDENTITY_FILE is not a usable age identity file: ${cause}`,
      {
        hint: 'point AGE_IDENTITY_FILE at the file age-keygen wrote (AGE-SECRET-KEY-1…), readable by the user running pgbak',
      },
    );
  }
  const own = await runAge(['-y', identityFile], '', 'age-keygen');
  if (own.code !== 0) return;
  const mine = own.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (mine.length > 0 && !mine.some((k) => recipients.includes(k))) throw identityMismatch(name, identityFile, recipients);
}

function identityMissing(name: string, recipients: readonly string[] = []): EncryptionError {
  return new EncryptionError('age-identity-missing', `cannot decrypt ${name}: it is age-encrypted and AGE_IDENTITY_FILE is not set`, {
    hint: `set AGE_IDENTITY_FILE to the identity file of one of its recipients${recipients.length ? ` (${recipients.map(shortKey).join(', ')})` : ''}`,
  });
}

function identityMismatch(name: string, identityFile: string, recipients: readonly string[]): EncryptionError {
  return new EncryptionError(
    'age-identity-mismatch',
    `cannot decrypt ${name}: AGE_IDENTITY_FILE holds none of the keys it was encrypted to`,
    {
      hint: `AGE_IDENTITY_FILE is ${identityFile}; use the identity of one of its recipients${recipients.length ? ` (${recipients.map(shortKey).join(', ')})` : ''} (age-keygen -y FILE prints an identity's public key)`,
    },
  );
}

/** age's last `age: error: …` line, without the prefix. */
function lastError(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/report unexpected or unhelpful errors/.test(l));
  return (lines.at(-1) ?? '').replace(/^age(-keygen)?: (error: )?/, '') || 'no message';
}

/** Run age (or age-keygen) to its end with `input` on stdin; ENOENT is an EncryptionError. */
function runAge(args: readonly string[], input: string, command = 'age'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = trackChild(spawn(command, [...args], { ...CHILD_SPAWN_OPTIONS, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGTERM'), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new EncryptionError('age-missing', `${command} not found`, { hint: MISSING_HINT, cause: err })
          : new EncryptionError('age-failed', `${command} could not start: ${err.message}`, { cause: err }),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
