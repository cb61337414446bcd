package sync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	"github.com/fieldsync/fieldsync/schema"
)

// scope is what decides a user's read tokens: role, territories and
// distributor.
type scope struct {
	Role        schema.Role `json:"r"`
	Territories []string    `json:"t,omitempty"`
	Distributor string      `json:"d,omitempty"`
}

func scopeOf(p schema.Principal) scope {
	t := slices.Clone(p.Territories)
	slices.Sort(t)
	return scope{Role: p.Role, Territories: slices.Compact(t), Distributor: p.DistributorID}
}

func (s scope) equal(o scope) bool {
	return s.Role == o.Role && s.Distributor == o.Distributor && slices.Equal(s.Territories, o.Territories)
}

func (s scope) tokens(userID string) []string {
	return schema.ReadTokens(schema.Principal{UserID: userID, Role: s.Role, Territories: s.Territories, DistributorID: s.Distributor})
}

// Backfill phases, run after the caller's scope changed.
const (
	phaseAdd    = 0 // records of newly gained tokens, up to Seq
	phaseRemove = 1 // removals for tokens no longer held
)

// backfill is the progress of catching a client up with a new scope.
type backfill struct {
	Target scope `json:"t"`
	Phase  int   `json:"p"`
	After  int64 `json:"a"`
}

// checkpoint is where a client stands in the change feed: it has every
// change up to Seq of the records that scope Have reads, and possibly
// some of those scopes in Extra reads (from a backfill cut short).
type checkpoint struct {
	Version int       `json:"v"`
	User    string    `json:"u"`
	Seq     int64     `json:"s"`
	Have    scope     `json:"h"`
	Extra   []scope   `json:"x,omitempty"`
	Fill    *backfill `json:"f,omitempty"`
	// Cols are the collections the checkpoint is for, sorted; none for
	// all of them.
	Cols []schema.Collection `json:"c,omitempty"`
}

const checkpointVersion = 1

// encodeCheckpoint signs a checkpoint into the opaque string clients keep.
func (e *Engine) encodeCheckpoint(cp *checkpoint) (string, error) {
	cp.Version = checkpointVersion
	payload, err := json.Marshal(cp)
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + e.checkpointMAC(body), nil
}

func (e *Engine) checkpointMAC(body string) string {
	m := hmac.New(sha256.New, e.cpKey)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// errBadCheckpoint refuses a checkpoint that is not this server's for
// this user.
var errBadCheckpoint = schema.FieldErrorf(schema.CodeBadRequest, "checkpoint", "checkpoint is not valid for this user")

// decodeCheckpoint checks a checkpoint's MAC and owner.
func (e *Engine) decodeCheckpoint(s, userID string) (*checkpoint, error) {
	body, mac, ok := strings.Cut(s, ".")
	if !ok || len(s) > 64<<10 || !hmac.Equal([]byte(mac), []byte(e.checkpointMAC(body))) {
		return nil, errBadCheckpoint
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, errBadCheckpoint
	}
	var cp checkpoint
	if err := json.Unmarshal(payload, &cp); err != nil || cp.Version != checkpointVersion || cp.User != userID || cp.Seq < 0 {
		return nil, errBadCheckpoint
	}
	return &cp, nil
}

// errOtherCollections refuses a checkpoint made for another set of
// collections than the pull asks for.
var errOtherCollections = schema.FieldErrorf(schema.CodeBadRequest, "collections",
	"the checkpoint was made for another set of collections; start from an empty checkpoint for this set")

// tokens returns the tokens scope s reads in the collections the
// checkpoint is for.
func (cp *checkpoint) tokens(s scope) []string {
	return schema.TokensIn(s.tokens(cp.User), cp.Cols)
}
