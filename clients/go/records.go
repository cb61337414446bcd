package fieldsync

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/fieldsync/fieldsync/schema"
)

// Record is a record as the device sees it: the server's envelope, with
// the device's own pending change laid over it.
//
// Its Version is the server's version the device last saw, 0 for a record
// created here and not pushed yet; Data is nil when the record is deleted
// (Get and List never return a deleted one).
type Record struct {
	schema.Envelope
	// Pending is set when Data is a local change not yet answered by the
	// server.
	Pending bool `json:"-"`
}

// Decode unmarshals the record's data into v, such as a *schema.Visit.
func (r *Record) Decode(v any) error {
	if isNull(r.Data) {
		return fmt.Errorf("fieldsync: %s %s has no data", r.Collection, r.ID)
	}
	return json.Unmarshal(r.Data, v)
}

// Put records a local upsert of a whole record: it queues the change in the
// outbox, on top of the version the device last saw (0 for a new record),
// and the device's Get and List show it at once. data is anything that
// marshals to a JSON object, such as a schema.Visit or a json.RawMessage.
//
// Changes to a record made before the last one was sent are folded into
// one mutation; see Sync.
func (c *Client) Put(ctx context.Context, coll schema.Collection, id string, data any) error {
	raw, err := recordData(coll, id, data)
	if err != nil {
		return fmt.Errorf("fieldsync.Put: %w", err)
	}
	return c.change(ctx, "fieldsync.Put", coll, id, schema.MutationUpsert, raw, "")
}

// Delete records a local delete of a record. It returns ErrNotFound when the
// device does not have the record. A record created here and never sent
// is simply forgotten.
func (c *Client) Delete(ctx context.Context, coll schema.Collection, id string) error {
	if err := checkAddress(coll, id); err != nil {
		return fmt.Errorf("fieldsync.Delete: %w", err)
	}
	return c.change(ctx, "fieldsync.Delete", coll, id, schema.MutationDelete, nil, "")
}

// change queues a change in one transaction and removes the photo files it
// released.
func (c *Client) change(ctx context.Context, op string, coll schema.Collection, id string, mop schema.MutationOp, data json.RawMessage, hold string) error {
	var released []string
	err := c.db.write(ctx, func(tx *wtx) error {
		var err error
		released, err = queue(ctx, tx, c.db.stamp(), coll, id, mop, data, hold)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.removePhotoFiles(ctx, released)
	return nil
}

// Get returns a record as the device sees it. It returns ErrNotFound when
// the device does not have it or has it as deleted.
func (c *Client) Get(ctx context.Context, coll schema.Collection, id string) (*Record, error) {
	list, err := c.records(ctx, coll, id)
	if err != nil {
		return nil, fmt.Errorf("fieldsync.Get: %w", err)
	}
	if len(list) == 0 {
		return nil, ErrNotFound
	}
	return &list[0], nil
}

// List returns the records of a collection as the device sees them,
// ordered by id, without deleted ones.
func (c *Client) List(ctx context.Context, coll schema.Collection) ([]Record, error) {
	list, err := c.records(ctx, coll, "")
	if err != nil {
		return nil, fmt.Errorf("fieldsync.List: %w", err)
	}
	return list, nil
}

// records returns the records of a collection, or the one with id when id
// is not empty: the server's state with the last pending change of each
// laid over it, ordered by id, without deleted ones.
func (c *Client) records(ctx context.Context, coll schema.Collection, id string) ([]Record, error) {
	where, args := `collection = ?`, []any{coll}
	if id != "" {
		where, args = where+` AND id = ?`, append(args, id)
	}
	server, err := collect(ctx, c.db.r, func(rs *sql.Rows, r *Record) error {
		var updatedAt string
		var data []byte
		err := rs.Scan(&r.Collection, &r.ID, &r.Version, &r.Deleted, &updatedAt, &r.UpdatedBy, &data)
		r.UpdatedAt, r.Data = parseStamp(updatedAt), data
		return err
	}, `SELECT collection, id, version, deleted, updated_at, updated_by, data FROM records WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	pending, err := collect(ctx, c.db.r, scanMutation, `SELECT `+mutationColumns+` FROM outbox o WHERE `+where+`
		AND seq = (SELECT MAX(seq) FROM outbox e WHERE e.collection = o.collection AND e.id = o.id)`, args...)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*Record, len(server)+len(pending))
	for i := range server {
		byID[server[i].ID] = &server[i]
	}
	for _, m := range pending {
		r := byID[m.ID]
		if r == nil {
			r = &Record{Envelope: schema.Envelope{Collection: coll, ID: m.ID}}
			byID[m.ID] = r
		}
		r.Pending, r.Deleted, r.Data = true, m.Op == schema.MutationDelete, m.Data
	}
	list := make([]Record, 0, len(byID))
	for _, r := range byID {
		if !r.Deleted {
			list = append(list, *r)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return list, nil
}

// Pending returns how many changes wait in the outbox.
func (c *Client) Pending(ctx context.Context) (int, error) {
	var n int
	if err := c.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("fieldsync.Pending: %w", err)
	}
	return n, nil
}

// recordData checks a record's address and returns its data as a JSON
// object.
func recordData(coll schema.Collection, id string, data any) (json.RawMessage, error) {
	if err := checkAddress(coll, id); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "data", "data does not marshal to JSON: %v", err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "data", "data must be a JSON object")
	}
	return raw, nil
}

func checkAddress(coll schema.Collection, id string) error {
	if !coll.Valid() {
		return schema.FieldErrorf(schema.CodeValidationFailed, "collection", "unknown collection %q", coll)
	}
	if !schema.CheckID(id) {
		return schema.FieldErrorf(schema.CodeValidationFailed, "id", "id must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
	}
	return nil
}
