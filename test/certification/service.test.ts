import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import type { Principal } from '../../src/auth/identity-store.js';
import { CertificationConflictError, CertificationNotFoundError, CertificationPermissionError, InvalidCertificationInputError } from '../../src/certification/errors.js';
import { CERTIFICATION_CHANNEL } from '../../src/certification/notifications.js';
import { CertificationService } from '../../src/certification/service.js';
import type { RequestContext } from '../../src/context.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { CollectingEventSink } from '../helpers/events.js';
import { recordCleanScan } from '../helpers/scan-state.js';

const context: RequestContext = {
  requestId: 'service-test',
  identity: { kind: 'anonymous' },
  principal: null,
  clientAddress: '127.0.0.1',
  userAgent: 'service-test',
  logger: pino({ level: 'silent' }),
};

function principal(name: string, groups: string[]): Principal {
  return { kind: 'user', id: 1, name, subject: name, groups, grants: [], credentialsChangedAt: new Date(0) };
}

const itReviewer = principal('ivy', ['it']);
const securityReviewer = principal('sam', ['security']);
const qaReviewer = principal('quinn', ['qa']);
const allRoles = principal('alex', ['it', 'security', 'qa']);
const administrator = principal('root', ['admins']);
const developer = principal('dev', []);

const ROLES = ['it', 'security', 'qa'] as const;
const reviewerOf = { it: itReviewer, security: securityReviewer, qa: qaReviewer };

describe('CertificationService', () => {
  let database: TestDatabase;
  let service: CertificationService;
  let policies: PolicyService;
  const events = new CollectingEventSink();

  before(async () => {
    database = await createTestDatabase();
    service = new CertificationService({ db: database.db, events });
    policies = new PolicyService({ db: database.db, events });
  });
  after(() => database.drop());

  /** Stores a manifest row without references and returns its digest; tags it when `tag` is given. */
  async function addManifest(repository: string, options: { tag?: string; subject?: string } = {}): Promise<{ id: number; digest: string }> {
    const { db } = database;
    await db('repositories').insert({ name: repository }).onConflict('name').ignore();
    const repositoryRow = await db('repositories').where({ name: repository }).first('id');
    const content = Buffer.from(JSON.stringify({ schemaVersion: 2, id: randomUUID() }));
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    const [row] = await db('manifests')
      .insert({ repository_id: repositoryRow.id, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', content, size: content.length, reference_count: 0, subject_digest: options.subject ?? null })
      .returning('id');
    if (options.tag) await db('tags').insert({ repository_id: repositoryRow.id, name: options.tag, manifest_id: row.id });
    await recordCleanScan(db, digest);
    return { id: Number(row.id), digest };
  }

  function uniqueName(prefix: string): string {
    return `${prefix}/${randomUUID().slice(0, 8)}`;
  }

  async function approveAll(repository: string, digest: string, roles: readonly ('it' | 'security' | 'qa')[] = ROLES): Promise<string> {
    let state = '';
    for (const role of roles) state = (await service.decide({ repository, digest, role, decision: 'approve' }, reviewerOf[role], context)).status.state;
    return state;
  }

  async function queueDigests(role: string, repository: string): Promise<string[]> {
    const digests: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await service.queue(role, { limit: 3, cursor });
      digests.push(...page.items.filter((item) => item.repository === repository).map((item) => item.digest));
      cursor = page.nextCursor;
    } while (cursor !== null);
    return digests;
  }

  describe('decide', () => {
    test('stores the role, actor, comment and evidence', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      const { decision } = await service.decide({ repository, digest, role: 'qa', decision: 'reject', comment: 'fails smoke test', evidence: { run: 42 } }, qaReviewer, context);
      const stored = await database.db('certification_decisions').where({ id: decision.id }).first('role', 'decision', 'actor', 'comment', 'evidence');
      assert.deepEqual(stored, { role: 'qa', decision: 'reject', actor: 'quinn', comment: 'fails smoke test', evidence: { run: 42 } });
    });

    test('reports certified after the last required approval', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      assert.equal(await approveAll(repository, digest), 'certified');
    });

    test('serialises concurrent decisions so exactly one sees certified', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      const results = await Promise.all(ROLES.map((role) => service.decide({ repository, digest, role, decision: 'approve' }, allRoles, context)));
      const states = results.map((result) => result.status.state).sort();
      assert.deepEqual(states, ['certified', 'pending', 'pending']);
    });

    test('counts approvals made right after a revocation', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest);
      await service.revoke({ repository, digest, reason: 'retest' }, securityReviewer, context);
      assert.equal(await approveAll(repository, digest), 'certified');
    });

    test('stores a decision later than the latest revocation', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      const repositoryRow = await database.db('repositories').where({ name: repository }).first('id');
      // A revocation timed slightly ahead simulates one made in the same millisecond as the decision.
      await database.db('certification_revocations').insert({ repository_id: repositoryRow.id, digest, reason: 'ahead', actor: 'test', created_at: database.db.raw(`clock_timestamp() + interval '50 milliseconds'`) });
      const { status } = await service.decide({ repository, digest, role: 'it', decision: 'approve' }, itReviewer, context);
      assert.deepEqual(status.missingRoles, ['security', 'qa']);
    });

    test('rejects a principal without certify:<role>', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await assert.rejects(service.decide({ repository, digest, role: 'it', decision: 'approve' }, securityReviewer, context), CertificationPermissionError);
    });

    test('checks permission before existence, so outsiders learn nothing', async () => {
      await assert.rejects(service.decide({ repository: 'team/nothing', digest: `sha256:${'0'.repeat(64)}`, role: 'it', decision: 'approve' }, developer, context), CertificationPermissionError);
    });

    test('rejects a tag in place of a digest', async () => {
      const repository = uniqueName('team');
      await addManifest(repository, { tag: 'v1' });
      await assert.rejects(service.decide({ repository, digest: 'v1', role: 'it', decision: 'approve' }, itReviewer, context), InvalidCertificationInputError);
    });

    test('rejects a digest of unsupported form', async () => {
      const repository = uniqueName('team');
      await addManifest(repository);
      await assert.rejects(service.decide({ repository, digest: 'md5:abc', role: 'it', decision: 'approve' }, itReviewer, context), InvalidCertificationInputError);
    });

    test('rejects a role that the policy does not require', async () => {
      await policies.create({ name: 'qa-free', pattern: 'qa-free/**', requiredRoles: ['it', 'security'] }, administrator, context);
      const repository = uniqueName('qa-free');
      const { digest } = await addManifest(repository);
      await assert.rejects(service.decide({ repository, digest, role: 'qa', decision: 'approve' }, qaReviewer, context), /requires the roles it, security/);
    });

    test('reports an unknown manifest as not found', async () => {
      const repository = uniqueName('team');
      await addManifest(repository);
      await assert.rejects(service.decide({ repository, digest: `sha256:${'3'.repeat(64)}`, role: 'it', decision: 'approve' }, itReviewer, context), CertificationNotFoundError);
    });

    test('records the event in the same transaction', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await service.decide({ repository, digest, role: 'it', decision: 'approve' }, itReviewer, context);
      const recorded = events.ofAction('certification.decision').filter((event) => event.digest === digest);
      assert.deepEqual(recorded, [{ action: 'certification.decision', repository, digest, role: 'it', decision: 'approve', actor: 'ivy', state: 'pending', comment: '' }]);
    });

    test('announces the decision on the certification channel', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      const listener = new pg.Client({ connectionString: database.url });
      await listener.connect();
      try {
        await listener.query(`listen ${CERTIFICATION_CHANNEL}`);
        const received = new Promise<string | undefined>((resolve) => listener.once('notification', (message) => resolve(message.payload)));
        await service.decide({ repository, digest, role: 'it', decision: 'approve' }, itReviewer, context);
        assert.deepEqual(JSON.parse((await received) ?? 'null'), { kind: 'decision', repository, digest });
      } finally {
        await listener.end();
      }
    });
  });

  describe('revoke', () => {
    test('makes a certified digest revoked', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest);
      const { status } = await service.revoke({ repository, digest, reason: 'CVE' }, qaReviewer, context);
      assert.equal(status.state, 'revoked');
    });

    test('lets a reviewer of any role revoke', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest, ['security']);
      const { revocation } = await service.revoke({ repository, digest, reason: 'wrong image' }, itReviewer, context);
      assert.equal(revocation.actor, 'ivy');
    });

    test('stores a revocation no earlier than the latest decision', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      const repositoryRow = await database.db('repositories').where({ name: repository }).first('id');
      // A decision timed slightly ahead simulates one that decide placed after a revocation in the same millisecond.
      await database.db('certification_decisions').insert({ repository_id: repositoryRow.id, digest, role: 'it', decision: 'approve', actor: 'test', created_at: database.db.raw(`clock_timestamp() + interval '50 milliseconds'`) });
      const { status } = await service.revoke({ repository, digest, reason: 'withdrawn' }, itReviewer, context);
      assert.deepEqual(status.missingRoles, ['it', 'security', 'qa']);
    });

    test('rejects a principal without certify or admin', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest);
      await assert.rejects(service.revoke({ repository, digest, reason: 'no' }, developer, context), CertificationPermissionError);
    });

    test('conflicts when nothing was decided since the last revocation', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest, ['it']);
      await service.revoke({ repository, digest, reason: 'first' }, administrator, context);
      await assert.rejects(service.revoke({ repository, digest, reason: 'second' }, administrator, context), CertificationConflictError);
    });
  });

  describe('status', () => {
    test('resolves a tag to its digest', async () => {
      const repository = uniqueName('team');
      const { digest } = await addManifest(repository, { tag: 'v1' });
      const status = await service.status(repository, 'v1');
      assert.equal(status.digest, digest);
    });

    test('reports expired after the policy validity', async () => {
      await policies.create({ name: 'short-lived', pattern: 'short/**', requiredRoles: ['it'], validitySeconds: 1 }, administrator, context);
      const repository = uniqueName('short');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest, ['it']);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const status = await service.status(repository, digest);
      assert.equal(status.state, 'expired');
    });

    test('reports an unknown repository as not found', async () => {
      await assert.rejects(service.status('team/unknown', 'latest'), CertificationNotFoundError);
    });
  });

  describe('queue', () => {
    test('lists pending images oldest first', async () => {
      const repository = uniqueName('queue');
      const digests = [];
      for (let index = 0; index < 5; index += 1) digests.push((await addManifest(repository, { tag: `v${index}` })).digest);
      assert.deepEqual(await queueDigests('it', repository), digests);
    });

    test('leaves out attachments with a subject', async () => {
      const repository = uniqueName('queue');
      const image = await addManifest(repository, { tag: 'v1' });
      await addManifest(repository, { subject: image.digest });
      assert.deepEqual(await queueDigests('it', repository), [image.digest]);
    });

    test('leaves out manifests tagged only with cosign signature tags', async () => {
      const repository = uniqueName('queue');
      const image = await addManifest(repository, { tag: 'v1' });
      await addManifest(repository, { tag: `${image.digest.replace(':', '-')}.sig` });
      assert.deepEqual(await queueDigests('it', repository), [image.digest]);
    });

    test('leaves out untagged children of an index', async () => {
      const repository = uniqueName('queue');
      const child = await addManifest(repository);
      const index = await addManifest(repository, { tag: 'multi' });
      await database.db('manifest_children').insert({ parent_id: index.id, child_id: child.id });
      assert.deepEqual(await queueDigests('it', repository), [index.digest]);
    });

    test('leaves out repositories whose policy does not require the role', async () => {
      await policies.create({ name: 'it-only', pattern: 'it-only/**', requiredRoles: ['it'] }, administrator, context);
      const repository = uniqueName('it-only');
      await addManifest(repository, { tag: 'v1' });
      assert.deepEqual(await queueDigests('qa', repository), []);
    });

    test('leaves out certified images', async () => {
      const repository = uniqueName('queue');
      const { digest } = await addManifest(repository);
      await approveAll(repository, digest, ['security', 'qa']);
      await service.decide({ repository, digest, role: 'it', decision: 'approve' }, itReviewer, context);
      assert.deepEqual(await queueDigests('security', repository), []);
    });
  });

  describe('history', () => {
    test('outlives the manifest', async () => {
      const repository = uniqueName('team');
      const { id, digest } = await addManifest(repository);
      await approveAll(repository, digest, ['it']);
      await database.db('manifests').where({ id }).delete();
      const history = await service.history(repository, digest);
      assert.deepEqual(
        history.entries.map((entry) => entry.kind),
        ['decision'],
      );
    });
  });
});

describe('PolicyService', () => {
  let database: TestDatabase;
  let policies: PolicyService;

  before(async () => {
    database = await createTestDatabase();
    policies = new PolicyService({ db: database.db, events: new CollectingEventSink() });
  });
  after(() => database.drop());

  test('keeps the default policy when asked to delete it', async () => {
    await assert.rejects(policies.delete('default', administrator, context), CertificationConflictError);
    assert.equal((await policies.get('default')).pattern, '**');
  });

  test('rejects a new pattern for the default policy', async () => {
    await assert.rejects(policies.update('default', { pattern: 'team/**' }, administrator, context), InvalidCertificationInputError);
  });

  test('reports a taken pattern as a conflict', async () => {
    await policies.create({ name: 'one', pattern: 'same/**', requiredRoles: ['it'] }, administrator, context);
    await assert.rejects(policies.create({ name: 'two', pattern: 'same/**', requiredRoles: ['it'] }, administrator, context), CertificationConflictError);
  });

  test('reports an update to a taken pattern as a conflict', async () => {
    await policies.create({ name: 'three', pattern: 'three/**', requiredRoles: ['it'] }, administrator, context);
    await policies.create({ name: 'four', pattern: 'four/**', requiredRoles: ['it'] }, administrator, context);
    await assert.rejects(policies.update('four', { pattern: 'three/**' }, administrator, context), CertificationConflictError);
  });

  test('accepts existing groups as uncertified groups', async () => {
    const created = await policies.create({ name: 'testers', pattern: 'testers/**', requiredRoles: ['qa'], uncertifiedGroups: ['qa', 'it'] }, administrator, context);
    assert.deepEqual(created.uncertifiedGroups, ['qa', 'it']);
  });
});
