package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// checkpointer copies the write-ahead log back into the database file
// (a checkpoint) from a read connection, after the writer's transactions
// rather than inside them. SQLite's own automatic checkpoint runs in the
// connection that commits, as part of the commit, so with one writer
// connection every other writer of the process waited for it: about a
// tenth of a heavy push's time in the lock, plus the sync of the file. A
// passive checkpoint runs beside writers: it copies what no reader still
// needs and never blocks the writer.
type checkpointer struct {
	db       *sql.DB
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

const (
	// checkpointGap is the least time between two checkpoints: a stream of
	// small transactions is checkpointed once a second, not once each (a
	// checkpoint syncs the file), and the log holds at most about a
	// second of writes.
	checkpointGap = time.Second
	// checkpointEvery is how often the log is checkpointed without being
	// woken, for the writes that do not go through Update (users,
	// sign-ins, sweeps).
	checkpointEvery = 5 * time.Second
)

// startCheckpointer starts checkpointing through db (the store's readers).
func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// poke asks for a checkpoint soon; it never waits. A store without a
// checkpointer (one being migrated in a test) has SQLite's.
func (c *checkpointer) poke() {
	if c == nil {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-tick.C:
		}
		// A failed checkpoint is tried again at the next: the log only
		// grows meanwhile, and SQLite checkpoints it when the store closes.
		c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointGap):
		}
	}
}

// close stops the checkpoints and waits for the one running, if any.
// Closing again does nothing.
func (c *checkpointer) close() {
	if c == nil {
		return
	}
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}
