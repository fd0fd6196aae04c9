/**
 * Secret scanning of container images: pure functions over an image config and layer streams,
 * with no storage, database or logging. Findings never contain a secret, only a redacted preview
 * and fingerprints built from its sha256.
 */
export type { Finding, LayerScanResult, PreviewOptions, ScanLimits, Severity } from './types.js';
export { DEFAULT_SCAN_LIMITS, ScanInputError } from './types.js';
export { SEVERITIES, type DetectorId } from './detectors.js';
export { scanImageConfig } from './config.js';
export { scanLayer } from './layer.js';
