import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { METRIC_NAMES } from '../../src/metrics/metrics.js';

const RULES = 'monitoring/alerts.yml';
const RULE_TESTS = 'monitoring/alerts.test.yml';
const hasPromtool = !spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error;
const MISSING = 'promtool is missing: install the Debian package "prometheus" (.ci/run does) to check the alert rules';
const run = promisify(execFile);

interface Rule {
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

describe('monitoring/alerts.yml', () => {
  const doc = parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  const rules = doc.groups.flatMap((g) => g.rules);

  it("has the issue's alerts, each with a severity, a summary and a description", () => {
    const names = rules.map((r) => r.alert);
    for (const name of [
      'BackupMissing',
      'BackupLastRunFailed',
      'RestoreTestTooOld',
      'BackupSizeAnomaly',
      'PgbakWalArchiveStale',
      'PgbakWalArchiveFailing',
    ])
      expect(names).toContain(name);
    for (const r of rules) {
      expect(['critical', 'warning']).toContain(r.labels?.severity);
      expect(r.annotations?.summary).toBeTruthy();
      expect(r.annotations?.description).toBeTruthy();
    }
    // The seed's BackupMissing: no successful backup for 12 h.
    expect(rules.find((r) => r.alert === 'BackupMissing')!.expr).toBe('time() - pgbak_backup_last_success_timestamp_seconds > 43200');
  });

  it('uses only metric names pgbak exports', () => {
    const exported = new Set<string>(Object.values(METRIC_NAMES));
    const used = rules.flatMap((r) => r.expr.match(/\bpgbak_[a-z_]+/g) ?? []);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(exported, `${name} is not a pgbak metric`).toContain(name);
  });

  it("has a promtool test that BackupMissing fires for a job whose series is 0 from the daemon's start", () => {
    interface RuleTest {
      name: string;
      input_series: { series: string; values: string }[];
      alert_rule_test: { eval_time: string; alertname: string; exp_alerts: { exp_labels: Record<string, string> }[] }[];
    }
    const tests = (parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: RuleTest[] }).tests;
    const fresh = tests.find((t) => t.input_series.some((s) => s.series.includes('job="fresh"')));
    expect(fresh, 'the "never ran" test group').toBeDefined();
    // Absent before the start, then 0 (never), as `pgbak daemon` exports a job that never ran.
    const success = fresh!.input_series.find((s) => s.series.startsWith(`${METRIC_NAMES.lastSuccess}{job="fresh"`));
    expect(success?.values).toMatch(/^_x\d+ 0x\d+$/);
    const fires = fresh!.alert_rule_test.filter(
      (a) => a.alertname === 'BackupMissing' && a.exp_alerts.some((e) => e.exp_labels.job === 'fresh'),
    );
    expect(fires).toHaveLength(1);
  });

  it('PgbakWalArchiveStale compares the newest archived WAL with WAL_RPO, and a promtool test makes it and the failing rule fire', () => {
    const stale = rules.find((r) => r.alert === 'PgbakWalArchiveStale')!;
    expect(stale.expr).toBe(`time() - ${METRIC_NAMES.walLastArchived} > ${METRIC_NAMES.walRpo}`);
    const tests = (
      parse(readFileSync(RULE_TESTS, 'utf8')) as {
        tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
      }
    ).tests;
    for (const name of ['PgbakWalArchiveStale', 'PgbakWalArchiveFailing']) {
      const cases = tests.flatMap((t) => t.alert_rule_test).filter((a) => a.alertname === name);
      expect(
        cases.some((a) => a.exp_alerts.length > 0),
        `${name} fires in a test`,
      ).toBe(true);
      expect(
        cases.some((a) => a.exp_alerts.length === 0),
        `${name} stays quiet in a test`,
      ).toBe(true);
    }
  });

  it('passes promtool check rules', async (ctx) => {
    if (!hasPromtool) ctx.skip(MISSING);
    const { stdout } = await run('promtool', ['check', 'rules', RULES]);
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('fires as intended on crafted series (promtool test rules)', async (ctx) => {
    if (!hasPromtool) ctx.skip(MISSING);
    const result = await run('promtool', ['test', 'rules', RULE_TESTS]).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
    expect(result.stdout).toContain('SUCCESS');
  });
});
