import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from '../helpers/paths.js';
import { PatternMatcher, legacyMatches, parseIgnoreFile, type MatchInfo } from '../../src/frontend/dockerignore.js';

const cases = JSON.parse(readFileSync(join(conformanceDir, 'patternmatcher', 'cases.json'), 'utf8')) as {
  matches: { patterns: string[]; path: string; expected: boolean }[];
  legacyMatches: { patterns: string[]; path: string; expected: boolean; error: string | null }[];
  misc: { patterns: string[]; path: string; expected: boolean; error: string | null }[];
  newPatternMatcher: { patterns: string[]; expectError: boolean; patternCount?: number; exclusions?: boolean; then?: { path: string; expectedError: string; repeat: number } }[];
  ignorefile: { input: string; expected: string[] }[];
};

test('matches: MatchesOrParentMatches and MatchesUsingParentResults agree with every case', () => {
  assert.equal(cases.matches.length, 72);
  for (const c of cases.matches) {
    const pm = new PatternMatcher(c.patterns);
    const label = `${JSON.stringify(c.patterns)} ${c.path}`;
    assert.equal(pm.matchesOrParentMatches(c.path), c.expected, label);
    assert.equal(pm.matchesUsingParentResults(c.path).excluded, c.expected, label + ' (no parent info)');
    // walk the ancestors first, as the context walker does
    const parts = c.path.split('/');
    let info: MatchInfo | undefined;
    for (let i = 1; i < parts.length; i++) {
      const anc = parts.slice(0, i).join('/');
      if (anc === '') continue;
      info = pm.matchesUsingParentResults(anc, info).info;
    }
    assert.equal(pm.matchesUsingParentResults(c.path, info).excluded, c.expected, label + ' (walked)');
  }
});

test('legacy Matches and misc cases, including syntax errors', () => {
  for (const c of [...cases.legacyMatches, ...cases.misc]) {
    const label = `${JSON.stringify(c.patterns)} ${c.path}`;
    if (c.error) {
      assert.throws(() => legacyMatches(c.path, c.patterns), (e: Error) => e.message === c.error, label);
    } else {
      assert.equal(legacyMatches(c.path, c.patterns), c.expected, label);
    }
  }
});

test('New(patterns): cleaning, exclusions, lazy regexp errors', () => {
  for (const c of cases.newPatternMatcher) {
    if (c.expectError) {
      assert.throws(() => new PatternMatcher(c.patterns));
      continue;
    }
    const pm = new PatternMatcher(c.patterns);
    if (c.patternCount !== undefined) assert.equal(pm.patterns.length, c.patternCount);
    if (c.exclusions !== undefined) assert.equal(pm.exclusions, c.exclusions);
    if (c.then) {
      for (let i = 0; i < c.then.repeat; i++) assert.throws(() => pm.matchesOrParentMatches(c.then!.path), { message: c.then.expectedError });
    }
  }
});

test('ignore file parsing', () => {
  const list = Array.isArray(cases.ignorefile) ? cases.ignorefile : [cases.ignorefile as unknown as { input: string; expected: string[] }];
  for (const c of list) assert.deepEqual(parseIgnoreFile(c.input), c.expected);
  assert.deepEqual(parseIgnoreFile('\ufeffa\r\n#c\r\n'), ['a']);
});

test('a backslash escapes as in Go\'s regexp, which patternmatcher hands the pattern to (checked against BuildKit)', () => {
  const names = ['#b', 'ab', 'a b', '!n', 'a]b', 'AB', 'é', '1', 'd', 'n', 'q', 'w', 'x', 'tt', '07', 's s', 's\ts'];
  const cases: [string, string[]][] = [
    ['\\#b', ['#b']],
    ['a\\ b', ['a b']],
    ['\\!n', ['!n']],
    ['\\a\\b', []], // bell, then a word boundary
    ['\\t\\t', []],
    ['\\d', ['1']],
    ['\\w', ['1', 'd', 'n', 'q', 'w', 'x']],
    ['[\\d]', ['1']],
    ['s\\ss', ['s s', 's\ts']],
    ['a]b', ['a]b']],
    ['\\x23b', ['#b']],
    ['\\x{23}b', ['#b']],
    ['\\pL', ['é', 'd', 'n', 'q', 'w', 'x']],
    ['\\p{Latin}', ['é', 'd', 'n', 'q', 'w', 'x']],
    ['\\QAB\\E', ['AB']],
    ['\\060\\067', ['07']],
  ];
  for (const [pattern, excluded] of cases) {
    const pm = new PatternMatcher([pattern]);
    const got = names.filter((n) => pm.matchesOrParentMatches(n));
    assert.deepEqual(got.sort(), [...excluded].sort(), pattern);
  }
  for (const bad of ['\\q', '\\7z', '\\C', '\\é', '\\x4', '[\\b]']) {
    const p = new PatternMatcher([bad]).patterns[0]!;
    assert.throws(() => p.validate(), { message: 'syntax error in pattern' }, bad);
  }
});
