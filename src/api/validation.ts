import type { NextFunction, Request, Response } from 'express';
import type { z } from 'zod';
import type { InputProblem } from '../auth/account-errors.js';
import { ApiError } from './errors.js';

/** Maximum number of group names in one request body. */
export const MAX_GROUPS_PER_REQUEST = 100;

/** Turns zod issues into problems named by field path; an issue about the whole input is named by `whole`. */
function problemsOf(error: z.ZodError, whole: string): InputProblem[] {
  return error.issues.map((issue) => ({ field: issue.path.map(String).join('.') || whole, message: messageOf(issue) }));
}

/** Returns the message of an issue, with "required" where zod reports that a value was expected and none was sent. */
function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) return `required: expected a ${issue.expected}`;
  return issue.message;
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

/** Deepest nesting of arrays and objects accepted in a request body. */
export const MAX_JSON_DEPTH = 32;

/** Returns the path of the first string or key with a NUL character, or of the first value nested too deep, or null. */
function findUnsafeJson(value: unknown, where: string, depth: number): { path: string; problem: string } | null {
  if (typeof value === 'string') return value.includes('\u0000') ? { path: where, problem: 'contains a NUL character' } : null;
  if (typeof value !== 'object' || value === null) return null;
  if (depth >= MAX_JSON_DEPTH) return { path: where, problem: `is nested deeper than ${MAX_JSON_DEPTH} levels` };

  const entries: Array<[string, unknown]> = Array.isArray(value) ? value.map((item, index) => [String(index), item]) : Object.entries(value);
  for (const [key, item] of entries) {
    if (key.includes('\u0000')) return { path: where, problem: 'has a key with a NUL character' };
    const found = findUnsafeJson(item, where === '' ? key : `${where}.${key}`, depth + 1);
    if (found) return found;
  }
  return null;
}

/**
 * Rejects JSON bodies that PostgreSQL cannot store or that would exhaust the
 * stack while being processed: NUL characters in strings or keys, and
 * nesting deeper than MAX_JSON_DEPTH. Runs after express.json().
 */
export function rejectUnsafeJson(request: Request, _response: Response, next: NextFunction): void {
  const found = findUnsafeJson(request.body, '', 0);
  if (found === null) {
    next();
    return;
  }
  next(new ApiError('INVALID_REQUEST', `invalid request body: ${found.path === '' ? 'the body' : found.path} ${found.problem}`, { field: found.path }));
}
