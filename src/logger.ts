import pino from 'pino';

/** Header and field paths removed from every log line, so no credential reaches a log. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'password',
  'secret',
  'token',
  '*.password',
  '*.secret',
  '*.token',
  '*.secretAccessKey',
];

/** Creates the process logger: pino, one JSON object per line, secrets redacted. */
export function createLogger(level: string, destination?: pino.DestinationStream): pino.Logger {
  return pino({ level, base: { service: 'portcullis' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination);
}
