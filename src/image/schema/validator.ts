// A JSON Schema validator for the draft-04 subset the OCI image-spec schemas use: type,
// properties, patternProperties, additionalProperties, required, items, min/maxItems, enum,
// pattern, min/maxLength, minimum/maximum, allOf/anyOf/oneOf/not, format "uri", and $ref with
// draft-04 `id` re-basing (an `id` beside a `$ref` is ignored, as draft-04 says of $ref's siblings).

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = { [k: string]: Json };

export interface SchemaError {
  /** JSON pointer into the document. */
  path: string;
  message: string;
}

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(v: Json, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

function deepEqual(a: Json, b: Json): boolean {
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}
function canon(v: Json): Json {
  if (Array.isArray(v)) return v.map(canon);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k]!)]));
  return v;
}

function unescapePointer(s: string): string {
  return decodeURIComponent(s).replace(/~1/g, '/').replace(/~0/g, '~');
}

export class SchemaSet {
  private docs = new Map<string, Schema>();

  /** Registers a schema document under a URI (a file name or an absolute URL). */
  add(uri: string, schema: Json): void {
    if (!isObject(schema)) throw new Error(`schema ${uri} is not an object`);
    this.docs.set(stripFragment(uri), schema);
  }

  validate(uri: string, value: Json): SchemaError[] {
    const root = this.docs.get(stripFragment(uri));
    if (!root) throw new Error(`no schema registered as ${uri}`);
    const errors: SchemaError[] = [];
    this.check(root, baseOf(uri, root), value, '', errors);
    return errors;
  }

  private resolve(ref: string, base: string): { schema: Schema; base: string } {
    const abs = new URL(ref, base).href;
    const hash = abs.indexOf('#');
    const docUri = hash >= 0 ? abs.slice(0, hash) : abs;
    const fragment = hash >= 0 ? abs.slice(hash + 1) : '';
    let doc = this.docs.get(docUri);
    // File-name registrations: `defs.json` matches any base ending in it.
    if (!doc) doc = this.docs.get(docUri.slice(docUri.lastIndexOf('/') + 1));
    if (!doc) throw new Error(`unresolvable $ref ${ref} (from ${base})`);
    let node: Json = doc;
    for (const part of fragment.split('/').filter((p) => p !== '')) {
      if (!isObject(node) && !Array.isArray(node)) throw new Error(`bad $ref ${abs}`);
      node = Array.isArray(node) ? node[Number(part)]! : node[unescapePointer(part)]!;
      if (node === undefined) throw new Error(`bad $ref ${abs}`);
    }
    if (!isObject(node)) throw new Error(`$ref ${abs} is not a schema`);
    return { schema: node, base: docUri };
  }

  private check(s: Schema, base: string, v: Json, path: string, errors: SchemaError[]): void {
    const fail = (message: string) => errors.push({ path: path || '/', message });
    if (typeof s.$ref === 'string') {
      const r = this.resolve(s.$ref, base);
      this.check(r.schema, baseOf(r.base, r.schema), v, path, errors);
      return;
    }
    if (typeof s.id === 'string') base = new URL(s.id, base).href;

    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      if (!types.some((t) => typeMatches(v, t))) {
        fail(`expected ${types.join(' or ')}, got ${typeOf(v)}`);
        return;
      }
    }
    if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, v))) fail(`must be one of ${JSON.stringify(s.enum)}`);

    if (typeof v === 'string') {
      if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) fail(`does not match ${s.pattern}`);
      const len = [...v].length;
      if (typeof s.minLength === 'number' && len < s.minLength) fail(`shorter than ${s.minLength}`);
      if (typeof s.maxLength === 'number' && len > s.maxLength) fail(`longer than ${s.maxLength}`);
      if (s.format === 'uri' && !isUri(v)) fail('is not a URI');
    }
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && (s.exclusiveMinimum === true ? v <= s.minimum : v < s.minimum)) fail(`below the minimum ${s.minimum}`);
      if (typeof s.maximum === 'number' && (s.exclusiveMaximum === true ? v >= s.maximum : v > s.maximum)) fail(`above the maximum ${s.maximum}`);
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) fail(`fewer than ${s.minItems} items`);
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) fail(`more than ${s.maxItems} items`);
      if (s.uniqueItems === true && new Set(v.map((x) => JSON.stringify(canon(x)))).size !== v.length) fail('items are not unique');
      if (isObject(s.items)) v.forEach((item, i) => this.check(s.items as Schema, base, item, `${path}/${i}`, errors));
      else if (Array.isArray(s.items)) {
        v.forEach((item, i) => {
          const sub = (s.items as Json[])[i];
          if (isObject(sub)) this.check(sub, base, item, `${path}/${i}`, errors);
          else if (s.additionalItems === false) fail(`unexpected item ${i}`);
          else if (isObject(s.additionalItems)) this.check(s.additionalItems, base, item, `${path}/${i}`, errors);
        });
      }
    }
    if (isObject(v)) {
      if (Array.isArray(s.required)) for (const k of s.required as string[]) if (!(k in v)) fail(`missing required property "${k}"`);
      if (typeof s.minProperties === 'number' && Object.keys(v).length < s.minProperties) fail(`fewer than ${s.minProperties} properties`);
      const props = isObject(s.properties) ? s.properties : {};
      const patterns = isObject(s.patternProperties) ? Object.entries(s.patternProperties).map(([p, sub]) => [new RegExp(p, 'u'), sub] as const) : [];
      for (const [k, val] of Object.entries(v)) {
        const sub = props[k];
        let matched = false;
        if (isObject(sub)) {
          matched = true;
          this.check(sub, base, val, `${path}/${k}`, errors);
        }
        for (const [re, psub] of patterns) {
          if (re.test(k)) {
            matched = true;
            if (isObject(psub)) this.check(psub, base, val, `${path}/${k}`, errors);
          }
        }
        if (!matched) {
          if (s.additionalProperties === false) fail(`unexpected property "${k}"`);
          else if (isObject(s.additionalProperties)) this.check(s.additionalProperties, base, val, `${path}/${k}`, errors);
        }
      }
    }
    const sub = (list: Json | undefined) => (Array.isArray(list) ? list.filter(isObject) : []);
    for (const a of sub(s.allOf)) this.check(a, base, v, path, errors);
    const passes = (x: Schema) => {
      const e: SchemaError[] = [];
      this.check(x, base, v, path, e);
      return e.length === 0;
    };
    if (Array.isArray(s.anyOf) && !sub(s.anyOf).some(passes)) fail('matches none of anyOf');
    if (Array.isArray(s.oneOf)) {
      const n = sub(s.oneOf).filter(passes).length;
      if (n !== 1) fail(`matches ${n} of oneOf (exactly one needed)`);
    }
    if (isObject(s.not) && passes(s.not)) fail('matches a schema it must not');
  }
}

function stripFragment(uri: string): string {
  const h = uri.indexOf('#');
  return h >= 0 ? uri.slice(0, h) : uri;
}

/** The base URI of a document: its own top-level id, else the URI it was registered under. */
function baseOf(uri: string, schema: Schema): string {
  const start = /^[a-z][a-z0-9+.-]*:/i.test(uri) ? uri : `kiln-schema:/${uri}`;
  return typeof schema.id === 'string' && schema.$ref === undefined ? new URL(schema.id, start).href : start;
}

function isUri(s: string): boolean {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(s)) return false;
  try {
    new URL(s);
    return true;
  } catch {
    return false;
  }
}
