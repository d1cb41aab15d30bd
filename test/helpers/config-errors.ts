import { expect } from 'vitest';
import { ConfigError } from '../../src/errors/index.js';

/** The problems of the ConfigError that `fn` throws (fails the test when it throws nothing or something else). */
export function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}
