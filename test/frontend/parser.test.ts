import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from '../helpers/paths.js';
import { parseDockerfile, ParseError, findDirective } from '../../src/frontend/parser/parser.js';
import { dumpAst } from '../../src/frontend/parser/node.js';
import { DirectiveParser } from '../../src/frontend/parser/directives.js';
import { parseHeredocWord, heredocsFromLine, chompHeredocContent } from '../../src/frontend/parser/heredoc.js';
import { parseJsonArray, parseWords } from '../../src/frontend/parser/line-parsers.js';

const dir = join(conformanceDir, 'buildkit-dockerfile-parser');
interface HeredocWant { name: string; fileDescriptor: number; expand: boolean; chomp: boolean; content: string }
interface DirectiveCase { input: string; inputPrefixBytesHex?: string; key?: 'syntax' | 'check'; ok: boolean; ref?: string; cmdline?: string; startLine?: number }
/** The transcribed tables of extra/*.json, as far as these tests read them. */
interface Extra {
  lineNumbers: { root: { startLine: number; endLine: number }; childCount: number; children: { startLine: number; endLine: number }[] };
  emptyContinuationWarnings: { dockerfile: string; warningCount: number; warnings: { shortContains: string[]; detailContains?: string }[] };
  lineTooLong: { expectedError: string };
  extractsHeredoc: { dockerfile: string; children: { childIndex: number; instructionLine: string; heredocs: HeredocWant[] | null | 'not checked' }[] };
  jsonFormHasNoHeredoc: { dockerfile: string; childrenWithNullHeredocs: number[] };
  chomp: { input: string; expected: string };
  parseHeredocWord: { valid: string[]; invalid: string[]; notHeredoc: string[] };
  heredocsFromLine: { cases: { line: string; heredocNames: string[] | null }[] };
  jsonArrayValid: { cases: { input: string; expected: string[] }[] };
  jsonArrayNotAllStrings: { cases: string[] };
  parseWords: { cases: { input: string; expected: string[] }[] };
  parseAll: { cases: { input: string; expected: { name: string; value: string }[] }[] };
  detectSyntax: { cases: DirectiveCase[] };
  parseDirective: { cases: (DirectiveCase & { key: 'syntax' | 'check' })[] };
}
const extra = (name: string) => JSON.parse(readFileSync(join(dir, 'extra', name), 'utf8')) as Extra;

test('testfiles: all 33 dumps are byte-identical to result', () => {
  const cases = readdirSync(join(dir, 'testfiles')).sort();
  assert.equal(cases.length, 33);
  for (const c of cases) {
    const df = readFileSync(join(dir, 'testfiles', c, 'Dockerfile'), 'utf8');
    const want = readFileSync(join(dir, 'testfiles', c, 'result'), 'utf8');
    assert.equal(dumpAst(parseDockerfile(df).nodes) + '\n', want, `case ${c}`);
  }
});

test('testfiles-negative: all 4 fail, naming the line', () => {
  const cases = readdirSync(join(dir, 'testfiles-negative')).sort();
  assert.equal(cases.length, 4);
  for (const c of cases) {
    const df = readFileSync(join(dir, 'testfiles-negative', c, 'Dockerfile'), 'utf8');
    assert.throws(() => parseDockerfile(df), (e: unknown) => e instanceof ParseError && /^line \d+: /.test(e.message), c);
  }
});

test('line numbers of testfile-line', () => {
  const want = extra('line-info-and-warnings.json').lineNumbers;
  const r = parseDockerfile(readFileSync(join(dir, 'testfile-line', 'Dockerfile'), 'utf8'));
  assert.equal(r.startLine, want.root.startLine);
  assert.equal(r.endLine, want.root.endLine);
  assert.equal(r.nodes.length, want.childCount);
  r.nodes.forEach((n, i) => assert.deepEqual({ startLine: n.startLine, endLine: n.endLine }, want.children[i]));
});

test('empty continuation lines warn once per instruction', () => {
  const want = extra('line-info-and-warnings.json').emptyContinuationWarnings;
  const r = parseDockerfile(want.dockerfile);
  assert.equal(r.warnings.length, want.warningCount);
  want.warnings.forEach((w, i) => {
    for (const s of w.shortContains) assert.ok(r.warnings[i]!.short.includes(s), r.warnings[i]!.short);
    if (w.detailContains) assert.ok(r.warnings[i]!.detail.includes(w.detailContains));
  });
});

test('a line longer than 65535 bytes is an error', () => {
  const want = extra('line-info-and-warnings.json').lineTooLong.expectedError;
  assert.throws(() => parseDockerfile('FROM a\nLABEL test=' + 'a'.repeat(65536) + '\n'), (e: unknown) => e instanceof ParseError && e.reason === want && e.line === 2);
  assert.doesNotThrow(() => parseDockerfile('FROM a\nLABEL t=' + 'a'.repeat(65535 - 8) + '\n'));
});

test('heredoc extraction', () => {
  const h = extra('heredoc-cases.json');
  const r = parseDockerfile(h.extractsHeredoc.dockerfile);
  let checked = 0;
  for (const c of h.extractsHeredoc.children) {
    if (c.heredocs === 'not checked') continue;
    const got = r.nodes[c.childIndex]!;
    assert.equal(got.original, c.instructionLine);
    const docs = got.heredocs.map((d) => ({ name: d.name, fileDescriptor: d.fileDescriptor, expand: d.expand, chomp: d.chomp, content: d.content }));
    assert.deepEqual(docs.length ? docs : null, c.heredocs, c.instructionLine);
    checked++;
  }
  assert.equal(checked, 27);
  const j = parseDockerfile(h.jsonFormHasNoHeredoc.dockerfile);
  for (const i of h.jsonFormHasNoHeredoc.childrenWithNullHeredocs) assert.equal(j.nodes[i]!.heredocs.length, 0);
  assert.equal(chompHeredocContent(h.chomp.input), h.chomp.expected);
  for (const w of h.parseHeredocWord.valid) assert.equal(parseHeredocWord(w)?.name, 'EOF', w);
  for (const w of h.parseHeredocWord.invalid) assert.throws(() => parseHeredocWord(w), w);
  for (const w of h.parseHeredocWord.notHeredoc) assert.equal(parseHeredocWord(w), undefined, w);
  for (const c of h.heredocsFromLine.cases) {
    const names = heredocsFromLine(c.line).map((d) => d.name);
    assert.deepEqual(names.length ? names : null, c.heredocNames, c.line);
  }
});

test('heredoc inside ONBUILD, several per instruction, unterminated', () => {
  const r = parseDockerfile('FROM a\nONBUILD RUN <<A\nx\nA\nRUN <<A cat - /dev/fd/3 3<<B\n1\nA\n2\nB\nRUN ls\n');
  assert.equal(r.nodes[1]!.sub!.heredocs[0]!.content, 'x\n');
  assert.deepEqual(r.nodes[2]!.heredocs.map((d) => [d.name, d.fileDescriptor, d.content]), [['A', 0, '1\n'], ['B', 3, '2\n']]);
  assert.equal(r.nodes[3]!.startLine, 10);
  assert.throws(() => parseDockerfile('FROM a\nRUN <<EOF\necho\n'), /line 2: unterminated heredoc/);
});

test('exec-form JSON and word splitting', () => {
  const j = extra('json-and-words-cases.json');
  for (const c of j.jsonArrayValid.cases) assert.deepEqual(parseJsonArray(c.input), c.expected);
  for (const c of j.jsonArrayNotAllStrings.cases) {
    assert.throws(() => parseJsonArray(c));
    assert.throws(() => parseDockerfile(`FROM a\nCMD ${c}\n`), /line 2: when using JSON array syntax/);
  }
  for (const c of j.parseWords.cases) assert.deepEqual(parseWords(c.input, '\\'), c.expected, c.input);
  // As Go's json.Decoder in BuildKit: the first JSON value, and what follows it ignored.
  assert.deepEqual(parseJsonArray('["/bin/echo", "hi"] # start the app'), ['/bin/echo', 'hi']);
  assert.deepEqual(parseJsonArray('["a]", "b\\"]"] x'), ['a]', 'b"]']);
  assert.deepEqual(parseJsonArray('["a"]]'), ['a']);
  assert.equal(parseJsonArray('["a" junk]'), undefined);
  assert.equal(parseJsonArray('["a"'), undefined);
});

test('directives', () => {
  const d = extra('directives-cases.json');
  for (const c of d.parseAll.cases) {
    assert.deepEqual(new DirectiveParser().parseAll(c.input).map((x) => ({ name: x.name, value: x.value })), c.expected);
  }
  assert.throws(() => new DirectiveParser().parseAll('# escape=\\\n# escape=`\n'), /only one escape parser directive can be used/);
  for (const c of d.detectSyntax.cases) {
    const input = (c.inputPrefixBytesHex ? Buffer.from(c.inputPrefixBytesHex, 'hex').toString('utf8') : '') + c.input;
    const got = findDirective('syntax', input);
    assert.equal(got !== undefined, c.ok, c.input);
    if (!c.ok) continue;
    assert.equal(got!.value, c.ref);
    if (c.cmdline !== undefined) assert.equal(got!.cmdline, c.cmdline);
    if (c.startLine !== undefined) assert.equal(got!.line, c.startLine);
  }
  for (const c of d.parseDirective.cases) {
    const got = findDirective(c.key, c.input);
    assert.equal(got !== undefined, c.ok, c.input);
    if (!c.ok) continue;
    assert.equal(got!.value, c.ref);
    if (c.cmdline !== undefined) assert.equal(got!.cmdline, c.cmdline);
    if (c.startLine !== undefined) assert.equal(got!.line, c.startLine);
  }
});

test('backtick escape directive, CRLF, BOM, unknown keyword', () => {
  const r = parseDockerfile('\ufeff# escape=`\r\nFROM a\r\nRUN echo \\ `\r\n  b\r\nFOO bar\r\n');
  assert.equal(r.escapeToken, '`');
  assert.equal(dumpAst(r.nodes), '(from "a")\n(run "echo \\\\   b")\n(foo "")');
  assert.throws(() => parseDockerfile('# escape=x\nFROM a\n'), /line 1: invalid escape token/);
});
