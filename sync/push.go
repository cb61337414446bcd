package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// mergeable lists the collections whose stale writes merge field by field
// when they do not overlap what changed on the server.
var mergeable = map[schema.Collection]bool{schema.Customers: true, schema.RoutePlans: true}

// maxStaleRetries bounds how often a mutation that lost a race to a
// concurrent write is tried again before it is answered as a conflict.
const maxStaleRetries = 5

// Push applies a batch of mutations for p and answers each in order. A
// mutation that is refused does not stop the others. The error is a
// *schema.Error (payload_too_large, bad_request) when the batch is refused
// whole, and anything else when the store fails; then nothing is answered.
func (e *Engine) Push(ctx context.Context, p schema.Principal, req *schema.PushRequest) (*schema.PushResponse, error) {
	if n := len(req.Mutations); n > e.maxMutations {
		return nil, schema.Errorf(schema.CodePayloadTooLarge, "a push carries at most %d mutations; this one has %d", e.maxMutations, n)
	}
	if req.DeviceID != "" && !schema.CheckID(req.DeviceID) {
		return nil, schema.FieldErrorf(schema.CodeBadRequest, "device_id", "device_id must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
	}
	// Decoding and validation happen before the store's write lock is
	// taken: the unit of work holds only store work.
	batch := make([]prepared, len(req.Mutations))
	for i, raw := range req.Mutations {
		batch[i] = e.prepare(raw)
	}
	// The push is decided against a snapshot, and the write lock held
	// only to confirm what it read and store what it decided (see
	// pushAhead), unless the store cannot do that or the snapshot no
	// longer holds by then: then it is decided under the lock.
	resp, err := e.pushAhead(ctx, p, batch)
	if errors.Is(err, errBehind) {
		err = e.store.Update(ctx, func(tx RecordTx) error {
			var derr error
			resp, derr = e.decideAll(ctx, tx, p, batch)
			return derr
		})
	}
	if err != nil {
		return nil, fmt.Errorf("sync.Push: %w", err)
	}
	e.noteSync(ctx, p, true)
	return resp, nil
}

// decideAll decides and performs the mutations of a push in one unit of
// work and answers each in order.
func (e *Engine) decideAll(ctx context.Context, tx RecordTx, p schema.Principal, batch []prepared) (*schema.PushResponse, error) {
	resp := &schema.PushResponse{Results: make([]schema.PushResult, len(batch))}
	w := &writer{e: e, tx: tx, p: p, tokens: schema.ReadTokens(p)}
	ids := make([]string, 0, len(batch))
	for i := range batch {
		if batch[i].malformed == nil {
			ids = append(ids, batch[i].m.MutationID)
		}
	}
	var err error
	if w.answers, err = tx.Answers(ctx, p.UserID, ids); err != nil {
		return nil, err
	}
	if err := w.readAhead(ctx, batch); err != nil {
		return nil, err
	}
	for i := range batch {
		if resp.Results[i], err = w.apply(ctx, &batch[i]); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// prepared is a mutation as far as it is worked out before the store's
// write lock is taken: its envelope and, for an upsert, its record
// decoded and validated or the reason it is refused.
type prepared struct {
	m schema.Mutation
	// malformed is why the envelope is refused; such a mutation is
	// answered without being remembered.
	malformed *schema.Error
	rec       schema.Record
	refused   error
	// taken is set once rec was handed out: the writer changes the
	// record it derives, so a retry decodes the data afresh.
	taken bool
}

// prepare decodes one mutation and the record an upsert carries, and
// checks them as far as that needs no store.
func (e *Engine) prepare(raw json.RawMessage) prepared {
	m, perr := decodeMutation(raw)
	if perr != nil {
		return prepared{m: m, malformed: perr}
	}
	p := prepared{m: m}
	if m.Op == schema.MutationUpsert {
		p.rec, p.refused = e.decodeRecord(m)
	}
	return p
}

// decodeRecord decodes and validates the record of an upsert, event times
// included.
func (e *Engine) decodeRecord(m schema.Mutation) (schema.Record, error) {
	rec, err := schema.Decode(m.Collection, m.Data)
	if err != nil {
		return nil, err
	}
	if err := e.checkEventTimes(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// record returns the decoded record of an upsert, decoding it again when
// an earlier try used it up.
func (p *prepared) record(e *Engine) (schema.Record, error) {
	if p.refused != nil {
		return nil, p.refused
	}
	if !p.taken {
		p.taken = true
		return p.rec, nil
	}
	return e.decodeRecord(p.m)
}

// apply answers one mutation: the stored answer when it was answered
// before (w.answers holds those, read for the whole push at once), else a
// fresh one, which it stores.
func (w *writer) apply(ctx context.Context, p *prepared) (schema.PushResult, error) {
	m := p.m
	if p.malformed != nil {
		return schema.PushResult{MutationID: m.MutationID, Status: schema.PushRejected, Error: p.malformed}, nil
	}
	if prior, ok := w.answers[m.MutationID]; ok {
		body, err := prior.Encoded()
		if err != nil {
			return schema.PushResult{}, err
		}
		var res schema.PushResult
		if err := json.Unmarshal(body, &res); err != nil {
			return schema.PushResult{}, fmt.Errorf("stored answer: %w", err)
		}
		return res, nil
	}
	var (
		res schema.PushResult
		err error
	)
	for try := 0; ; try++ {
		w.answered = nil
		res, err = w.decide(ctx, p)
		if !errors.Is(err, ErrStale) {
			break
		}
		if try == maxStaleRetries {
			return schema.PushResult{}, fmt.Errorf("mutation %s lost %d races in a row: %w", m.MutationID, try+1, err)
		}
	}
	if err != nil {
		var se *schema.Error
		if !errors.As(err, &se) {
			return schema.PushResult{}, err
		}
		res = schema.PushResult{Status: schema.PushRejected, Error: se}
	}
	res.MutationID = m.MutationID
	a := &Answer{UserID: w.p.UserID, MutationID: m.MutationID, At: w.e.now().UTC()}
	if res.Status == schema.PushMerged && w.answered != nil && w.answered.Version == res.Version {
		a.Record = w.answered // encoded by the store, if it needs the body
	} else if a.Body, err = json.Marshal(res); err != nil {
		return schema.PushResult{}, err
	}
	if err := w.tx.SaveAnswer(ctx, a); err != nil {
		return schema.PushResult{}, err
	}
	w.answers[m.MutationID] = a // the same id later in the push gets this answer
	return res, nil
}

// decodeMutation reads and checks one mutation's envelope.
func decodeMutation(raw json.RawMessage) (schema.Mutation, *schema.Error) {
	var m schema.Mutation
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		// Salvage the id, if any, so the client can match the answer.
		var id struct {
			MutationID string `json:"mutation_id"`
		}
		if json.Unmarshal(raw, &id) == nil && schema.CheckID(id.MutationID) {
			m.MutationID = id.MutationID
		} else {
			m.MutationID = ""
		}
		field, problem := mutationProblem(err)
		return m, rejection(schema.CodeValidationFailed, field, "%s", problem)
	}
	bad := func(field, format string, args ...any) (schema.Mutation, *schema.Error) {
		return m, rejection(schema.CodeValidationFailed, field, format, args...)
	}
	switch {
	case !schema.CheckID(m.MutationID):
		id := m.MutationID
		m.MutationID = ""
		if id == "" {
			return bad("mutation_id", "mutation_id is required")
		}
		return bad("mutation_id", "mutation_id must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
	case !m.Collection.Valid():
		return bad("collection", "collection must be one of %s", collectionNames())
	case !schema.CheckID(m.ID):
		return bad("id", "id must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
	case m.Op != schema.MutationUpsert && m.Op != schema.MutationDelete:
		return bad("op", "op must be upsert or delete")
	case m.BaseVersion < 0:
		return bad("base_version", "base_version must be 0 or more")
	case m.Op == schema.MutationUpsert && (len(m.Data) == 0 || bytes.Equal(m.Data, []byte("null"))):
		return bad("data", "an upsert carries the whole record in data")
	case m.Op == schema.MutationDelete && m.BaseVersion == 0:
		return bad("base_version", "a delete names the version it deletes")
	}
	return m, nil
}

// mutationProblem says what is wrong with a mutation that does not decode,
// and in which field, without Go's names.
func mutationProblem(err error) (field, problem string) {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		return typ.Field, fmt.Sprintf("%s must be %s", typ.Field, schema.JSONKind(typ.Type))
	case errors.As(err, &typ):
		return "", "a mutation must be a JSON object"
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return name, fmt.Sprintf("%s is not a field of a mutation", name)
	}
	return "", "a mutation must be a JSON object of the mutation's fields"
}

func collectionNames() string {
	names := make([]string, len(schema.Collections()))
	for i, c := range schema.Collections() {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

// readAhead reads the records the push's mutations write, each
// collection's in one read, for decide to take instead of reading each on
// its own. Mutations answered before are left out. It also reads, the
// same way, the records that the records of the push refer to (a visit's
// customer, an order's customer, visit and products, a photo's visit), so
// that the store has them at hand when derive asks for each (see
// referencedBy); what the push itself writes of them derive reads afresh.
// Where the store can, it reads the writer's proofs of the photos that the
// push's photo records name in one query too.
func (w *writer) readAhead(ctx context.Context, batch []prepared) error {
	ids := map[schema.Collection][]string{}
	refs := map[schema.Collection]map[string]bool{}
	hashes := map[string]bool{}
	for i := range batch {
		m := &batch[i].m
		if _, answered := w.answers[m.MutationID]; batch[i].malformed == nil && !answered {
			ids[m.Collection] = append(ids[m.Collection], m.ID)
			if batch[i].refused == nil && batch[i].rec != nil {
				referencedBy(batch[i].rec, refs)
			}
			if p, ok := batch[i].rec.(*schema.Photo); ok && batch[i].refused == nil {
				hashes[p.SHA256] = true // the writer's proof of them: what derive reads of a photo it creates
			}
		}
	}
	w.ahead = map[string]*Record{}
	for c, list := range ids {
		found, err := w.tx.Records(ctx, c, list)
		if err != nil {
			return err
		}
		for _, id := range list {
			w.ahead[string(c)+"/"+id] = found[id] // nil: never written
		}
	}
	for c, set := range refs {
		if _, err := w.tx.Records(ctx, c, slices.Sorted(maps.Keys(set))); err != nil {
			return err
		}
	}
	if r, ok := w.tx.(proofReader); ok && len(hashes) > 0 {
		return r.PhotoProofs(ctx, w.p.UserID, slices.Sorted(maps.Keys(hashes)))
	}
	return nil
}

// proofReader is what a unit of work may offer to read a user's proofs
// of holding many photos' bytes in one query, which it then answers
// PhotoProof from.
type proofReader interface {
	PhotoProofs(ctx context.Context, userID string, hashes []string) error
}

// referencedBy adds to refs, by collection, the ids of the records that
// rec refers to and derive reads.
func referencedBy(rec schema.Record, refs map[schema.Collection]map[string]bool) {
	add := func(c schema.Collection, id string) {
		if id == "" {
			return
		}
		if refs[c] == nil {
			refs[c] = map[string]bool{}
		}
		refs[c][id] = true
	}
	switch r := rec.(type) {
	case *schema.Visit:
		add(schema.Customers, r.CustomerID)
	case *schema.Order:
		add(schema.Customers, r.CustomerID)
		add(schema.Visits, r.VisitID)
		for _, l := range r.Lines {
			add(schema.Products, l.ProductID)
		}
	case *schema.Photo:
		add(schema.Visits, r.VisitID)
	}
}

// current returns the stored state of a record (nil when it was never
// written): the one read ahead, once, unless the writer has written the
// record since, else a fresh read. A try that lost a race reads afresh.
func (w *writer) current(ctx context.Context, c schema.Collection, id string) (*Record, error) {
	key := string(c) + "/" + id
	if r, ok := w.ahead[key]; ok {
		delete(w.ahead, key)
		return r, nil
	}
	r, err := w.tx.Record(ctx, c, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return r, err
}

// decide works out and performs what a mutation asks.
func (w *writer) decide(ctx context.Context, p *prepared) (schema.PushResult, error) {
	m := p.m
	cur, err := w.current(ctx, m.Collection, m.ID)
	if err != nil {
		return schema.PushResult{}, err
	}
	if cur != nil {
		// Written by this very mutation before its answer was stored
		// (the process died in between): answer as then.
		for _, h := range cur.History {
			if h.MutationID == m.MutationID && h.UserID == w.p.UserID {
				return schema.PushResult{Status: schema.PushApplied, Version: h.Version}, nil
			}
		}
	}
	visible := cur != nil && schema.Intersects(cur.Tokens, w.tokens)
	if m.Op == schema.MutationDelete {
		return w.delete(ctx, m, cur, visible)
	}
	return w.upsert(ctx, p, cur, visible)
}

// conflict answers with the server's record, or, when the caller may not
// see it, with a refusal that shows nothing of it.
func conflict(cur *Record, visible bool) (schema.PushResult, error) {
	if !visible {
		return schema.PushResult{}, idTaken()
	}
	return schema.PushResult{Status: schema.PushConflict, Record: envelopeOf(cur)}, nil
}

// idTaken refuses to create a record under an id that a record the caller
// cannot see holds (or held): the only answer that tells such a record
// exists, and all it tells.
func idTaken() *schema.Error {
	return rejection(schema.CodeForbidden, "id", "the id is taken; create the record under a new id (a UUID)")
}

// noSuchRecord answers an update or delete of a record that does not
// exist or that the caller cannot see, the same in both cases.
func noSuchRecord() *schema.Error {
	return rejection(schema.CodeNotFound, "id", "no such record")
}

// leadsOthers lists the collections whose records others take their scope
// from (a customer's visits, orders and price lists; a visit's photos):
// such a record, once deleted, comes back only in the scope it had, so
// that what belonged to it never moves to a new owner through a recreate.
var leadsOthers = map[schema.Collection]bool{schema.Customers: true, schema.Visits: true}

func (w *writer) upsert(ctx context.Context, p *prepared, cur *Record, visible bool) (schema.PushResult, error) {
	m := p.m
	rec, err := p.record(w.e)
	if err != nil {
		return schema.PushResult{}, err
	}
	switch {
	case m.BaseVersion == 0 && cur != nil && !cur.Deleted:
		return conflict(cur, visible)
	case m.BaseVersion == 0 && cur != nil && !visible:
		return schema.PushResult{}, idTaken()
	case m.BaseVersion == 0:
		_, res, err := w.write(ctx, m, schema.OpCreate, rec, cur)
		return res, err
	case cur == nil || !visible:
		return schema.PushResult{}, noSuchRecord()
	case cur.Deleted:
		return conflict(cur, visible)
	case m.BaseVersion > cur.Version:
		return schema.PushResult{}, rejection(schema.CodeValidationFailed, "base_version", "base_version %d is ahead of the server's version", m.BaseVersion)
	case m.BaseVersion < cur.Version:
		return w.merge(ctx, m, rec, cur)
	}
	_, res, err := w.write(ctx, m, schema.OpUpdate, rec, cur)
	return res, err
}

// earliestEvent is the earliest event time a device may report: before
// it, a clock was never set, and reports would count the event nowhere
// sensible.
var earliestEvent = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// checkEventTimes refuses event times implausibly far in the future, or
// before 2000.
func (e *Engine) checkEventTimes(rec schema.Record) error {
	limit := e.now().Add(e.futureSkew)
	check := func(field string, t time.Time) error {
		switch {
		case t.After(limit):
			return rejection(schema.CodeValidationFailed, field, "%s is too far in the future", field)
		case t.Before(earliestEvent):
			return rejection(schema.CodeValidationFailed, field, "%s is before 2000: the device's clock is not set", field)
		}
		return nil
	}
	switch r := rec.(type) {
	case *schema.Visit:
		if err := check("check_in.at", r.CheckIn.At); err != nil {
			return err
		}
		if r.CheckOut != nil {
			return check("check_out.at", r.CheckOut.At)
		}
	case *schema.Photo:
		if r.TakenAt != nil {
			return check("taken_at", *r.TakenAt)
		}
	}
	return nil
}

// merge handles an upsert from a stale base: for mergeable collections,
// when the client's changes and the server's since that base touch
// different fields, both are kept.
func (w *writer) merge(ctx context.Context, m schema.Mutation, rec schema.Record, cur *Record) (schema.PushResult, error) {
	if !mergeable[m.Collection] {
		return conflict(cur, true)
	}
	var base json.RawMessage
	for _, h := range cur.History {
		if h.Version == m.BaseVersion && h.Data != nil {
			base = h.Data
		}
	}
	if base == nil {
		return conflict(cur, true) // too old to tell
	}
	client, err := json.Marshal(rec)
	if err != nil {
		return schema.PushResult{}, err
	}
	baseFields, err1 := fieldsOf(base)
	curFields, err2 := fieldsOf(cur.Data)
	clientFields, err3 := fieldsOf(client)
	if err := errors.Join(err1, err2, err3); err != nil {
		return schema.PushResult{}, err
	}
	merged, ok := merge(baseFields, curFields, clientFields)
	if !ok {
		return conflict(cur, true)
	}
	data, err := json.Marshal(merged)
	if err != nil {
		return schema.PushResult{}, err
	}
	mergedRec, err := schema.Decode(m.Collection, data)
	if err != nil {
		return conflict(cur, true) // each side valid, together not
	}
	w.merging = true
	written, res, err := w.write(ctx, m, schema.OpUpdate, mergedRec, cur)
	w.merging = false
	if err != nil || res.Status != schema.PushApplied {
		return res, err
	}
	if written != cur {
		w.answered = written
	}
	return schema.PushResult{Status: schema.PushMerged, Version: written.Version, Record: envelopeOf(written)}, nil
}

// write checks and stores rec as the next version after cur (nil or a
// tombstone when op is create). Recreating a deleted record is a write to
// it: the caller must be able to write the record as it was.
func (w *writer) write(ctx context.Context, m schema.Mutation, op schema.Op, rec schema.Record, cur *Record) (*Record, schema.PushResult, error) {
	var prev schema.Record
	var prevFields map[string]json.RawMessage
	recreate := op == schema.OpCreate && cur != nil
	if recreate && !schema.CanWrite(w.p, op, m.Collection, factsOf(cur)) {
		return nil, schema.PushResult{}, rejection(schema.CodeForbidden, "id", "the caller may not recreate this deleted %s", singular(m.Collection))
	}
	if op == schema.OpUpdate {
		var err error
		if prev, err = schema.Decode(cur.Collection, cur.Data); err != nil {
			return nil, schema.PushResult{}, fmt.Errorf("stored %s %s does not decode: %w", cur.Collection, cur.ID, err)
		}
		if !schema.CanWrite(w.p, op, m.Collection, factsOf(cur)) {
			return nil, schema.PushResult{}, rejection(schema.CodeForbidden, "", "the caller may not change this record")
		}
		if prevFields, err = fieldsOf(cur.Data); err != nil {
			return nil, schema.PushResult{}, err
		}
		// The fields a role may change are checked before the record is
		// derived, so that a change the caller may not make is refused as
		// such rather than for what it refers to. The collections with such
		// rules have no server-owned fields: the client's data is what
		// would be written.
		if rule := schema.AccessRule(w.p.Role, m.Collection); rule.UpdateFields != nil {
			client, err := json.Marshal(rec)
			if err != nil {
				return nil, schema.PushResult{}, err
			}
			newFields, err := fieldsOf(client)
			if err != nil {
				return nil, schema.PushResult{}, err
			}
			if perr := checkUpdateFields(rule, prevFields, newFields); perr != nil {
				return nil, schema.PushResult{}, perr
			}
		}
	}
	d, err := w.derive(ctx, m.Collection, m.ID, rec, prev)
	if err != nil {
		return nil, schema.PushResult{}, err
	}
	if !schema.CanWrite(w.p, op, m.Collection, d.facts) {
		return nil, schema.PushResult{}, rejection(schema.CodeForbidden, "", "the caller may not %s this %s here", op, singular(m.Collection))
	}
	if recreate && leadsOthers[m.Collection] && !slices.Equal(schema.RecordTokens(m.Collection, d.facts), cur.Tokens) {
		return nil, schema.PushResult{}, rejection(schema.CodeForbidden, "id",
			"a deleted %s comes back only where it was and with the owner it had; create one elsewhere under a new id", singular(m.Collection))
	}
	if op == schema.OpUpdate {
		if bytes.Equal(d.data, cur.Data) {
			return cur, schema.PushResult{Status: schema.PushApplied, Version: cur.Version}, nil // nothing changes
		}
	}
	var prevVersion int64
	if cur != nil {
		prevVersion = cur.Version
	}
	next := &Record{
		Collection: m.Collection, ID: m.ID, Version: prevVersion + 1,
		UpdatedAt: w.e.now().UTC(), UpdatedBy: w.p.UserID, Data: d.data,
		Tokens: schema.RecordTokens(m.Collection, d.facts), Refs: d.refs, Facts: d.report,
	}
	next.History = w.history(m.Collection, cur, Revision{Version: next.Version, MutationID: m.MutationID, UserID: w.p.UserID}, d.data)
	action := map[bool]string{true: AuditCreate, false: AuditUpdate}[op == schema.OpCreate]
	if w.merging {
		action = AuditMerge
	}
	if err := w.audit(action, cur, next); err != nil {
		return nil, schema.PushResult{}, err
	}
	if err := w.put(ctx, next, prevVersion); err != nil {
		return nil, schema.PushResult{}, err
	}
	if m.Collection == schema.PriceLists {
		w.lists = nil // the prices of later orders of the push may change
	}
	// Past this point the record is written: whatever fails now must not
	// be answered as a refusal, but fail the whole push (and, where the
	// store has transactions, undo it).
	if m.Collection == schema.Customers && cur != nil && !cur.Deleted && !slices.Equal(cur.Tokens, next.Tokens) {
		if err := w.restampDependents(ctx, "customer:"+m.ID); err != nil {
			return nil, schema.PushResult{}, afterWrite(err)
		}
	}
	written, err := w.recheckPhoto(ctx, next)
	if err != nil {
		return nil, schema.PushResult{}, afterWrite(err)
	}
	if v, ok := rec.(*schema.Visit); ok { // as derived, and written
		w.keepDecoded(written, v)
		if cur == nil {
			if err := w.markStopDone(ctx, v); err != nil {
				return nil, schema.PushResult{}, afterWrite(err)
			}
		}
		if err := w.markCheckOutsMissing(ctx, written, v); err != nil {
			return nil, schema.PushResult{}, afterWrite(err)
		}
	}
	if d.repriced {
		// The client's prices were replaced: it must take the record as
		// the server priced it.
		w.answered = written
		return written, schema.PushResult{Status: schema.PushMerged, Version: written.Version, Record: envelopeOf(written)}, nil
	}
	return written, schema.PushResult{Status: schema.PushApplied, Version: written.Version}, nil
}

// history returns cur's history with rev added, at most historyDepth
// long. Data is kept only where merges need it.
func (w *writer) history(c schema.Collection, cur *Record, rev Revision, data json.RawMessage) []Revision {
	var h []Revision
	if cur != nil {
		h = append(h, cur.History...)
	}
	if mergeable[c] {
		rev.Data = data
	}
	h = append(h, rev)
	if len(h) > w.e.historyDepth {
		h = h[len(h)-w.e.historyDepth:]
	}
	return h
}

func (w *writer) delete(ctx context.Context, m schema.Mutation, cur *Record, visible bool) (schema.PushResult, error) {
	switch {
	case cur == nil || !visible:
		return schema.PushResult{}, noSuchRecord()
	case cur.Deleted || m.BaseVersion != cur.Version:
		return conflict(cur, true)
	case !schema.CanWrite(w.p, schema.OpDelete, m.Collection, factsOf(cur)):
		return schema.PushResult{}, rejection(schema.CodeForbidden, "", "the caller may not delete this %s", singular(m.Collection))
	}
	next := &Record{
		Collection: m.Collection, ID: m.ID, Version: cur.Version + 1, Deleted: true,
		UpdatedAt: w.e.now().UTC(), UpdatedBy: w.p.UserID, Tokens: cur.Tokens,
		Refs: slices.DeleteFunc(slices.Clone(cur.Refs), isOpenVisitRef),
	}
	next.History = w.history(m.Collection, cur, Revision{Version: next.Version, MutationID: m.MutationID, UserID: w.p.UserID}, nil)
	if err := w.audit(AuditDelete, cur, next); err != nil {
		return schema.PushResult{}, err
	}
	if err := w.put(ctx, next, cur.Version); err != nil {
		return schema.PushResult{}, err
	}
	return schema.PushResult{Status: schema.PushApplied, Version: next.Version}, nil
}

// dependents names, by the kind of record a ref names, the collections
// whose read tokens derive from it: a customer's visits, orders and price
// lists take its territory, a visit's photos take the visit's (an order
// refers to its visit too, but takes its tokens from the customer).
var dependents = map[string][]schema.Collection{
	"customer": {schema.Visits, schema.Orders, schema.PriceLists},
	"visit":    {schema.Photos},
}

// restampDependents gives the records that depend on a changed record
// (visits, orders and price lists of a customer; photos of those visits)
// the read tokens they have now, at a new seq and the same version, so
// that pulls add them for whoever gained them and remove them for whoever
// lost them.
func (w *writer) restampDependents(ctx context.Context, ref string) error {
	kind, _, _ := strings.Cut(ref, ":")
	for _, c := range dependents[kind] {
		for after := ""; ; {
			page, err := w.tx.RecordsByRef(ctx, c, ref, after, 200)
			if err != nil {
				return err
			}
			for _, r := range page {
				if err := w.restamp(ctx, r); err != nil {
					return err
				}
			}
			if len(page) < 200 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	return nil
}

func (w *writer) restamp(ctx context.Context, r *Record) error {
	if r.Deleted {
		return nil
	}
	rec, err := schema.Decode(r.Collection, r.Data)
	if err != nil {
		return fmt.Errorf("stored %s %s does not decode: %w", r.Collection, r.ID, err)
	}
	d, err := w.rederiver().derive(ctx, r.Collection, r.ID, rec, rec)
	if err != nil {
		return fmt.Errorf("restamp %s %s: %w", r.Collection, r.ID, err)
	}
	tokens := schema.RecordTokens(r.Collection, d.facts)
	if slices.Equal(tokens, r.Tokens) {
		return nil
	}
	next := *r
	next.Tokens, next.Facts = tokens, d.report
	if err := w.put(ctx, &next, r.Version); err != nil {
		return err
	}
	if r.Collection == schema.Visits {
		return w.restampDependents(ctx, "visit:"+r.ID)
	}
	return nil
}

// factsOf reads a stored record's facts back from its read tokens.
func factsOf(r *Record) schema.Facts {
	prefix := string(r.Collection) + "|"
	var f schema.Facts
	for _, t := range r.Tokens {
		kind, value, _ := strings.Cut(strings.TrimPrefix(t, prefix), ":")
		switch kind {
		case "terr":
			f.Territories = append(f.Territories, value)
		case "own":
			f.Owner = value
		case "dist":
			f.Distributor = value
		}
	}
	return f
}

// afterWrite turns any error met after a record was written into one that
// fails the push rather than refusing the mutation: a refusal says that
// nothing was written.
func afterWrite(err error) error {
	var se *schema.Error
	if errors.As(err, &se) {
		return fmt.Errorf("after the write: %s", se.Error())
	}
	return err
}
