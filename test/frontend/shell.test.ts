import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from '../helpers/paths.js';
import { ShellLex, caseInsensitiveLookup, envListLookup, mapLookup } from '../../src/frontend/shell/lex.js';

const dir = join(conformanceDir, 'buildkit-dockerfile-shell');

const ENV_VAR_TEST_ENV = new Map([['PWD', '/home'], ['SHELL', 'bash'], ['KOREAN', '한국어'], ['NULL', '']]);

/** Runs the envVarTest lines meant for one platform (`A` lines and its own); returns [cases, error cases]. */
function runEnvVarTest(platform: 'U' | 'W'): [number, number, Set<string>] {
  const env = platform === 'W' ? caseInsensitiveLookup(ENV_VAR_TEST_ENV) : mapLookup(ENV_VAR_TEST_ENV);
  const lex = new ShellLex();
  let count = 0;
  let errors = 0;
  const seen = new Set<string>();
  for (const [n, line] of readFileSync(join(dir, 'envVarTest'), 'utf8').split('\n').entries()) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [which, input, expected] = line.split('|').map((f) => f.trim()) as [string, string, string];
    if (which !== 'A' && which !== platform) continue;
    count++;
    seen.add(String(n));
    if (expected === 'error') {
      errors++;
      assert.throws(() => lex.processWord(input, env), `${input} must fail`);
    } else {
      assert.equal(lex.processWord(input, env), expected, `input ${input}`);
    }
  }
  return [count, errors, seen];
}

test('envVarTest: all 230 cases of ProcessWord (Unix lines as Linux, Windows lines with case-insensitive names)', () => {
  const [unix, unixErrors, unixLines] = runEnvVarTest('U');
  const [windows, , windowsLines] = runEnvVarTest('W');
  assert.equal(unix, 228);
  assert.equal(windows, 228);
  assert.equal(unixErrors, 36);
  assert.equal(new Set([...unixLines, ...windowsLines]).size, 230);
});

test('wordsTest: ProcessWords with the ENV lines seen so far', () => {
  const envs: string[] = [];
  const lex = new ShellLex();
  let count = 0;
  for (const line of readFileSync(join(dir, 'wordsTest'), 'utf8').split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    if (line.startsWith('ENV ')) {
      envs.push(line.slice(4).trimStart());
      continue;
    }
    const bar = line.indexOf('|');
    const input = line.slice(0, bar).trim();
    const expected = line.slice(bar + 1).trimStart().split(',');
    count++;
    if (expected.length === 1 && expected[0] === 'error') {
      assert.throws(() => lex.processWords(input, envListLookup(envs)));
    } else {
      assert.deepEqual(lex.processWords(input, envListLookup(envs)), expected, `input ${input}`);
    }
  }
  assert.equal(count, 24);
});

interface MatchCase {
  input: string;
  envs: Record<string, string>;
  expected?: string;
  expectError?: boolean;
  expectErrorContaining?: string;
  matched?: string[];
  unmatched?: string[];
}
const matches = JSON.parse(readFileSync(join(dir, 'process-with-matches.json'), 'utf8')) as {
  processWordWithMatches: { cases: MatchCase[] };
  mandatoryEnvVars: { cases: MatchCase[] };
  platformRelease: { cases: MatchCase[] };
  envLookup: { cases: { envs: string[]; key: string; expected: string }[] };
};

test('process-with-matches: results and matched/unmatched names', () => {
  const lex = new ShellLex();
  const all = [...matches.processWordWithMatches.cases, ...matches.mandatoryEnvVars.cases, ...matches.platformRelease.cases];
  assert.ok(all.length >= 56);
  for (const c of all) {
    const env = mapLookup(new Map(Object.entries(c.envs)));
    if (c.expectError || c.expectErrorContaining) {
      assert.throws(() => lex.processWordWithMatches(c.input, env), (e: Error) => e.message.includes(c.expectErrorContaining ?? ''), c.input);
      continue;
    }
    const r = lex.processWordWithMatches(c.input, env);
    assert.equal(r.result, c.expected, c.input);
    if (c.matched) assert.deepEqual([...r.matched].sort(), [...c.matched].sort(), `matched of ${c.input}`);
    if (c.unmatched) assert.deepEqual([...r.unmatched].sort(), [...c.unmatched].sort(), `unmatched of ${c.input}`);
  }
});

test('env list lookup: last entry wins, bare names read as empty', () => {
  for (const c of matches.envLookup.cases) assert.equal(envListLookup(c.envs).get(c.key) ?? '', c.expected);
});

test('backtick escape token', () => {
  const lex = new ShellLex({ escapeToken: '`' });
  const env = mapLookup(new Map([['A', 'x']]));
  assert.equal(lex.processWord('a`$A\\b', env), 'a$A\\b');
  assert.equal(lex.processWord('"q`"$A"', env), 'q"x');
});
