package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// countRecords counts the live records of a collection an admin may read.
func countRecords(t *testing.T, s sync.Store, c schema.Collection) int {
	t.Helper()
	n := 0
	for key := range Readable(t, s, schema.Principal{Role: schema.RoleAdmin, UserID: "count"}) {
		if strings.HasPrefix(key, string(c)+"/") {
			n++
		}
	}
	return n
}

func testImport(t *testing.T, b *Bed) {
	ctx := context.Background()
	imp := func(c schema.Collection, file string, opt sync.ImportOptions) *sync.ImportResult {
		t.Helper()
		res, err := b.Engine.Import(ctx, b.Users["admin"], c, strings.NewReader(file), opt)
		require.NoError(t, err)
		return res
	}
	// North (t-1) exists: it matches by name.
	terr := "name,region\nNorth,EU\nEast,EU\nWest,US\n"
	res := imp(schema.Territories, terr, sync.ImportOptions{})
	assert.Equal(t, &sync.ImportResult{Created: 2, Unchanged: 1, Errors: []sync.ImportError{}, Written: true}, res)
	res = imp(schema.Territories, terr, sync.ImportOptions{})
	assert.Equal(t, &sync.ImportResult{Unchanged: 3, Errors: []sync.ImportError{}}, res, "the same file twice changes nothing")

	customers := func(rows ...string) string {
		return "code,name,territory_id,grade,credit_limit,contacts.0.name,contacts.0.phone,tags\n" + strings.Join(rows, "\n") + "\n"
	}
	good := []string{
		`K-1,Kiosk One,t-1,A,50000,Ann,+49 1,"[""24h""]"`,
		`K-2,Kiosk Two,t-2,B,0,,,`,
		`C-1,Shop C-1 renamed,t-1,A,100000,,,`, // c-1 exists: its name changes
	}
	before := countRecords(t, b.Store, schema.Customers)
	t.Run("a bad row writes nothing", func(t *testing.T) {
		bad := customers(good[0], `K-3,Kiosk Three,t-1,Z,10,,,`, good[1], `K-4,Kiosk Four,t-9,A,10,,,`, `K-1,Again,t-1,A,1,,,`, good[2])
		res := imp(schema.Customers, bad, sync.ImportOptions{})
		assert.Equal(t, 0, res.Created+res.Updated+res.Unchanged)
		assert.False(t, res.Written)
		assert.Equal(t, []sync.ImportError{
			{Line: 3, Field: "grade", Message: "grade must be one of A, B, C, D"},
			{Line: 5, Field: "territory_id", Message: "territory_id refers to no territory"},
			{Line: 6, Field: "code", Message: `code "K-1" is also on line 2`},
		}, res.Errors)
		assert.Equal(t, before, countRecords(t, b.Store, schema.Customers))
		v, c1 := b.Record(schema.Customers, "c-1")
		assert.Equal(t, int64(1), v)
		assert.Equal(t, "Shop C-1", c1["name"])

		dry := imp(schema.Customers, bad, sync.ImportOptions{DryRun: true, SkipInvalid: true})
		assert.Equal(t, 2, dry.Created)
		assert.Equal(t, 1, dry.Updated)
		assert.Len(t, dry.Errors, 3)
		assert.Equal(t, before, countRecords(t, b.Store, schema.Customers), "a dry run writes nothing")

		skip := imp(schema.Customers, bad, sync.ImportOptions{SkipInvalid: true})
		assert.Equal(t, 2, skip.Created)
		assert.Equal(t, 1, skip.Updated)
		assert.Len(t, skip.Errors, 3)
		assert.Equal(t, before+2, countRecords(t, b.Store, schema.Customers))
	})
	t.Run("the good rows again change nothing", func(t *testing.T) {
		res := imp(schema.Customers, customers(good...), sync.ImportOptions{})
		assert.Equal(t, &sync.ImportResult{Unchanged: 3, Errors: []sync.ImportError{}}, res)
		v, c1 := b.Record(schema.Customers, "c-1")
		assert.Equal(t, int64(2), v)
		assert.Equal(t, "Shop C-1 renamed", c1["name"])
		assert.Equal(t, 52.52, c1["lat"], "fields the file does not name stay")
	})
	t.Run("nested fields and JSON cells", func(t *testing.T) {
		entries, err := b.Store.AuditEntries(ctx, sync.AuditQuery{Collection: schema.Customers, Limit: 100})
		require.NoError(t, err)
		var kiosk map[string]any
		for _, e := range entries {
			if e.Action == "create" && string(e.Changes["code"].To) == `"K-1"` {
				kiosk = map[string]any{"contacts": string(e.Changes["contacts"].To), "tags": string(e.Changes["tags"].To), "by": e.UserID}
			}
		}
		assert.Equal(t, map[string]any{"contacts": `[{"name":"Ann","phone":"+49 1"}]`, "tags": `["24h"]`, "by": "u-admin"}, kiosk,
			"the import's writes are audited like a push")
	})
	t.Run("refusals", func(t *testing.T) {
		_, err := b.Engine.Import(ctx, b.Users["mgr"], schema.Customers, strings.NewReader(customers(good...)), sync.ImportOptions{})
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		_, err = b.Engine.Import(ctx, b.Users["admin"], schema.Orders, strings.NewReader("x\n"), sync.ImportOptions{})
		assert.Equal(t, schema.CodeNotFound, schema.AsError(err).Code)
		_, err = b.Engine.Import(ctx, b.Users["admin"], schema.Customers, strings.NewReader("name,colour\nx,red\n"), sync.ImportOptions{})
		assert.Equal(t, schema.CodeValidationFailed, schema.AsError(err).Code)
		res := imp(schema.Products, "sku,name,unit,price,active\nS9,Mop,each,12.50,true\nS10,Pail,each,300,maybe\n\"S11,x\n", sync.ImportOptions{})
		assert.Equal(t, []sync.ImportError{
			{Line: 2, Field: "price", Message: "price must be a whole number (money in minor units)"},
			{Line: 3, Field: "active", Message: "active must be true or false"},
			{Line: 4, Message: "not valid CSV: extraneous or missing \" in quoted-field"},
		}, res.Errors)
	})
}
