/**
 * Helpers for the management API tests: requests with credentials, and
 * readers for the API error envelope.
 */
import request from 'supertest';
import type { Response, Test } from 'supertest';
import type { TestServer } from './server.js';

/** Body of a management API error. */
export interface ApiErrorBody {
  error: { code: string; message: string; details: unknown };
}

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** Starts a request to the test server, with an Authorization header when one is given. */
export function apiRequest(server: TestServer, method: Method, path: string, authorization?: string): Test {
  const test = request(server.url)[method](path);
  return authorization === undefined ? test : test.set('Authorization', authorization);
}

/** Returns the error code of an API error response, or undefined when the body is no API error. */
export function errorCode(response: Response): string | undefined {
  return (response.body as Partial<ApiErrorBody>).error?.code;
}

/** Returns the fields that the `problems` of an INVALID_REQUEST response name. */
export function problemFields(response: Response): string[] {
  const details = (response.body as Partial<ApiErrorBody>).error?.details as { problems?: Array<{ field: string }> } | null | undefined;
  return details?.problems?.map((problem) => problem.field) ?? [];
}

/** Returns the value of a Bearer Authorization header with a token for the login from GET /token. */
export async function bearerAuthorization(server: TestServer, authorization: string): Promise<string> {
  const response = await request(server.url).get('/token').query({ service: 'portcullis' }).set('Authorization', authorization);
  if (response.status !== 200) throw new Error(`GET /token returned ${response.status}: ${response.text}`);
  return `Bearer ${(response.body as { token: string }).token}`;
}
