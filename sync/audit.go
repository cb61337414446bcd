package sync

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Audit actions.
const (
	AuditCreate = "create"
	AuditUpdate = "update"
	AuditMerge  = "merge"
	AuditDelete = "delete"
)

// auditDepth is how many of a record's latest audit entries travel with
// it (see Record.Audit).
const auditDepth = 4

// FieldChange is one field's value before and after a write; null where
// the field was or is absent.
type FieldChange struct {
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
}

// AuditEntry is who did what to which record, when, from which device,
// with each changed field's before and after.
type AuditEntry struct {
	// Key identifies the entry: collection/id/version for a record's write.
	Key        string                 `json:"-"`
	At         time.Time              `json:"at"`
	UserID     string                 `json:"user_id"`
	DeviceID   string                 `json:"device_id"`
	Action     string                 `json:"action"`
	Collection schema.Collection      `json:"collection,omitempty"`
	ID         string                 `json:"id,omitempty"`
	Version    int64                  `json:"version,omitempty"`
	Changes    map[string]FieldChange `json:"changes,omitempty"`
	// Created is set on the entry of a record's creation, whose changes
	// are every top-level field of the record's data at Version, each
	// from null. The engine leaves such an entry's Changes nil while it
	// is the entry of the record's current version, so that a store may
	// keep them as a reference to the data without decoding it
	// (CreationChanges gives them in full); it fills them in before the
	// entry travels with a later version of the record.
	Created bool `json:"-"`
	// Territories are those of the record after the write (before, for a
	// delete): managers see the entries of their territories.
	Territories []string `json:"-"`
}

// AuditQuery selects audit entries, newest first. Zero fields select
// everything.
type AuditQuery struct {
	Collection schema.Collection
	ID         string
	UserID     string
	From, To   time.Time // [From, To)
	// Territories, when not nil, keeps the entries of records in one of
	// them.
	Territories []string
	// Before, when set, keeps the entries older than this position (At,
	// then Key, descending).
	BeforeAt  time.Time
	BeforeKey string
	Limit     int
}

// AuditStore keeps audit entries. Entries are written with the records
// they are about (Record.Audit), never on their own. Implementations must
// be safe for concurrent use by several processes sharing the store.
type AuditStore interface {
	// AuditEntries returns the entries q selects, newest first, at most
	// q.Limit.
	AuditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// SweepAudit deletes entries made before cutoff and returns how many
	// went; it also completes whatever a store builds its entries from.
	SweepAudit(ctx context.Context, cutoff time.Time) (int, error)
}

// audit adds to next the entry of the write that turns cur (nil when
// there was none) into next, keeping the latest auditDepth. A creation's
// changes are left to the store (see AuditEntry.Created): the new data is
// not decoded in the write transaction for them.
func (w *writer) audit(action string, cur, next *Record) error {
	entry := AuditEntry{
		Key: auditKey(next.Collection, next.ID, next.Version), At: next.UpdatedAt, UserID: w.p.UserID, DeviceID: w.p.DeviceID,
		Action: action, Collection: next.Collection, ID: next.ID, Version: next.Version,
	}
	var before, after map[string]json.RawMessage
	var err error
	if cur != nil && !cur.Deleted {
		if before, err = fieldsOf(cur.Data); err != nil {
			return err
		}
	}
	if !next.Deleted {
		entry.Territories = territoriesOf(next)
	} else if cur != nil {
		entry.Territories = territoriesOf(cur)
	}
	switch {
	case before == nil && hasFields(next):
		entry.Created = true
	default:
		if !next.Deleted {
			if after, err = fieldsOf(next.Data); err != nil {
				return err
			}
		}
		entry.Changes = fieldChanges(before, after)
	}
	var kept []AuditEntry
	if cur != nil {
		if kept, err = w.completeAudit(cur); err != nil {
			return err
		}
	}
	next.Audit = append(kept, entry)
	if len(next.Audit) > auditDepth {
		next.Audit = next.Audit[len(next.Audit)-auditDepth:]
	}
	return nil
}

// hasFields reports whether a record that is not deleted has data with a
// field: data is canonical JSON, so an object without fields is "{}".
func hasFields(r *Record) bool {
	return !r.Deleted && len(r.Data) > 2 && r.Data[0] == '{'
}

// newEntriesOnly is what a unit of work may offer to say that, of the
// audit entries a record it writes carries, it stores only those of
// versions after the one the write replaces, the others being stored
// already: it then needs no changes filled in (see completeAudit).
type newEntriesOnly interface {
	StoresNewAuditEntriesOnly()
}

// completeAudit returns a copy of r's audit entries, for a later version
// of r to carry, with the changes of the entry of r's creation filled in
// where they were left to the store (see AuditEntry.Created), unless the
// store needs no more than the new version's entry.
func (w *writer) completeAudit(r *Record) ([]AuditEntry, error) {
	out := slices.Clone(r.Audit)
	if _, ok := w.tx.(newEntriesOnly); ok {
		return out, nil
	}
	for i := range out {
		if e := &out[i]; e.Created && e.Changes == nil {
			if e.Version != r.Version || r.Deleted {
				return nil, fmt.Errorf("audit entry %s: its changes are not at hand", e.Key)
			}
			changes, err := CreationChanges(r.Data)
			if err != nil {
				return nil, err
			}
			e.Changes = changes
		}
	}
	return out, nil
}

// CreationChanges returns the changes of the write that creates a record
// with data: each of its top-level fields, from null.
func CreationChanges(data json.RawMessage) (map[string]FieldChange, error) {
	after, err := fieldsOf(data)
	if err != nil {
		return nil, err
	}
	return fieldChanges(nil, after), nil
}

// fieldChanges lists the top-level fields whose values differ.
func fieldChanges(before, after map[string]json.RawMessage) map[string]FieldChange {
	null := json.RawMessage("null")
	out := map[string]FieldChange{}
	for k, a := range after {
		if b, ok := before[k]; !ok || !bytes.Equal(b, a) {
			if !ok {
				b = null
			}
			out[k] = FieldChange{From: b, To: a}
		}
	}
	for k, b := range before {
		if _, ok := after[k]; !ok {
			out[k] = FieldChange{From: b, To: null}
		}
	}
	return out
}

func auditKey(c schema.Collection, id string, version int64) string {
	return string(c) + "/" + id + "/" + strconv.FormatInt(version, 10)
}

// AuditPage is one page of the audit trail.
type AuditPage struct {
	Entries    []AuditEntry `json:"entries"`
	NextCursor string       `json:"next_cursor"`
}

// AuditRequest is what the audit endpoint asks for.
type AuditRequest struct {
	Collection, ID, UserID string
	From, To               string // RFC 3339, optional
	Limit                  int
	Cursor                 string
}

// Audit returns a page of the audit trail, newest first: everything for
// an admin, the entries of records in its territories for a manager.
func (e *Engine) Audit(ctx context.Context, p schema.Principal, req AuditRequest) (*AuditPage, error) {
	q := AuditQuery{Collection: schema.Collection(req.Collection), ID: req.ID, UserID: req.UserID, Limit: req.Limit}
	switch p.Role {
	case schema.RoleAdmin:
	case schema.RoleManager:
		q.Territories = slices.Clone(p.Territories)
		if q.Territories == nil {
			q.Territories = []string{}
		}
	default:
		return nil, schema.Errorf(schema.CodeForbidden, "the audit trail is for admins and managers")
	}
	if q.Collection != "" && !q.Collection.Valid() {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "collection", "collection must be one of %s", collectionNames())
	}
	for _, f := range []struct {
		name, value string
		into        *time.Time
	}{{"from", req.From, &q.From}, {"to", req.To, &q.To}} {
		if f.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.value)
		if err != nil {
			return nil, schema.FieldErrorf(schema.CodeValidationFailed, f.name, "%s must be a time, RFC 3339", f.name)
		}
		*f.into = t
	}
	switch {
	case q.Limit == 0:
		q.Limit = 100
	case q.Limit < 1 || q.Limit > 1000:
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "limit", "limit must be 1 to 1000")
	}
	if req.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(req.Cursor)
		at, key, ok := strings.Cut(string(raw), "|")
		n, perr := strconv.ParseInt(at, 10, 64)
		if err != nil || !ok || perr != nil {
			return nil, schema.FieldErrorf(schema.CodeBadRequest, "cursor", "cursor is not one this server gave")
		}
		q.BeforeAt, q.BeforeKey = time.Unix(0, n).UTC(), key
	}
	entries, err := e.store.AuditEntries(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sync.Audit: %w", err)
	}
	page := &AuditPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []AuditEntry{}
	}
	if len(entries) == q.Limit {
		last := entries[len(entries)-1]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.At.UnixNano(), 10) + "|" + last.Key))
	}
	return page, nil
}

// SweepAudit removes audit entries older than the retention.
func (e *Engine) SweepAudit(ctx context.Context) (int, error) {
	n, err := e.store.SweepAudit(ctx, e.now().Add(-e.auditRetention))
	if err != nil {
		return 0, fmt.Errorf("sync.SweepAudit: %w", err)
	}
	return n, nil
}
