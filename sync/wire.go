package sync

import (
	"encoding/json"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Envelope is a record as clients see it in pulls and conflicts.
type Envelope struct {
	Collection schema.Collection `json:"collection"`
	ID         string            `json:"id"`
	Version    int64             `json:"version"`
	Deleted    bool              `json:"deleted"`
	UpdatedAt  time.Time         `json:"updated_at"`
	UpdatedBy  string            `json:"updated_by"`
	Data       json.RawMessage   `json:"data"`
}

// envelopeOf returns the envelope of a stored record.
func envelopeOf(r *Record) *Envelope {
	data := r.Data
	if r.Deleted || data == nil {
		data = json.RawMessage("null")
	}
	return &Envelope{
		Collection: r.Collection, ID: r.ID, Version: r.Version, Deleted: r.Deleted,
		UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy, Data: data,
	}
}

// leftScope returns the envelope that tells a client a record is gone from
// its view: deleted, at the record's current version, with nothing else.
func leftScope(r *Record) *Envelope {
	return &Envelope{Collection: r.Collection, ID: r.ID, Version: r.Version, Deleted: true,
		UpdatedAt: r.UpdatedAt, Data: json.RawMessage("null")}
}

// Mutation operations.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Mutation is one change a client pushes.
type Mutation struct {
	MutationID  string            `json:"mutation_id"`
	Collection  schema.Collection `json:"collection"`
	ID          string            `json:"id"`
	Op          string            `json:"op"`
	BaseVersion int64             `json:"base_version"`
	Data        json.RawMessage   `json:"data,omitempty"`
}

// PushRequest is a batch of mutations from one device. Mutations stay raw
// until each is decoded on its own, so that one malformed mutation is
// rejected alone.
type PushRequest struct {
	DeviceID  string            `json:"device_id"`
	Mutations []json.RawMessage `json:"mutations"`
}

// Push statuses.
const (
	StatusApplied  = "applied"
	StatusMerged   = "merged"
	StatusConflict = "conflict"
	StatusRejected = "rejected"
)

// PushResult is the answer to one mutation.
type PushResult struct {
	MutationID string        `json:"mutation_id"`
	Status     string        `json:"status"`
	Version    int64         `json:"version,omitempty"`
	Record     *Envelope     `json:"record,omitempty"`
	Error      *schema.Error `json:"error,omitempty"`
}

// PushResponse answers a push, one result per mutation in order.
type PushResponse struct {
	Results []PushResult `json:"results"`
}

// PullRequest asks for the changes after a checkpoint.
type PullRequest struct {
	Checkpoint string `json:"checkpoint"`
	Limit      int    `json:"limit"`
	// Collections, when not empty, restricts the pull to those
	// collections; the checkpoint it returns holds only for that set.
	Collections []schema.Collection `json:"collections,omitempty"`
}

// PullResponse is one page of changes.
type PullResponse struct {
	Changes    []*Envelope `json:"changes"`
	Checkpoint string      `json:"checkpoint"`
	HasMore    bool        `json:"has_more"`
}
