package sync_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// The wire shapes of the targets, daily and credit reports, the audit
// trail, a split and an import, pinned by golden files in
// testdata/reports (FIELDSYNC_UPDATE_GOLDEN=1 rewrites them). The numbers
// are checked by hand in sync/storetest; these pin field names and types.
func TestPlansGolden(t *testing.T) {
	e := newEnv(t)
	seed(e)
	ctx := context.Background()
	e.OK("admin", storetest.Up(schema.Customers, "c-9", 0, storetest.With(customer("t-1", "A"), "code", "C-9", "credit_limit", 1000, "open_balance", 900)))
	split, err := e.Engine.SplitTargets(ctx, e.Users["mgr"], &sync.SplitRequest{RepID: "u-rep1", Year: 2026, OrderAmount: 1200, Visits: 24})
	require.NoError(t, err)
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, storetest.With(visit("c-1", 52.52, 13.405), "check_out",
		map[string]any{"at": "2026-11-23T09:30:00Z", "lat": 52.52, "lng": 13.405})))
	e.OK("rep1", storetest.Up(schema.Orders, "o-1", 0, order("c-1", "submitted", line("p-1", 2, 250))))
	e.OK("mgr", storetest.Up(schema.Orders, "o-1", 1, order("c-1", "confirmed", line("p-1", 2, 250))))
	e.OK("rep1", storetest.Up(schema.Orders, "o-2", 0, order("c-9", "submitted", line("p-1", 1, 250))))

	reports := report.New(e.Store, func() time.Time { return e.Now })
	daily, err := reports.Daily(ctx, e.Users["mgr"], "2026-11-23", "", "", time.UTC)
	require.NoError(t, err)
	targets, err := reports.Targets(ctx, e.Users["rep1"], "2026-10", "2026-12", "", "", time.UTC)
	require.NoError(t, err)
	credit, err := reports.Credit(ctx, e.Users["mgr"], 0.5, "")
	require.NoError(t, err)
	audit, err := e.Engine.Audit(ctx, e.Users["admin"], sync.AuditRequest{Collection: "orders", Limit: 2})
	require.NoError(t, err)
	imported, err := e.Engine.Import(ctx, e.Users["admin"], schema.Products, strings.NewReader("sku,name,unit,price,active\nS1,Soap,each,260,true\nS2,Mop,each,x,true\n"),
		sync.ImportOptions{SkipInvalid: true})
	require.NoError(t, err)

	for name, got := range map[string]any{
		"split-first-month.json": split.Targets[0], "daily-manager.json": daily, "targets-rep.json": targets,
		"credit-manager.json": credit, "audit-orders.json": audit, "import-products.json": imported,
	} {
		if os.Getenv("FIELDSYNC_UPDATE_GOLDEN") != "" {
			raw, err := json.MarshalIndent(got, "", "  ")
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join("testdata", "reports", name), append(raw, '\n'), 0o644))
		}
		golden(t, name, got)
	}
}

// golden compares got, as JSON, with testdata/reports/name.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", "reports", name))
	require.NoError(t, err)
	raw, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(raw), name)
}
