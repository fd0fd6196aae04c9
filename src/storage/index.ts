export {
  StorageNotFoundError,
  type BlobStore,
  type ByteRange,
  type ObjectInfo,
  type UploadState,
} from './blob-store.js';
export { createFilesystemStore, type FilesystemStoreOptions, type FilesystemUploadState } from './filesystem-store.js';
export {
  createS3Store,
  type S3BlobStore,
  type S3StoreOptions,
  type S3UploadPart,
  type S3UploadState,
} from './s3-store.js';
