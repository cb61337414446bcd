package schema

import (
	"encoding/json"
	"time"
)

// The wire: the JSON bodies of the sync and sign-in endpoints, declared
// once here for the server, the engine, the Go client and the tools. Their
// JSON is pinned by the golden files in schema/testdata/wire (checked by
// the server's tests and the Go client's) and described by
// docs/openapi.yaml.

// Envelope is a record as clients see it in pulls and conflicts. Data is
// null for a deleted record.
type Envelope struct {
	Collection Collection      `json:"collection"`
	ID         string          `json:"id"`
	Version    int64           `json:"version"`
	Deleted    bool            `json:"deleted"`
	UpdatedAt  time.Time       `json:"updated_at"`
	UpdatedBy  string          `json:"updated_by"`
	Data       json.RawMessage `json:"data"`
}

// MutationOp is what a mutation does to its record.
type MutationOp string

// The two mutation operations.
const (
	// MutationUpsert writes the whole record as the client sees it.
	MutationUpsert MutationOp = "upsert"
	// MutationDelete deletes the record.
	MutationDelete MutationOp = "delete"
)

// Mutation is one change a client pushes. BaseVersion is the version the
// client last saw; 0 means the client creates the record.
type Mutation struct {
	MutationID  string          `json:"mutation_id"`
	Collection  Collection      `json:"collection"`
	ID          string          `json:"id"`
	Op          MutationOp      `json:"op"`
	BaseVersion int64           `json:"base_version"`
	Data        json.RawMessage `json:"data,omitempty"`
}

// PushRequest is a batch of mutations from one device. Mutations stay raw
// until each is decoded on its own, so that one malformed mutation is
// rejected alone.
type PushRequest struct {
	DeviceID  string            `json:"device_id"`
	Mutations []json.RawMessage `json:"mutations"`
}

// NewPushRequest builds the push of mutations from a device.
func NewPushRequest(deviceID string, mutations []Mutation) (*PushRequest, error) {
	req := &PushRequest{DeviceID: deviceID, Mutations: make([]json.RawMessage, len(mutations))}
	for i := range mutations {
		raw, err := json.Marshal(&mutations[i])
		if err != nil {
			return nil, err
		}
		req.Mutations[i] = raw
	}
	return req, nil
}

// PushStatus is what became of one pushed mutation.
type PushStatus string

// The four push statuses.
const (
	// PushApplied: written; Version is the new version.
	PushApplied PushStatus = "applied"
	// PushMerged: the client's base was stale but its changes did not
	// overlap the server's, so both were kept; Version and Record give
	// the result.
	PushMerged PushStatus = "merged"
	// PushConflict: nothing written; Record is the server's current
	// envelope.
	PushConflict PushStatus = "conflict"
	// PushRejected: nothing written; Error says why.
	PushRejected PushStatus = "rejected"
)

// PushResult is the answer to one mutation.
type PushResult struct {
	MutationID string     `json:"mutation_id"`
	Status     PushStatus `json:"status"`
	Version    int64      `json:"version,omitempty"`
	Record     *Envelope  `json:"record,omitempty"`
	Error      *Error     `json:"error,omitempty"`
}

// PushResponse answers a push, one result per mutation in order.
type PushResponse struct {
	Results []PushResult `json:"results"`
}

// PullRequest asks for the changes after a checkpoint; an empty
// checkpoint means from the beginning.
type PullRequest struct {
	Checkpoint string `json:"checkpoint"`
	Limit      int    `json:"limit"`
	// Collections, when not empty, restricts the pull to those
	// collections; the checkpoint it returns holds only for that set.
	Collections []Collection `json:"collections,omitempty"`
}

// PullResponse is one page of changes. The client pulls again with
// Checkpoint while HasMore is true.
type PullResponse struct {
	Changes    []*Envelope `json:"changes"`
	Checkpoint string      `json:"checkpoint"`
	HasMore    bool        `json:"has_more"`
}

// LoginRequest signs a user in on a device.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	DeviceID string `json:"device_id"`
}

// RefreshRequest trades a refresh token for a new pair.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// TokenResponse answers a sign-in or a refresh: a new token pair, the
// access token's lifetime in seconds, and the user signed in.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	User         *User  `json:"user"`
}

// ErrorResponse is the body of every refused request.
type ErrorResponse struct {
	Error *Error `json:"error"`
}
