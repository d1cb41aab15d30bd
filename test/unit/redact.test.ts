import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadJobs } from '../../src/config/config-file.js';
import { LineLogger, MemoryLogger, silentLogger } from '../../src/logging/logger.js';
import { Redactor, redact, redactValue } from '../../src/logging/redact.js';

describe('Redactor', () => {
  it('masks URL credentials and every secret added to it, also percent-encoded', () => {
    const r = new Redactor();
    r.add('p@ss word');
    r.add('abc'); // too short: ignored
    expect(r.redact('postgresql://u:other@h/db and p@ss word and p%40ss%20word and abc')).toBe(
      'postgresql://u:***@h/db and *** and *** and abc',
    );
    expect(r.redactValue({ note: 'say p@ss word', secretKey: 'x', list: ['p@ss word'] })).toEqual({
      note: 'say ***',
      secretKey: '***',
      list: ['***'],
    });
  });

  it('with() copies without changing the original; the module functions mask by pattern only', () => {
    const base = new Redactor(['first-secret']);
    const more = base.with('second-secret');
    expect(more.redact('first-secret second-secret')).toBe('*** ***');
    expect(base.redact('first-secret second-secret')).toBe('*** second-secret');
    expect(redact('smtp://u:pw@host first-secret')).toBe('smtp://u:***@host first-secret');
    expect(redactValue({ password: 'x', url: 'http://a:b@h' })).toEqual({ password: '***', url: 'http://a:***@h' });
  });
});

describe('loadJobs returns the redactor of the configuration', () => {
  it('knows STORAGE_SECRET_KEY and the passwords of DATABASE_URL, VERIFY_DATABASE_URL and NOTIFY_SMTP_URL', () => {
    const { redactor } = loadJobs({
      env: {
        DATABASE_URL: 'postgresql://u:db-password@h/db',
        VERIFY_DATABASE_URL: 'postgresql://v:verify-password@h2/x',
        NOTIFY_SMTP_URL: 'smtp://m:smtp%2Fpassword@mail:587',
        STORAGE_ACCESS_KEY: 'access',
        STORAGE_SECRET_KEY: 'storage-secret',
      },
      cwd: tmpdir(),
      envFile: false,
    });
    expect(redactor.redact('db-password verify-password smtp/password smtp%2Fpassword storage-secret')).toBe('*** *** *** *** ***');
    const dir = mkdtempSync(join(tmpdir(), 'pgbak-redact-file-'));
    try {
      writeFileSync(join(dir, 'pgbak.yaml'), 'jobs:\n  - name: a\n    database_url_env: A_URL\n  - name: b\n    database_url_env: B_URL\n');
      const loaded = loadJobs({
        env: { A_URL: 'postgresql://a:first-pass@h/a', B_URL: 'postgresql://b:second-pass@h/b' },
        cwd: dir,
        envFile: false,
      });
      expect(loaded.redactor.redact('first-pass second-pass')).toBe('*** ***');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Nothing global: a fresh Redactor or the module's redact knows none of them.
    expect(redact('db-password storage-secret')).toBe('db-password storage-secret');
  });
});

describe('loggers carry their redactor', () => {
  it('LineLogger masks with it, its children share it, silentLogger has a pattern-only one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgbak-redact-'));
    try {
      const redactor = new Redactor(['s3cr3t-value']);
      const file = join(dir, 'log.txt');
      const logger = new LineLogger({ file, stderr: false, redactor });
      const child = logger.child({ job: 'shop' });
      expect(child.redactor).toBe(redactor);
      child.info('token s3cr3t-value at postgresql://u:pw@h/db', { cause: 's3cr3t-value' });
      logger.close();
      const text = readFileSync(file, 'utf8');
      expect(text).not.toContain('s3cr3t-value');
      expect(text).toContain('token *** at postgresql://u:***@h/db');
      expect(silentLogger.redactor?.redact('s3cr3t-value')).toBe('s3cr3t-value');
      const memory = new MemoryLogger({}, undefined, redactor);
      memory.child({ a: 1 }).warn('s3cr3t-value');
      expect(memory.lines[0]!.msg).toBe('***');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
