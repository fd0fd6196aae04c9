import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { JobQueue } from '../../src/jobs/queue.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const logger = pino({ level: 'silent' });

describe('job queues of replicas starting together', () => {
  let database: TestDatabase;
  const queues: JobQueue[] = [];

  before(async () => {
    database = await createTestDatabase();
  });

  after(async () => {
    await Promise.all(queues.map((queue) => queue.stop()));
    await database.drop();
  });

  test('all start on a new database', async () => {
    for (let index = 0; index < 4; index += 1) {
      const queue = new JobQueue({ connectionString: database.url, logger, workers: false });
      for (const name of ['first-kind', 'second-kind', 'third-kind']) {
        queue.define({ name, retryLimit: 1, retryDelaySeconds: 1, expireInSeconds: 120, concurrency: 1, handler: async () => undefined });
      }
      queues.push(queue);
    }
    const results = await Promise.allSettled(queues.map((queue) => queue.start()));
    assert.deepEqual(
      results.map((result) => result.status),
      ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
    );
  });
});
