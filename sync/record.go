package sync

import (
	"context"
	"encoding/json"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Record is one record as the store keeps it: its envelope, where it sits
// in the change feed, who may read it, and its recent history.
type Record struct {
	Collection schema.Collection
	ID         string
	Version    int64
	Deleted    bool
	UpdatedAt  time.Time
	UpdatedBy  string
	// Data is the record's canonical JSON; null for a deleted record.
	Data json.RawMessage
	// Seq is the record's place in the change feed, set by the store on
	// every write: greater than every seq written before.
	Seq int64
	// Tokens are the read tokens of the record now (schema.RecordTokens),
	// sorted.
	Tokens []string
	// Refs name the records this one points at ("customer:c-1",
	// "visit:v-1") and other keys it is looked up by ("sha256:…"), so that
	// it can be found from them.
	Refs []string
	// History lists the most recent writes, oldest first, the current
	// one last.
	History []Revision
	// Facts are what reports read of the record (none for a deleted one).
	Facts []Fact
	// Audit holds the audit entries of the record's latest writes, oldest
	// first, the current write's last when it made a new version. A store
	// writes them in the same write as the record — in its transaction,
	// or inside its document — so that no change is ever kept without its
	// entry nor an entry without its change; it may keep none of them
	// with the record once they are in its audit trail.
	Audit []AuditEntry
}

// Fact kinds.
const (
	FactVisit     = "visit"      // one per visit
	FactOpen      = "open"       // one per visit with no check-out, beside its visit fact
	FactStop      = "stop"       // one per planned stop of a route plan
	FactOrder     = "order"      // one per order
	FactCustomer  = "customer"   // one per customer
	FactSale      = "sale"       // one per order once submitted, at its submission
	FactOpenOrder = "open_order" // one per order submitted, on hold, confirmed or shipped, at Epoch
	FactTarget    = "target"     // one per target, at the start of its month in UTC
)

// Epoch is the At of facts that are about no time, such as a customer's.
var Epoch = time.Unix(0, 0).UTC()

// Fact is one row of what reports count, derived from a record when it is
// written, and kept by the store where it can be found by kind, territory
// and time, or by kind, customer and time.
type Fact struct {
	Kind      string    `json:"k"`
	Rep       string    `json:"r,omitempty"` // the rep of a visit or stop; who placed an order
	Customer  string    `json:"c,omitempty"`
	Territory string    `json:"t,omitempty"` // the customer's territory
	Visit     string    `json:"v,omitempty"` // a visit's own id; the visit an order came from
	Label     string    `json:"l,omitempty"` // a customer's name
	Grade     string    `json:"g,omitempty"` // a customer's grade
	Day       string    `json:"d,omitempty"` // a stop's plan date
	At        time.Time `json:"a"`           // a visit's check-in; a stop's date at 00:00 UTC; an order's visit's check-in
	Flag      int       `json:"f"`           // visit: 1 within the geofence, 0 outside, -1 unknown; order: 1 counted, 0 cancelled
	Amount    int64     `json:"m,omitempty"` // a sale's order total; a customer's credit limit; a target's order amount
	Balance   int64     `json:"b,omitempty"` // a customer's open balance
	Count     int64     `json:"n,omitempty"` // a target's visits
	Status    string    `json:"s,omitempty"` // a sale's order status
}

// Revision is one past write of a record: who made it, through which
// mutation, and for collections that merge, the data it wrote.
type Revision struct {
	Version    int64           `json:"v"`
	MutationID string          `json:"m,omitempty"`
	UserID     string          `json:"u,omitempty"`
	Data       json.RawMessage `json:"d,omitempty"`
}

// Change is one entry of the change feed seen through a set of tokens:
// the record (always its current state), and whether it was found through
// a token it has lost (Gone) rather than one it has.
type Change struct {
	Seq    int64
	Gone   bool
	Record *Record
}

// FeedEntry is one write of the change feed as the live watcher sees
// it: its seq and the read tokens it concerns, held or lost, sorted.
type FeedEntry struct {
	Seq    int64
	Tokens []string
}

// Answer is the stored reply to one mutation, replayed when the same user
// sends the same mutation id again.
type Answer struct {
	UserID     string
	MutationID string
	Body       json.RawMessage
	At         time.Time
	// Record, when not nil, is the record this very mutation wrote, whose
	// envelope the answer carries at the record's version: the answer is
	// MergedAnswer(MutationID, Record), and the engine leaves Body nil, so
	// that the record is not encoded again in the write transaction for
	// it (see Encoded). A store may keep such an answer as a reference to
	// the record rather than a copy of it, as long as it gives the body
	// back byte for byte, after the record moved on as before.
	Record *Record
}

// Encoded returns the answer's body: Body, or for an answer left as the
// record it carries, that record's merged answer.
func (a *Answer) Encoded() (json.RawMessage, error) {
	if a.Body == nil && a.Record != nil {
		return MergedAnswer(a.MutationID, a.Record)
	}
	return a.Body, nil
}

// MergedAnswer is the answer to a mutation whose write was merged with the
// server's record, or repriced, into r: the client takes r as it is.
func MergedAnswer(mutationID string, r *Record) ([]byte, error) {
	return json.Marshal(schema.PushResult{MutationID: mutationID, Status: schema.PushMerged, Version: r.Version, Record: envelopeOf(r)})
}

// PhotoProof is a user's proof that it holds a photo's bytes: it uploaded
// them, and the server hashed them. It carries what the stored bytes say
// of themselves, so that photo records are derived without reading them.
type PhotoProof struct {
	UserID string
	SHA256 string
	// Size is the number of bytes stored.
	Size int64
	// TakenAt, Lat and Lng are what the photo's EXIF metadata says, if
	// anything.
	TakenAt  *time.Time
	Lat, Lng *float64
	// At is when the proof was first given.
	At time.Time
}

// RecordTx reads and writes records within one unit of work. In stores
// with transactions the unit is atomic; elsewhere each write is atomic on
// its own.
type RecordTx interface {
	// Record returns the current state of a record; ErrNotFound when it
	// was never written.
	Record(ctx context.Context, c schema.Collection, id string) (*Record, error)
	// Records returns, by id, the current state of the records of
	// collection c with the given ids that were ever written, in one read.
	Records(ctx context.Context, c schema.Collection, ids []string) (map[string]*Record, error)
	// RecordsByRef returns the current records of collection c whose Refs
	// hold ref, in id order, at most limit of them after id after.
	RecordsByRef(ctx context.Context, c schema.Collection, ref, after string, limit int) ([]*Record, error)
	// RepFactAfter reports whether a record other than except has a fact
	// of a kind by rep whose At is after after.
	RepFactAfter(ctx context.Context, kind, rep string, after time.Time, except string) (bool, error)
	// Put writes r if the stored version of the record is prev (0: the
	// record must not exist), and sets r.Seq. r.Version may equal prev: a
	// re-stamp gives a record new tokens at a new seq without a new
	// version. Tokens the record had before
	// and lacks now stay in the feed as gone at the new seq, so that their
	// holders learn of the loss. ErrStale when the stored version is not
	// prev.
	Put(ctx context.Context, r *Record, prev int64) error
	// PhotoProof returns a user's proof of holding a photo's bytes;
	// ErrNotFound when it never gave one.
	PhotoProof(ctx context.Context, userID, sha256 string) (*PhotoProof, error)
	// SaveProof stores a proof of holding a photo's bytes (the first one
	// of a user and hash stays).
	SaveProof(ctx context.Context, p *PhotoProof) error
	// Answers returns the stored answers to a user's mutations, by
	// mutation id, in one read; a mutation with none is not in the map.
	Answers(ctx context.Context, userID string, mutationIDs []string) (map[string]*Answer, error)
	// SaveAnswer stores the answer to a mutation (the first one stays).
	SaveAnswer(ctx context.Context, a *Answer) error
}

// RecordStore keeps records and the change feed. Implementations must be
// safe for concurrent use by several processes sharing the store.
type RecordStore interface {
	// Update runs fn in one unit of work; fn's error is returned and, where
	// the store has transactions, undoes its writes. A store may run fn
	// again when the transaction it ran in was undone for a reason of the
	// store's (SQLite runs concurrent units together and retries the others
	// of a transaction that one of them lost), so fn must start afresh each
	// time it runs.
	Update(ctx context.Context, fn func(tx RecordTx) error) error
	// View runs fn with reads only, on a consistent snapshot where the
	// store has them.
	View(ctx context.Context, fn func(tx RecordTx) error) error
	// Watermark returns the stable seq: every write with a seq at or below
	// it is committed or known abandoned, so a reader that has seen every
	// change up to it has missed none.
	Watermark(ctx context.Context) (int64, error)
	// Changes returns, in seq order, at most limit changes with after < seq
	// <= upto of records that hold, or have lost, one of tokens. When
	// maxBytes > 0 it also stops after the change whose record Data brings
	// the total length of the returned Data to maxBytes or more. Either
	// way the answer is the start of the full answer, and a store never
	// holds more than that page's records (and the keys of a page per
	// token) in memory to make it.
	Changes(ctx context.Context, tokens []string, after, upto int64, limit, maxBytes int) ([]Change, error)
	// Feed returns, in seq order, at most limit entries with after < seq
	// <= upto, one per seq at which a record was last written or lost a
	// token: the tokens the records written there hold and those lost
	// there. through is how far it read: every entry with after < seq <=
	// through is among them, and through is upto when they are all there
	// are. It is what the live watcher reads to learn whom writes concern,
	// without reading records.
	Feed(ctx context.Context, after, upto int64, limit int) (entries []FeedEntry, through int64, err error)
	// SweepAnswers deletes answers stored before cutoff and returns how
	// many went.
	SweepAnswers(ctx context.Context, cutoff time.Time) (int, error)
}
