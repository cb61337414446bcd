// Package media owns photo bytes: the content-addressed key scheme, the
// BlobStore interface that keeps the bytes, and the rules every BlobStore
// shares (valid keys and content types, exact sizes, nothing visible after a
// failed Put).
//
// Adapters live beneath it and are named after their technology:
// media/filestore (a local folder) and media/miniostore (MinIO or any
// S3-compatible server). media/blobtest is the one conformance suite both
// pass; media/miniotest runs a real MinIO server for tests.
package media
