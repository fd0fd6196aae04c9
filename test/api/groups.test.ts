import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiRequest, errorCode, problemFields } from '../helpers/api.js';
import { basicAuthorization, createTestRobot, createTestUser, startTestServer, type TestServer } from '../helpers/server.js';

describe('management API: groups', () => {
  let server: TestServer;
  let admin: string;
  let developer: string;

  before(async () => {
    server = await startTestServer();
    admin = server.adminAuthorization;
    developer = basicAuthorization(await createTestUser(server.db, 'developer'));
    await createTestRobot(server.db, 'builder', []);
  });
  after(() => server.close());

  function createGroup(body: object, authorization: string | null = admin) {
    return apiRequest(server, 'post', '/api/v1/groups', authorization ?? undefined).send(body);
  }

  async function membersOf(group: string): Promise<string[]> {
    const response = await apiRequest(server, 'get', `/api/v1/groups/${group}`, admin);
    return response.body.members as string[];
  }

  describe('POST /api/v1/groups', () => {
    test('returns 201 with the group', async () => {
      const response = await createGroup({ name: 'team-a', description: 'Team A developers' });
      assert.equal(response.status, 201);
      assert.equal(response.body.name, 'team-a');
      assert.equal(response.body.builtIn, false);
    });

    test('sends the Location of the group', async () => {
      const response = await createGroup({ name: 'located' });
      assert.equal(response.headers.location, '/api/v1/groups/located');
    });

    test('returns 409 for a built-in name', async () => {
      const response = await createGroup({ name: 'admins' });
      assert.equal(response.status, 409);
    });

    test('returns 400 for an invalid name', async () => {
      const response = await createGroup({ name: 'Team A' });
      assert.deepEqual(problemFields(response), ['name']);
    });

    test('returns 400 for a description that is no string', async () => {
      const response = await createGroup({ name: 'numbered', description: 42 });
      assert.deepEqual(problemFields(response), ['description']);
    });

    test('returns 401 without credentials', async () => {
      const response = await createGroup({ name: 'anonymous-group' }, null);
      assert.equal(response.status, 401);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await createGroup({ name: 'developer-group' }, developer);
      assert.equal(response.status, 403);
    });
  });

  describe('GET /api/v1/groups', () => {
    test('returns 200 with the built-in groups', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/groups', admin);
      const builtIn = (response.body.groups as Array<{ name: string; builtIn: boolean }>).filter((group) => group.builtIn).map((group) => group.name);
      assert.deepEqual(builtIn, ['admins', 'auditors', 'it', 'qa', 'security']);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/groups', developer);
      assert.equal(response.status, 403);
    });
  });

  describe('GET /api/v1/groups/{name}', () => {
    test('returns 200 with the members', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/groups/admins', admin);
      assert.deepEqual(response.body.members, ['user:admin']);
    });

    test('returns 404 for an unknown group', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/groups/ghost', admin);
      assert.equal(errorCode(response), 'NOT_FOUND');
    });
  });

  describe('DELETE /api/v1/groups/{name}', () => {
    test('returns 204 for a custom group', async () => {
      await createGroup({ name: 'short-lived' });
      const response = await apiRequest(server, 'delete', '/api/v1/groups/short-lived', admin);
      assert.equal(response.status, 204);
    });

    test('removes the group', async () => {
      await createGroup({ name: 'removed' });
      await apiRequest(server, 'delete', '/api/v1/groups/removed', admin);
      const response = await apiRequest(server, 'get', '/api/v1/groups/removed', admin);
      assert.equal(response.status, 404);
    });

    test('returns 409 for a built-in group', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/groups/qa', admin);
      assert.equal(response.status, 409);
    });

    test('returns 404 for an unknown group', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/groups/ghost', admin);
      assert.equal(response.status, 404);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/groups/team-a', developer);
      assert.equal(response.status, 403);
    });
  });

  describe('PUT /api/v1/groups/{name}/members/{member}', () => {
    test('returns 204 for a user', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/groups/team-a/members/user:developer', admin);
      assert.equal(response.status, 204);
    });

    test('adds a robot', async () => {
      await apiRequest(server, 'put', '/api/v1/groups/team-a/members/robot:builder', admin);
      assert.ok((await membersOf('team-a')).includes('robot:builder'));
    });

    test('accepts a percent-encoded member', async () => {
      await createGroup({ name: 'encoded' });
      await apiRequest(server, 'put', '/api/v1/groups/encoded/members/user%3Adeveloper', admin);
      assert.deepEqual(await membersOf('encoded'), ['user:developer']);
    });

    test('returns 204 for a member', async () => {
      await apiRequest(server, 'put', '/api/v1/groups/team-a/members/user:developer', admin);
      const response = await apiRequest(server, 'put', '/api/v1/groups/team-a/members/user:developer', admin);
      assert.equal(response.status, 204);
    });

    test('gives a new admins member the admin permission', async () => {
      const login = await createTestUser(server.db, 'promoted');
      await apiRequest(server, 'put', '/api/v1/groups/admins/members/user:promoted', admin);
      const response = await apiRequest(server, 'get', '/api/v1/users', basicAuthorization(login));
      assert.equal(response.status, 200);
    });

    test('returns 404 for an unknown user', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/groups/team-a/members/user:ghost', admin);
      assert.equal(response.status, 404);
    });

    test('returns 404 for an unknown group', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/groups/ghost/members/user:developer', admin);
      assert.equal(response.status, 404);
    });

    test('returns 400 for a member without a kind', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/groups/team-a/members/developer', admin);
      assert.deepEqual(problemFields(response), ['member']);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/groups/admins/members/user:developer', developer);
      assert.equal(response.status, 403);
    });
  });

  describe('DELETE /api/v1/groups/{name}/members/{member}', () => {
    test('returns 204 and removes the member', async () => {
      await createGroup({ name: 'leaving' });
      await apiRequest(server, 'put', '/api/v1/groups/leaving/members/user:developer', admin);
      const response = await apiRequest(server, 'delete', '/api/v1/groups/leaving/members/user:developer', admin);
      assert.equal(response.status, 204);
      assert.deepEqual(await membersOf('leaving'), []);
    });

    test('returns 404 for a non-member', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/groups/qa/members/user:developer', admin);
      assert.equal(response.status, 404);
    });

    test('returns 409 for the last administrator', async () => {
      const lone = await startTestServer();
      const response = await apiRequest(lone, 'delete', '/api/v1/groups/admins/members/user:admin', lone.adminAuthorization);
      await lone.close();
      assert.equal(response.status, 409);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/groups/team-a/members/user:developer', developer);
      assert.equal(response.status, 403);
    });
  });
});
