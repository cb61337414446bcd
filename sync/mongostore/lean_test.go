package mongostore

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// rawRecord returns the record document of c/id as stored.
func rawRecord(t *testing.T, s *Store, c schema.Collection, id string) recordDoc {
	t.Helper()
	var d recordDoc
	require.NoError(t, findOne(context.Background(), "test", s.records, bson.M{"_id": recordKey(c, id)}, nil, &d))
	return d
}

// rawAudit returns the audit collection's entry with key, as stored.
func rawAudit(t *testing.T, s *Store, key string) auditDoc {
	t.Helper()
	var d auditDoc
	require.NoError(t, findOne(context.Background(), "test", s.audit, bson.M{"_id": key}, nil, &d))
	return d
}

// readRecord returns the record c/id.
func readRecord(ctx context.Context, s *Store, c schema.Collection, id string) (r *sync.Record, err error) {
	err = s.View(ctx, func(tx sync.RecordTx) error {
		r, err = tx.Record(ctx, c, id)
		return err
	})
	return r, err
}

// rawAuditFields returns the names of the fields of each audit entry
// embedded in the document of c/id, as stored.
func rawAuditFields(t *testing.T, s *Store, c schema.Collection, id string) [][]string {
	t.Helper()
	var d struct {
		Audit []bson.D `bson:"audit"`
	}
	require.NoError(t, findOne(context.Background(), "test", s.records, bson.M{"_id": recordKey(c, id)}, nil, &d))
	var out [][]string
	for _, e := range d.Audit {
		var names []string
		for _, f := range e {
			names = append(names, f.Key)
		}
		out = append(out, names)
	}
	return out
}

// trail returns the record's audit entries by version, as AuditEntries
// answers them.
func trail(t *testing.T, s *Store, c schema.Collection, id string) map[int64]sync.AuditEntry {
	t.Helper()
	entries, err := s.AuditEntries(context.Background(), sync.AuditQuery{Collection: c, ID: id, Limit: 100})
	require.NoError(t, err)
	out := map[int64]sync.AuditEntry{}
	for _, e := range entries {
		out[e.Version] = e
	}
	return out
}

// creationOf is the changes of creating c/id as its document holds its
// data now.
func creationOf(t *testing.T, s *Store, c schema.Collection, id string) map[string]sync.FieldChange {
	t.Helper()
	d := rawRecord(t, s, c, id)
	require.NotNil(t, d.Data)
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(*d.Data), &fields))
	out := map[string]sync.FieldChange{}
	for k, v := range fields {
		out[k] = sync.FieldChange{From: json.RawMessage("null"), To: v}
	}
	return out
}

// leanBed is an engine on a fresh store with territory t-1.
func leanBed(t *testing.T) (*Store, *sync.Engine) {
	t.Helper()
	s, eng, _ := countedStore(t)
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})})
	return s, eng
}

// The current revision of a record's history marks its data and writer
// instead of copying them; the record reads back with its history whole,
// and a merge finds its base after the record moved on.
func TestHistoryKeepsCurrentDataOnce(t *testing.T) {
	s, eng := leanBed(t)
	ctx := context.Background()
	created := roundTripCustomer(1, "Ana's")
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "m-1", schema.Customers, "c-1", 0, created)})

	d := rawRecord(t, s, schema.Customers, "c-1")
	require.Len(t, d.History, 1)
	assert.Equal(t, revisionDoc{Version: 1, MutationID: "m-1", Current: true, Writer: true}, d.History[0],
		"the only revision holds neither the data nor the user again")
	r, err := readRecord(ctx, s, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.JSONEq(t, *d.Data, string(r.History[0].Data))
	assert.Equal(t, rtAdmin.UserID, r.History[0].UserID)

	renamed := roundTripCustomer(1, "Ana's, renamed")
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "m-2", schema.Customers, "c-1", 1, renamed)})
	d = rawRecord(t, s, schema.Customers, "c-1")
	require.Len(t, d.History, 2)
	assert.NotEmpty(t, d.History[0].Data, "a past revision keeps its own data")
	assert.False(t, d.History[0].Current)
	assert.True(t, d.History[1].Current)

	// A rep who saw version 1 changes the grade: merged over version 1's
	// data, which was the current data when it was written.
	regraded := roundTripCustomer(1, "Ana's")
	regraded["grade"] = "A"
	rep := schema.Principal{UserID: "u-rep2", Role: schema.RoleAdmin}
	resp, err := eng.Push(ctx, rep, &schema.PushRequest{DeviceID: "d-2", Mutations: []json.RawMessage{mutationOf(t, "m-3", schema.Customers, "c-1", 1, regraded)}})
	require.NoError(t, err)
	require.Equal(t, schema.PushMerged, resp.Results[0].Status, "%+v", resp.Results[0])
	r, err = readRecord(ctx, s, schema.Customers, "c-1")
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(r.Data, &got))
	assert.Equal(t, "Ana's, renamed", got["name"], "the other write's change stays")
	assert.Equal(t, "A", got["grade"], "the merged change is kept")
	assert.Equal(t, []string{rtAdmin.UserID, rtAdmin.UserID, rep.UserID}, []string{r.History[0].UserID, r.History[1].UserID, r.History[2].UserID})
}

// An applied answer is stored as its version and replays byte for byte;
// any other answer keeps its body.
func TestAnswersKeepTheirBody(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	applied := json.RawMessage(`{"mutation_id":"m/1","status":"applied","version":3}`)
	conflict := json.RawMessage(`{"mutation_id":"m-2","status":"conflict","record":{"collection":"customers","id":"c-1","version":4,"deleted":false,"updated_at":"2026-11-23T08:00:00Z","updated_by":"u-3","data":{"name":"x"}}}`)
	spaced := json.RawMessage(`{"mutation_id":"m-3", "status":"applied","version":1}`)
	answers := []*sync.Answer{
		{UserID: "u-1", MutationID: "m/1", Body: applied, At: at},
		{UserID: "u-1", MutationID: "m-2", Body: conflict, At: at},
		{UserID: "u-1", MutationID: "m-3", Body: spaced, At: at},
	}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		for _, a := range answers {
			require.NoError(t, tx.SaveAnswer(ctx, a))
		}
		return nil
	}))
	var raw answerDoc
	require.NoError(t, findOne(ctx, "test", s.answers, bson.M{"_id": "u-1/m/1"}, nil, &raw))
	assert.Equal(t, answerDoc{Key: "u-1/m/1", Version: 3, At: at.UnixNano()}, raw, "an applied answer is its version")

	var got map[string]*sync.Answer
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) (err error) {
		got, err = tx.Answers(ctx, "u-1", []string{"m/1", "m-2", "m-3", "m-4"})
		return err
	}))
	require.Len(t, got, 3)
	for _, a := range answers {
		assert.Equal(t, string(a.Body), string(got[a.MutationID].Body), a.MutationID)
		assert.Equal(t, a.UserID, got[a.MutationID].UserID, a.MutationID)
		assert.True(t, a.At.Equal(got[a.MutationID].At), a.MutationID)
	}
}

// A creation's audit entry refers to the record's data while the record
// holds it, and reads as the full creation all along: after the record
// moves on, and after the entry has left the record's document.
func TestCreationEntryByReference(t *testing.T) {
	s, eng := leanBed(t)
	created := roundTripCustomer(1, "Ana's")
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "m-1", schema.Customers, "c-1", 0, created)})
	key := auditKeyOf(recordKey(schema.Customers, "c-1"), 1)

	assert.Equal(t, byReference, rawRecord(t, s, schema.Customers, "c-1").Audit[0].Changes, "the record's own creation entry")
	assert.Equal(t, [][]string{{"at", "user_id", "device_id", "action", "version", "changes", "territories"}}, rawAuditFields(t, s, schema.Customers, "c-1"),
		"an embedded entry leaves out the key, collection and id it shares with its record")
	assert.Equal(t, key, rawRecord(t, s, schema.Customers, "c-1").Audit[0].Key, "and reads back with them")
	assert.Equal(t, byReference, rawAudit(t, s, key).Changes, "the projected entry")
	want := creationOf(t, s, schema.Customers, "c-1")
	assert.Equal(t, want, trail(t, s, schema.Customers, "c-1")[1].Changes)

	for v := int64(1); v <= 5; v++ {
		push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, fmt.Sprintf("m-%d", v+1), schema.Customers, "c-1", v, roundTripCustomer(1, fmt.Sprintf("Ana's %d", v)))})
		assert.Equal(t, want, trail(t, s, schema.Customers, "c-1")[1].Changes, "after version %d", v+1)
		for _, e := range rawRecord(t, s, schema.Customers, "c-1").Audit {
			if e.Version < v+1 {
				assert.NotEqual(t, byReference, e.Changes, "version %d's entry in version %d's document", e.Version, v+1)
			}
		}
	}
	d := rawRecord(t, s, schema.Customers, "c-1")
	assert.NotContains(t, auditKeys(d.Audit), key, "the creation's entry has left the record's document")
	assert.NotEqual(t, byReference, rawAudit(t, s, key).Changes, "and is kept in full in the audit collection")

	// A creation that a later write of the same unit overwrites is kept in
	// full: its data was never stored.
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "m-19", schema.Customers, "c-0", 0, roundTripCustomer(2, "Bo"))})
	bo := creationOf(t, s, schema.Customers, "c-0")
	push(t, eng, rtAdmin, []json.RawMessage{
		mutationOf(t, "m-20", schema.Customers, "c-2", 0, roundTripCustomer(2, "Bo")),
		mutationOf(t, "m-21", schema.Customers, "c-2", 1, roundTripCustomer(2, "Bo, renamed")),
	})
	assert.Equal(t, bo, trail(t, s, schema.Customers, "c-2")[1].Changes)
}

func auditKeys(docs []auditDoc) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.Key)
	}
	return out
}

// oldShape rewrites the record documents and answers of s as the store
// wrote them before they were lean: history with every revision's data
// and user, creations' audit entries in full, answers with their user,
// mutation and body.
func oldShape(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	cur, err := s.records.Find(ctx, bson.M{})
	require.NoError(t, err)
	var docs []recordDoc
	require.NoError(t, cur.All(ctx, &docs))
	for _, d := range docs {
		r := d.record()
		old := bson.M{}
		raw, err := bson.Marshal((*plainRecordDoc)(&d)) // audit entries with their keys
		require.NoError(t, err)
		require.NoError(t, bson.Unmarshal(raw, &old))
		history := bson.A{}
		for _, h := range r.History {
			history = append(history, bson.M{"v": h.Version, "m": h.MutationID, "u": h.UserID, "d": string(h.Data)})
		}
		old["history"] = history
		old["audit"] = newAuditDocs(r.Audit)
		_, err = s.records.ReplaceOne(ctx, bson.M{"_id": d.Key}, old)
		require.NoError(t, err)
	}
	cur, err = s.answers.Find(ctx, bson.M{})
	require.NoError(t, err)
	var answers []answerDoc
	require.NoError(t, cur.All(ctx, &answers))
	for _, d := range answers {
		a, err := d.answer()
		require.NoError(t, err)
		_, err = s.answers.ReplaceOne(ctx, bson.M{"_id": d.Key}, bson.M{"user": a.UserID, "mutation": a.MutationID, "body": string(a.Body), "at": d.At})
		require.NoError(t, err)
	}
	// The projection as it was: every entry in full.
	cur, err = s.audit.Find(ctx, bson.M{"changes": byReference})
	require.NoError(t, err)
	var refs []auditDoc
	require.NoError(t, cur.All(ctx, &refs))
	require.NoError(t, s.resolveByReference(ctx, refs))
	require.NoError(t, s.projectFull(ctx, refs))
}

// Documents written before the store was lean read as they did, replay
// their answers, merge from their history, and are written lean when
// their record is next written: the store reads both shapes and migrates
// nothing at open.
func TestOldShapeDocumentsRead(t *testing.T) {
	s, eng := leanBed(t)
	ctx := context.Background()
	created := roundTripCustomer(1, "Ana's")
	first := []json.RawMessage{mutationOf(t, "m-1", schema.Customers, "c-1", 0, created)}
	push(t, eng, rtAdmin, first)
	creation := creationOf(t, s, schema.Customers, "c-1")
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "m-2", schema.Customers, "c-1", 1, roundTripCustomer(1, "Ana's, renamed"))})
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "m-3", schema.Customers, "c-3", 0, roundTripCustomer(3, "Cy"))})
	before, err := readRecord(ctx, s, schema.Customers, "c-1")
	require.NoError(t, err)
	trailBefore := trail(t, s, schema.Customers, "c-3")

	oldShape(t, s)
	old := rawRecord(t, s, schema.Customers, "c-1")
	require.Equal(t, *old.Data, old.History[1].Data, "the rewritten document repeats its data")
	require.NotEqual(t, byReference, rawRecord(t, s, schema.Customers, "c-3").Audit[0].Changes)
	require.Contains(t, rawAuditFields(t, s, schema.Customers, "c-3")[0], "_id", "old entries carry their keys")
	require.NotEqual(t, byReference, rawAudit(t, s, auditKeyOf(recordKey(schema.Customers, "c-3"), 1)).Changes)

	after, err := readRecord(ctx, s, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.Equal(t, before, after, "an old document reads as it did")
	assert.Equal(t, trailBefore, trail(t, s, schema.Customers, "c-3"))

	// The first push again is answered from its stored answer.
	resp, err := eng.Push(ctx, rtAdmin, &schema.PushRequest{DeviceID: "d-1", Mutations: first})
	require.NoError(t, err)
	assert.Equal(t, schema.PushResult{MutationID: "m-1", Status: schema.PushApplied, Version: 1}, resp.Results[0])

	// A merge over the old history, then the document is lean.
	regraded := roundTripCustomer(1, "Ana's")
	regraded["grade"] = "A"
	resp, err = eng.Push(ctx, rtAdmin, &schema.PushRequest{DeviceID: "d-1", Mutations: []json.RawMessage{mutationOf(t, "m-4", schema.Customers, "c-1", 1, regraded)}})
	require.NoError(t, err)
	require.Equal(t, schema.PushMerged, resp.Results[0].Status, "%+v", resp.Results[0])
	d := rawRecord(t, s, schema.Customers, "c-1")
	assert.True(t, d.History[2].Current)
	assert.Empty(t, d.History[2].Data)
	for v, e := range trail(t, s, schema.Customers, "c-1") {
		assert.NotNil(t, e.Changes, "version %d", v)
	}
	assert.Equal(t, creation, trail(t, s, schema.Customers, "c-1")[1].Changes)
}
