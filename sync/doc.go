// Package sync is the fieldsync sync engine: push (validate, authorize,
// compare versions, merge, apply, remember the answer to each mutation id),
// pull (scope, checkpoint, page), the change feed and the watcher that
// wakes live streams from it, plus the storage interface the engine and the
// auth service need. Adapters live beneath it, named after their
// technology: sqlitestore (the embedded default) and mongostore; storetest
// is the conformance suite both must pass.
package sync
