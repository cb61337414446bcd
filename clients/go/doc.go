// Package fieldsync is the Go client of a fieldsync server: what a field
// app, a device simulator or a load tool uses to work offline and sync.
//
// A Client owns a local SQLite store that holds the records the user may
// read (as last pulled, with their versions), the pull checkpoint, an
// outbox of the device's own changes, a queue of photo bytes waiting for
// upload, and the conflicts and rejections the server answered. All of it
// survives restarts: close the client, open it again, and pending changes
// are still pending, with the same mutation ids.
//
//	c, err := fieldsync.Open(ctx, fieldsync.Config{
//		BaseURL:   "https://sync.example.com",
//		Username:  "rep-17",
//		Password:  password,
//		DeviceID:  "phone-7",
//		StorePath: filepath.Join(dataDir, "fieldsync.db"),
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//
//	// Offline: edits go to the outbox, and Get and List show them at once.
//	err = c.Put(ctx, schema.Visits, "v-1", schema.Visit{CustomerID: "c-17",
//		CheckIn: schema.GeoPoint{At: time.Now(), Lat: &lat, Lng: &lng}})
//	err = c.AddPhoto(ctx, "ph-1", "v-1", jpegBytes, fieldsync.PhotoInfo{TakenAt: time.Now()})
//
//	// Online: upload photos, push the outbox, pull what changed.
//	report, err := c.Sync(ctx)
//
// # Changes and the outbox
//
// Put and Delete queue a mutation whose base_version is the version the
// device last saw (0 for a record it creates). Several changes to a record
// made while none of them has been sent are folded into one mutation,
// which carries the last state. A mutation once sent is frozen: a retry
// sends it again unchanged, with the same mutation id, so the server never
// applies it twice. Changes made while it is in flight queue behind it and,
// when it is applied, are rebased onto the version it produced, so the
// server never sees a stale base caused only by the device's own edits.
//
// # Sync
//
// Sync uploads photo bytes (skipping those the server has), pushes the
// outbox in batches, and pulls until the server has nothing more. Answers
// are stored as they come: applied and merged writes update the local
// record; conflicts store the server's record and are handed to the
// Config's Resolver (ServerWins by default; LocalWins pushes the local
// change again on top of the server's version) and kept for the app
// (Conflicts); rejections are dropped from the outbox and kept for the app
// (Rejections), never retried.
//
// Network errors, timeouts, 408, 429 and 5xx answers are retried with
// exponential backoff (RetryPolicy); other 4xx answers are not; a 401 makes
// the client refresh its token (the server rotates refresh tokens) or, if
// that is refused, sign in again with the password, and try once more.
// Tokens and passwords are never logged.
package fieldsync
