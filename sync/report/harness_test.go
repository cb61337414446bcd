package report_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// newEnv is a test bed (storetest.Bed: the engine that writes facts and
// the reports that read them) on a fresh SQLite store.
func newEnv(t testing.TB) *storetest.Bed {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	return storetest.NewBed(t, store)
}

func customer(territory, grade string) map[string]any {
	return map[string]any{"code": "C-" + territory, "name": "Shop in " + territory, "territory_id": territory, "grade": grade,
		"lat": 52.52, "lng": 13.405, "credit_limit": 100000}
}

// visit is a visit at customerID checked in at in and out a quarter of an
// hour later, at the customers' place.
func visit(customerID string, in time.Time) map[string]any {
	spot := func(at time.Time) map[string]any {
		return map[string]any{"at": at.Format(time.RFC3339), "lat": 52.52, "lng": 13.405, "accuracy": 8}
	}
	return map[string]any{"customer_id": customerID, "check_in": spot(in), "check_out": spot(in.Add(15 * time.Minute))}
}
