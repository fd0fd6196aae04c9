/**
 * Helper verbs for the certification API tests: reviewers in the built-in
 * groups, images pushed by the administrator, and decisions, revocations and
 * status requests through /api/v1/certifications.
 */
import assert from 'node:assert/strict';
import type { Response } from 'supertest';
import { apiRequest } from './api.js';
import { RegistryClient } from './registry-client.js';
import { basicAuthorization, createTestUser, type TestServer } from './server.js';
import { recordCleanScan } from './scan-state.js';

/** Authorization header values of the test reviewers, one for each built-in reviewer group and one in all three. */
export interface Reviewers {
  it: string;
  security: string;
  qa: string;
  /** A member of the it, security and qa groups. */
  all: string;
}

/** Creates one user in each reviewer group and one in all of them, with names that start with `prefix`. */
export async function createReviewers(server: TestServer, prefix = 'reviewer'): Promise<Reviewers> {
  return {
    it: basicAuthorization(await createTestUser(server.db, `${prefix}-it`, ['it'])),
    security: basicAuthorization(await createTestUser(server.db, `${prefix}-security`, ['security'])),
    qa: basicAuthorization(await createTestUser(server.db, `${prefix}-qa`, ['qa'])),
    all: basicAuthorization(await createTestUser(server.db, `${prefix}-all`, ['it', 'security', 'qa'])),
  };
}

/**
 * Pushes a new image as the administrator, tagged when `tag` is given, and
 * returns its manifest digest. It also records a clean secret scan of the
 * image, because Security may approve only a scanned image.
 */
export async function pushImage(server: TestServer, repository: string, tag?: string): Promise<string> {
  const manifest = await new RegistryClient(server.url, server.admin).pushImage(repository, tag);
  await recordCleanScan(server.db, manifest.digest);
  return manifest.digest;
}

/** A decision body with defaults for the fields a test does not care about. */
export interface DecisionBody {
  repository: string;
  digest: string;
  role: string;
  decision?: string;
  comment?: string;
  evidence?: unknown;
}

/** POSTs a decision; the decision is an approval unless given. */
export function postDecision(server: TestServer, authorization: string | undefined, body: DecisionBody): Promise<Response> {
  return apiRequest(server, 'post', '/api/v1/certifications', authorization).send({ decision: 'approve', ...body });
}

/** POSTs a decision and asserts 201. */
export async function decideOk(server: TestServer, authorization: string, body: DecisionBody): Promise<Response> {
  const response = await postDecision(server, authorization, body);
  assert.equal(response.status, 201, `decision failed: ${response.status} ${response.text}`);
  return response;
}

/**
 * Approves a digest for every role in `roles` with the matching reviewer,
 * after recording a clean secret scan of it, which a Security approval needs.
 */
export async function approveAll(server: TestServer, reviewers: Reviewers, repository: string, digest: string, roles: ReadonlyArray<'it' | 'security' | 'qa'> = ['it', 'security', 'qa']): Promise<Response> {
  if (roles.includes('security')) await recordCleanScan(server.db, digest);
  let last: Response | undefined;
  for (const role of roles) last = await decideOk(server, reviewers[role], { repository, digest, role });
  assert.ok(last, 'no role to approve for');
  return last;
}

/** POSTs a revocation. */
export function postRevocation(server: TestServer, authorization: string | undefined, body: { repository: string; digest: string; reason?: string }): Promise<Response> {
  return apiRequest(server, 'post', '/api/v1/certifications/revocations', authorization).send({ reason: 'revoked by a test', ...body });
}

/** GETs the status of a tag or digest. */
export function getStatus(server: TestServer, authorization: string | undefined, repository: string, reference: string): Promise<Response> {
  return apiRequest(server, 'get', `/api/v1/certifications/status?${new URLSearchParams({ repository, reference }).toString()}`, authorization);
}
