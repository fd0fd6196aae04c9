/**
 * Operation names for request logs and audit events, declared once so that
 * both use the same words.
 */
export const OPERATIONS = {
  base: 'registry.base',
  catalog: 'registry.catalog.list',
  tagsList: 'registry.tags.list',
  manifestGet: 'registry.manifest.get',
  manifestHead: 'registry.manifest.head',
  manifestPut: 'registry.manifest.put',
  manifestDelete: 'registry.manifest.delete',
  blobGet: 'registry.blob.get',
  blobHead: 'registry.blob.head',
  blobDelete: 'registry.blob.delete',
  uploadStart: 'registry.upload.start',
  uploadStatus: 'registry.upload.status',
  uploadPatch: 'registry.upload.patch',
  uploadFinish: 'registry.upload.finish',
  uploadCancel: 'registry.upload.cancel',
  referrersList: 'registry.referrers.list',
  health: 'health',
} as const;

export type OperationName = (typeof OPERATIONS)[keyof typeof OPERATIONS];
