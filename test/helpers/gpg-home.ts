import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface GpgHome {
  readonly home: string;
  readonly email: string;
  readonly fingerprint: string;
  remove(): Promise<void>;
}

/**
 * A temporary GnuPG home with one passphrase-less RSA key (sign + encrypt subkey). The path is
 * short (/tmp/pgbak-gpg-XXXXXX) because gpg-agent's socket path must stay under 107 characters.
 */
export async function createGpgHome(email = 'backup@pgbak.test'): Promise<GpgHome> {
  const home = mkdtempSync('/tmp/pgbak-gpg-');
  const env = { ...process.env, GNUPGHOME: home };
  await execFileAsync(
    'gpg',
    [
      '--batch',
      '--no-tty',
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      '',
      '--quick-generate-key',
      `pgbak test <${email}>`,
      'rsa2048',
      'sign,cert',
      'never',
    ],
    { env },
  );
  const { stdout } = await execFileAsync('gpg', ['--batch', '--with-colons', '--list-keys', email], { env });
  const fingerprint = stdout
    .split('\n')
    .find((l) => l.startsWith('fpr:'))
    ?.split(':')[9];
  if (!fingerprint) throw new Error('gpg: generated key has no fingerprint');
  await execFileAsync(
    'gpg',
    ['--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-add-key', fingerprint, 'rsa2048', 'encr', 'never'],
    { env },
  );
  return {
    home,
    email,
    fingerprint,
    async remove() {
      await execFileAsync('gpgconf', ['--kill', 'gpg-agent'], { env }).catch(() => undefined);
      rmSync(home, { recursive: true, force: true });
    },
  };
}
