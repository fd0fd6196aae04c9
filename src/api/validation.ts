import type { Request } from 'express';
import type { z } from 'zod';
import type { InputProblem } from '../auth/account-errors.js';
import { ApiError } from './errors.js';

/** Maximum number of group names in one request body. */
export const MAX_GROUPS_PER_REQUEST = 100;

/** Turns zod issues into problems named by field path; an issue about the whole input is named by `whole`. */
function problemsOf(error: z.ZodError, whole: string): InputProblem[] {
  return error.issues.map((issue) => ({ field: issue.path.map(String).join('.') || whole, message: issue.message }));
}

function invalidRequest(problems: InputProblem[]): ApiError {
  return new ApiError('INVALID_REQUEST', problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '), { problems });
}

/**
 * Returns the JSON body parsed by the schema, or throws INVALID_REQUEST with
 * one problem per invalid field. A request without a JSON body (none, or
 * another Content-Type) is invalid too. Field names are reported, values never.
 */
export function parseBody<T>(schema: z.ZodType<T>, request: Request): T {
  if (request.body === undefined) {
    throw invalidRequest([{ field: 'body', message: 'expected a JSON object with Content-Type: application/json' }]);
  }
  const result = schema.safeParse(request.body);
  if (!result.success) throw invalidRequest(problemsOf(result.error, 'body'));
  return result.data;
}

/** Returns the query parameters parsed by the schema, or throws INVALID_REQUEST. */
export function parseQuery<T>(schema: z.ZodType<T>, request: Request): T {
  const result = schema.safeParse(request.query);
  if (!result.success) throw invalidRequest(problemsOf(result.error, 'query'));
  return result.data;
}
