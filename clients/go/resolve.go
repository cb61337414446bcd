package fieldsync

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Conflict is a change the server did not write because the record changed
// there since the device saw it (or the device created an id that exists).
type Conflict struct {
	MutationID string
	Collection schema.Collection
	ID         string
	Op         schema.MutationOp
	// Local is the data the device pushed; nil for a delete.
	Local json.RawMessage
	// Server is the server's current envelope.
	Server schema.Envelope
	// Requeued is set when the resolver queued the local change again.
	Requeued bool
	// At is when the device received the answer.
	At time.Time
}

// Resolution is what a Resolver decided. The zero Resolution keeps the
// server's record.
type Resolution struct {
	// Data, when not nil, is queued as a new upsert on top of the server's
	// version; anything that marshals to a JSON object.
	Data any
	// Delete queues a delete of the server's version instead.
	Delete bool
}

// Resolver settles a conflict during Sync. The server's record is stored
// locally whatever it decides; a Resolution with Data or Delete queues a new
// mutation on top of it, pushed in the same Sync. A resolver that fails
// leaves the change in the outbox, to be answered and resolved again at the
// next Sync. It must not call the Client's methods.
type Resolver func(ctx context.Context, c Conflict) (Resolution, error)

// ServerWins is the default Resolver: the server's record is kept and the
// local change dropped (it stays readable in Conflicts).
func ServerWins(context.Context, Conflict) (Resolution, error) { return Resolution{}, nil }

// LocalWins is a Resolver that pushes the local change again on top of the
// server's version, so that the device's last write wins.
func LocalWins(_ context.Context, c Conflict) (Resolution, error) {
	if c.Op == schema.MutationDelete {
		return Resolution{Delete: true}, nil
	}
	return Resolution{Data: c.Local}, nil
}

// Rejection is a change the server refused for good (forbidden, invalid, a
// transition not allowed…); it is dropped from the outbox and kept here.
type Rejection struct {
	MutationID string
	Collection schema.Collection
	ID         string
	Op         string
	// Data is the data the device pushed; nil for a delete.
	Data json.RawMessage
	// Error says why, with the contract's stable code.
	Error *schema.Error
	At    time.Time
}

// Conflicts returns the conflicts kept since they were last cleared,
// oldest first.
func (c *Client) Conflicts(ctx context.Context) ([]Conflict, error) {
	list, err := collect(ctx, c.db.r, func(rs *sql.Rows, k *Conflict) error {
		var local, server []byte
		var at string
		if err := rs.Scan(&k.MutationID, &k.Collection, &k.ID, &k.Op, &local, &server, &k.Requeued, &at); err != nil {
			return err
		}
		k.Local, k.At = local, parseStamp(at)
		return json.Unmarshal(server, &k.Server)
	}, `SELECT mutation_id, collection, id, op, local, server, requeued, at FROM conflicts ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("fieldsync.Conflicts: %w", err)
	}
	return list, nil
}

// Rejections returns the rejections kept since they were last cleared,
// oldest first.
func (c *Client) Rejections(ctx context.Context) ([]Rejection, error) {
	list, err := collect(ctx, c.db.r, func(rs *sql.Rows, r *Rejection) error {
		var data, e []byte
		var at string
		if err := rs.Scan(&r.MutationID, &r.Collection, &r.ID, &r.Op, &data, &e, &at); err != nil {
			return err
		}
		r.Data, r.At = data, parseStamp(at)
		return json.Unmarshal(e, &r.Error)
	}, `SELECT mutation_id, collection, id, op, data, error, at FROM rejections ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("fieldsync.Rejections: %w", err)
	}
	return list, nil
}

// ClearConflicts forgets the kept conflicts, once the app has shown them.
func (c *Client) ClearConflicts(ctx context.Context) error {
	return c.clear(ctx, "fieldsync.ClearConflicts", `DELETE FROM conflicts`)
}

// ClearRejections forgets the kept rejections, once the app has shown them.
func (c *Client) ClearRejections(ctx context.Context) error {
	return c.clear(ctx, "fieldsync.ClearRejections", `DELETE FROM rejections`)
}

func (c *Client) clear(ctx context.Context, op, query string) error {
	return c.db.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, query); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
}

func keepConflict(ctx context.Context, tx *wtx, now string, k *Conflict) error {
	server, err := json.Marshal(k.Server)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO conflicts (mutation_id, collection, id, op, local, server, requeued, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, k.MutationID, k.Collection, k.ID, k.Op, nullable(k.Local), server, k.Requeued, now)
	return err
}

func keepRejection(ctx context.Context, tx *wtx, now string, m *mutation, e *schema.Error) error {
	if e == nil {
		e = &schema.Error{Code: schema.CodeInternal, Message: "rejected without a reason"}
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO rejections (mutation_id, collection, id, op, data, error, at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, m.MutationID, m.Collection, m.ID, m.Op, nullable(m.Data), raw, now)
	return err
}
