import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ociSchemas, ociSpecDir } from './oci-schemas.js';
import { SchemaSet } from '../../src/image/schema/validator.js';

interface CaseFile {
  mediaType: string;
  cases: Array<{ index: number; description: string; document: string; expectValid: boolean }>;
}

for (const name of ['descriptor', 'manifest', 'image-index', 'image-layout', 'config']) {
  test(`OCI schema test cases: ${name}`, async () => {
    const schemas = await ociSchemas();
    const file = JSON.parse(await readFile(join(ociSpecDir, 'testcases', `${name}.json`), 'utf8')) as CaseFile;
    assert.ok(file.cases.length > 0);
    for (const c of file.cases) {
      const errors = schemas.validate(file.mediaType, c.document);
      assert.equal(errors.length === 0, c.expectValid, `${name} #${c.index} (${c.description}): ${JSON.stringify(errors)}`);
    }
  });
}

test('OCI spec examples all validate as their media type', async () => {
  const schemas = await ociSchemas();
  const idx = JSON.parse(await readFile(join(ociSpecDir, 'spec-examples', 'index.json'), 'utf8')) as {
    examples: Array<{ file: string; mediaType: string; expectValid: boolean }>;
  };
  assert.equal(idx.examples.length, 10);
  for (const e of idx.examples) {
    const text = await readFile(join(ociSpecDir, 'spec-examples', e.file), 'utf8');
    const errors = schemas.validate(e.mediaType, text);
    assert.equal(errors.length === 0, e.expectValid, `${e.file}: ${JSON.stringify(errors)}`);
  }
});

test('Docker v2.2 documents validate after the media-type swap', async () => {
  const schemas = await ociSchemas();
  const dir = join(ociSpecDir, 'testcases', 'docker-v2.2-compat');
  const idx = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    compatMap: Record<string, string>;
    cases: Array<{ file: string; validateAs: string; expectValidAfterConversion: boolean }>;
  };
  for (const c of idx.cases) {
    let text = await readFile(join(dir, c.file), 'utf8');
    for (const [from, to] of Object.entries(idx.compatMap)) text = text.split(from).join(to);
    const errors = schemas.validate(c.validateAs, text);
    assert.equal(errors.length === 0, c.expectValidAfterConversion, `${c.file}: ${JSON.stringify(errors)}`);
  }
});

test('validator keywords: oneOf, additionalProperties, refs with id re-basing', () => {
  const set = new SchemaSet();
  set.add('https://example.test/s/defs.json', { definitions: { even: { type: 'integer', not: { enum: [1, 3, 5] } } } });
  set.add('main.json', {
    id: 'https://example.test/s/main',
    type: 'object',
    additionalProperties: false,
    required: ['n'],
    properties: { n: { $ref: 'defs.json#/definitions/even' }, k: { oneOf: [{ type: 'string' }, { type: 'integer', minimum: 10 }] } },
  });
  assert.deepEqual(set.validate('main.json', { n: 2, k: 'x' }), []);
  assert.equal(set.validate('main.json', { n: 3 }).length, 1);
  assert.equal(set.validate('main.json', { n: 2, k: 5 }).length, 1);
  assert.equal(set.validate('main.json', { n: 2, extra: true }).length, 1);
  assert.equal(set.validate('main.json', {}).length, 1);
});
