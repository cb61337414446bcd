package sync

import (
	"encoding/json"

	"github.com/fieldsync/fieldsync/schema"
)

// envelopeOf returns the envelope of a stored record.
func envelopeOf(r *Record) *schema.Envelope {
	data := r.Data
	if r.Deleted || data == nil {
		data = json.RawMessage("null")
	}
	return &schema.Envelope{
		Collection: r.Collection, ID: r.ID, Version: r.Version, Deleted: r.Deleted,
		UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy, Data: data,
	}
}

// leftScope returns the envelope that tells a client a record is gone from
// its view: deleted, at the record's current version, with nothing else.
func leftScope(r *Record) *schema.Envelope {
	return &schema.Envelope{Collection: r.Collection, ID: r.ID, Version: r.Version, Deleted: true,
		UpdatedAt: r.UpdatedAt, Data: json.RawMessage("null")}
}
