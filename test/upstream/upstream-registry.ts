/**
 * A second Portcullis test server that plays the upstream registry in import
 * tests, with fixture images pushed into it by skopeo, and a small fake
 * upstream for the cases a real registry never produces.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildMultiArchIndex, buildSingleLayerImage, type ImageFixture } from '../helpers/images.js';
import { createTestRobot, startTestServer, type TestServer } from '../helpers/server.js';
import { copy } from '../helpers/skopeo.js';

/** An image pushed into the upstream registry. */
export interface PushedImage {
  fixture: ImageFixture;
  repository: string;
  tag: string;
}

export interface UpstreamRegistry {
  server: TestServer;
  /** A robot that may pull uncertified content under `upstream/`. */
  robot: { username: string; password: string };
  single: PushedImage;
  index: PushedImage;
  close(): Promise<void>;
}

/** Starts the upstream registry and pushes the single-layer image and the two-platform index into it. */
export async function startUpstreamRegistry(): Promise<UpstreamRegistry> {
  const server = await startTestServer();
  const adminCreds = `${server.admin.username}:${server.admin.password}`;
  const single: PushedImage = { fixture: await buildSingleLayerImage(), repository: 'upstream/single-layer', tag: 'v1' };
  const index: PushedImage = { fixture: await buildMultiArchIndex(), repository: 'upstream/multi-arch', tag: 'v1' };
  await copy(single.fixture.imageName, `docker://${server.host}/${single.repository}:${single.tag}`, { creds: adminCreds, preserveDigests: true });
  await copy(index.fixture.imageName, `docker://${server.host}/${index.repository}:${index.tag}`, { creds: adminCreds, preserveDigests: true, all: true });
  // Nothing in the upstream is certified, so pulling needs pull-uncertified.
  const robot = await createTestRobot(server.db, 'importer', [{ pattern: 'upstream/**', permissions: ['pull-uncertified'] }]);
  return { server, robot, single, index, close: () => server.close() };
}

/** A plain HTTP server on 127.0.0.1 whose responses a test scripts, and which records every request. */
export interface FakeUpstream {
  host: string;
  url: string;
  requests: Array<{ method: string; url: string; authorization: string | undefined }>;
  close(): Promise<void>;
}

/** Starts a fake upstream that handles every request with `handler`. */
export async function startFakeUpstream(handler: (request: IncomingMessage, response: ServerResponse, origin: string) => void): Promise<FakeUpstream> {
  const requests: FakeUpstream['requests'] = [];
  let origin = '';
  const server: Server = createServer((request, response) => {
    requests.push({ method: request.method ?? '', url: request.url ?? '', authorization: request.headers.authorization });
    handler(request, response, origin);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  origin = `http://${host}`;
  return {
    host,
    url: origin,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
