import { isIPv6 } from 'node:net';
import type { InputProblem } from '../auth/account-errors.js';
import { isGrantableName } from '../auth/scopes.js';
import { isValidName, isValidTag, parseDigest } from '../registry/reference.js';
import { ImportInputError } from './errors.js';

/** A host name or IPv4 address, or an IPv6 address in brackets, with an optional port. */
const HOST_PATTERN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[([0-9a-f:.]+)\])(?::([0-9]{1,5}))?$/;

/** Maximum length of an upstream host, in characters: a 253-character DNS name and a port. */
const MAX_HOST_LENGTH = 259;

/** Tag that a source without tag or digest refers to, as Docker clients assume. */
export const DEFAULT_TAG = 'latest';

/** An image in an upstream registry, as an import names it. */
export interface ImportSource {
  /** The scheme written before the host, or null when none was written. */
  scheme: 'https' | 'http' | null;
  host: string;
  repository: string;
  tag: string | null;
  digest: string | null;
}

/** Destination of an import: a repository and an optional tag. */
export interface ImportTarget {
  repository: string;
  tag: string | null;
}

/**
 * Returns the upstream host in lowercase, or the reason it is invalid. A host
 * is a DNS name, an IPv4 address or a bracketed IPv6 address, with an
 * optional port from 1 to 65535, and nothing else: no scheme, path or user.
 */
export function normalizeHost(text: string): { host: string } | { problem: string } {
  const host = text.trim().toLowerCase();
  const invalid = { problem: 'expected a host or host:port such as registry.example.com or registry.example.com:5000, without scheme or path' };
  if (host.length === 0 || host.length > MAX_HOST_LENGTH) return invalid;

  const match = HOST_PATTERN.exec(host);
  if (!match) return invalid;
  const [, ipv6, port] = match;
  if (ipv6 !== undefined && !isIPv6(ipv6)) return { problem: `${ipv6} is not a valid IPv6 address` };
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return { problem: 'the port must be from 1 to 65535' };
  return { host };
}

/**
 * Parses an import source: `[https://|http://]<host>/<repository>[:<tag>][@<digest>]`.
 * Without tag or digest the tag is `latest`. With both, the digest selects
 * the content and the tag only names it. Throws ImportInputError naming the
 * field `source`.
 */
export function parseImportSource(text: string): ImportSource {
  const fail = (message: string): never => {
    throw new ImportInputError([{ field: 'source', message }]);
  };

  let rest = text.trim();
  let scheme: ImportSource['scheme'] = null;
  const schemeMatch = /^(https?):\/\//i.exec(rest);
  if (schemeMatch) {
    scheme = (schemeMatch[1] as string).toLowerCase() as 'https' | 'http';
    rest = rest.slice(schemeMatch[0].length);
  }

  const slash = rest.indexOf('/');
  if (slash <= 0) fail('expected <upstream host>/<repository>:<tag> or <upstream host>/<repository>@<digest>, such as registry.example.com/team/app:1.0');
  const hostResult = normalizeHost(rest.slice(0, slash));
  if ('problem' in hostResult) return fail(`invalid upstream host: ${hostResult.problem}`);
  let name = rest.slice(slash + 1);

  let digest: string | null = null;
  const at = name.lastIndexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    try {
      parseDigest(digest);
    } catch {
      fail('invalid digest: expected sha256:<64 hex digits> or sha512:<128 hex digits>');
    }
  }

  let tag: string | null = null;
  const colon = name.lastIndexOf(':');
  if (colon >= 0) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!isValidTag(tag)) fail('invalid tag: use up to 128 characters from [a-zA-Z0-9_.-], not starting with "." or "-"');
  }
  if (!isValidName(name)) fail(`invalid repository name ${JSON.stringify(name.slice(0, 300))}: use lowercase path components separated by "/"`);

  return { scheme, host: hostResult.host, repository: name, tag: tag ?? (digest === null ? DEFAULT_TAG : null), digest };
}

/**
 * Parses an import target: `<repository>[:<tag>]`. The repository must be a
 * name that grants can match, so it cannot start with a registry host.
 * Throws ImportInputError naming the field `target`.
 */
export function parseImportTarget(text: string): ImportTarget {
  const problems: InputProblem[] = [];
  let repository = text.trim();
  let tag: string | null = null;
  const colon = repository.lastIndexOf(':');
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!isValidTag(tag)) problems.push({ field: 'target', message: 'invalid tag: use up to 128 characters from [a-zA-Z0-9_.-], not starting with "." or "-"' });
  }
  if (repository.includes('@')) {
    problems.push({ field: 'target', message: 'a target names a repository and an optional tag, not a digest: the digest comes from the source' });
  } else if (!isGrantableName(repository)) {
    problems.push({
      field: 'target',
      message: `invalid repository name ${JSON.stringify(repository.slice(0, 300))}: use lowercase path components separated by "/", and no registry host as the first component`,
    });
  }
  if (problems.length > 0) throw new ImportInputError(problems);
  return { repository, tag };
}

/** Formats a source without its scheme, as imports store and show it. */
export function formatSource(source: Pick<ImportSource, 'host' | 'repository' | 'tag' | 'digest'>): string {
  return `${source.host}/${source.repository}${source.tag !== null ? `:${source.tag}` : ''}${source.digest !== null ? `@${source.digest}` : ''}`;
}
