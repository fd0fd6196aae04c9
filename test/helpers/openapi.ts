/**
 * Checks real management API responses against openapi.yaml: the status
 * must be documented, a JSON body must match its schema, and a body of
 * another media type must be one the response documents. NDJSON bodies are
 * checked line by line against the schema documented for them.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

interface ResponseObject {
  $ref?: string;
  content?: Record<string, { schema: object }>;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>>;
  components: Record<string, Record<string, unknown>>;
}

/** A response as supertest returns it. */
export interface CheckedResponse {
  status: number;
  body: unknown;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

const openapi = parse(await readFile(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as OpenApiDocument;
const ajv = new Ajv2020({ strict: false, allErrors: true });
// ajv checks no formats without ajv-formats, so the ones that the schemas use are declared here.
ajv.addFormat('date-time', {
  type: 'string',
  validate: (value: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value)),
});
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
ajv.addFormat('password', true);
const validators = new Map<string, ValidateFunction>();

function resolveReference(reference: string): unknown {
  let value: unknown = openapi;
  for (const part of reference.slice(2).split('/')) value = (value as Record<string, unknown>)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  assert.ok(value !== undefined, `openapi.yaml has no ${reference}`);
  return value;
}

function validatorOf(key: string, schema: object): ValidateFunction {
  let validate = validators.get(key);
  if (!validate) {
    // The schema is compiled with the components beside it, so its `#/components/...` references resolve.
    validate = ajv.compile({ ...schema, components: openapi.components });
    validators.set(key, validate);
  }
  return validate;
}

/** Returns the media type of a response without parameters, or '' when it has none. */
function mediaTypeOf(response: CheckedResponse): string {
  const header = response.headers['content-type'];
  return (typeof header === 'string' ? header : '').split(';', 1)[0]!.trim().toLowerCase();
}

/** The status documented for the path and method, with a shared response's `$ref` followed. */
export function documentedResponse(path: string, method: string, status: number): ResponseObject {
  let documented = openapi.paths[path]?.[method]?.responses[String(status)];
  assert.ok(documented, `openapi.yaml does not document ${method.toUpperCase()} ${path} ${status}`);
  if (documented.$ref) documented = resolveReference(documented.$ref) as ResponseObject;
  return documented;
}

/**
 * Asserts that the status of a response is documented for the path and
 * method, and that its body has a documented media type and matches the
 * schema given for it: the whole body for JSON, each line for NDJSON.
 */
export function assertDocumented(path: string, method: string, response: CheckedResponse): void {
  const documented = documentedResponse(path, method, response.status);
  const key = `${method} ${path} ${response.status}`;
  if (!documented.content) {
    assert.equal(response.text ?? '', '', `${key} is documented without a body`);
    return;
  }

  const mediaType = mediaTypeOf(response);
  const content = documented.content[mediaType];
  assert.ok(content, `${key} documents no ${mediaType || 'missing'} body; it documents ${Object.keys(documented.content).join(', ')}`);
  if (mediaType === 'application/json') {
    const validate = validatorOf(`${key} ${mediaType}`, content.schema);
    assert.ok(validate(response.body), `${key}: ${ajv.errorsText(validate.errors)} in ${response.text.slice(0, 500)}`);
    return;
  }
  if (mediaType === 'application/x-ndjson') {
    const validate = validatorOf(`${key} ${mediaType}`, content.schema);
    for (const line of response.text.split('\n').filter((text) => text !== '')) {
      assert.ok(validate(JSON.parse(line)), `${key} NDJSON line: ${ajv.errorsText(validate.errors)} in ${line.slice(0, 500)}`);
    }
  }
}
