/** Checks real management API responses against their schemas in openapi.yaml. */
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

const openapi = parse(await readFile(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as OpenApiDocument;
const ajv = new Ajv2020({ strict: false, allErrors: true });
// ajv checks no formats without ajv-formats, so the two that the schemas use are declared here.
ajv.addFormat('date-time', {
  type: 'string',
  validate: (value: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value)),
});
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
ajv.addFormat('password', true);
const validators = new Map<string, ValidateFunction>();

function resolveReference(reference: string): unknown {
  let value: unknown = openapi;
  for (const part of reference.slice(2).split('/')) value = (value as Record<string, unknown>)[part];
  assert.ok(value !== undefined, `openapi.yaml has no ${reference}`);
  return value;
}

/**
 * Asserts that the status of a response is documented for the path and
 * method, and that its JSON body matches the documented schema.
 */
export function assertDocumented(path: string, method: string, response: { status: number; body: unknown; text: string }): void {
  let documented = openapi.paths[path]?.[method]?.responses[String(response.status)];
  assert.ok(documented, `openapi.yaml does not document ${method.toUpperCase()} ${path} ${response.status}`);
  if (documented.$ref) documented = resolveReference(documented.$ref) as ResponseObject;

  const schema = documented.content?.['application/json']?.schema;
  if (!schema) {
    assert.equal(response.text ?? '', '', `${method.toUpperCase()} ${path} ${response.status} is documented without a body`);
    return;
  }
  const key = `${method} ${path} ${response.status}`;
  let validate = validators.get(key);
  if (!validate) {
    validate = ajv.compile({ ...schema, components: openapi.components });
    validators.set(key, validate);
  }
  assert.ok(validate(response.body), `${key}: ${ajv.errorsText(validate.errors)} in ${response.text.slice(0, 500)}`);
}
