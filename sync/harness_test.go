package sync_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// newEnv is a test bed (storetest.Bed) on a fresh SQLite store.
func newEnv(t testing.TB) *storetest.Bed {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	return storetest.NewBed(t, store)
}

// seed writes two territories, a customer in each, and a product.
func seed(e *storetest.Bed) {
	e.T.Helper()
	e.OK("admin",
		storetest.Up(schema.Territories, "t-1", 0, territory("North")),
		storetest.Up(schema.Territories, "t-2", 0, territory("South")),
		storetest.Up(schema.Customers, "c-1", 0, customer("t-1", "A")),
		storetest.Up(schema.Customers, "c-2", 0, customer("t-2", "B")),
		storetest.Up(schema.Products, "p-1", 0, map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": 250, "active": true}),
	)
}

func territory(name string) map[string]any { return map[string]any{"name": name, "region": "EU"} }

func customer(territory, grade string) map[string]any {
	return map[string]any{"code": "C-" + territory, "name": "Shop in " + territory, "territory_id": territory, "grade": grade,
		"lat": 52.52, "lng": 13.405, "credit_limit": 100000}
}

func visit(customerID string, lat, lng float64) map[string]any {
	return map[string]any{"customer_id": customerID, "check_in": map[string]any{"at": "2026-11-23T09:00:00Z", "lat": lat, "lng": lng, "accuracy": 8}}
}

// data decodes an envelope's data.
func data(t *testing.T, env *schema.Envelope) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(env.Data, &m))
	return m
}
