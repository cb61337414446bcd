package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

// testPlans runs the targets, daily and credit scenarios through an
// engine on the store, so that what the engine writes and the store's
// report queries are checked together.
func testPlans(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("CreditHolds", func(t *testing.T) { testCreditHolds(t, newPlansBed(t, newStore(t))) })
	t.Run("CreditHoldsWithinAPush", func(t *testing.T) { testCreditHoldsWithinAPush(t, newPlansBed(t, newStore(t))) })
	t.Run("TargetScope", func(t *testing.T) { testTargetScope(t, newPlansBed(t, newStore(t))) })
	t.Run("TargetsReport", func(t *testing.T) { testTargetsReport(t, newPlansBed(t, newStore(t))) })
	t.Run("DailyReport", func(t *testing.T) { testDailyReport(t, newPlansBed(t, newStore(t))) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newPlansBed(t, newStore(t))) })
	t.Run("WrittenTwiceInAPush", func(t *testing.T) { testWrittenTwiceInAPush(t, newPlansBed(t, newStore(t))) })
	t.Run("AuditEvents", func(t *testing.T) { testAuditEvents(t, newStore(t)) })
	t.Run("Import", func(t *testing.T) { testImport(t, newPlansBed(t, newStore(t))) })
}

// newPlansBed is a bed with mgr2, a manager of t-2, whose store holds two
// territories, a product and customers with credit limits: in t-1 c-1
// (limit 100000, owes nothing), c-3 (no limit) and c-low (limit 1000, owes
// 600); in t-2 c-2 (limit 5000, owes 4500).
func newPlansBed(t *testing.T, s Store) *Bed {
	b := NewBed(t, s)
	b.AddUser("mgr2", schema.RoleManager, "", "t-2")
	b.OK("admin",
		Up(schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"}),
		Up(schema.Territories, "t-2", 0, map[string]any{"name": "South", "region": "EU"}),
		Up(schema.Products, "p-1", 0, map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": 250, "active": true}),
		Up(schema.Customers, "c-1", 0, shop("C-1", "t-1", 52.52, 100000, 0)),
		Up(schema.Customers, "c-3", 0, shop("C-3", "t-1", 52.53, 0, 0)),
		Up(schema.Customers, "c-low", 0, shop("C-LOW", "t-1", 52.52, 1000, 600)),
		Up(schema.Customers, "c-2", 0, shop("C-2", "t-2", 48.1, 5000, 4500)),
	)
	return b
}

func shop(code, territory string, lat float64, limit, balance int64) map[string]any {
	return map[string]any{"code": code, "name": "Shop " + code, "territory_id": territory, "grade": "A",
		"lat": lat, "lng": 13.405, "credit_limit": limit, "open_balance": balance}
}

func order(customer, status string, qty int) map[string]any {
	return map[string]any{"customer_id": customer, "status": status,
		"lines": []map[string]any{{"product_id": "p-1", "quantity": qty, "unit_price": 250}}}
}

// testCreditHoldsWithinAPush: the orders earlier in a push count in the
// exposure of later ones as they stand when each is written. c-1 has a
// limit of 100000 and owes nothing.
func testCreditHoldsWithinAPush(t *testing.T, b *Bed) {
	res := b.Push("admin",
		Up(schema.Orders, "o-a", 0, order("c-1", "submitted", 200)), // 50000
		Up(schema.Orders, "o-b", 0, order("c-1", "submitted", 200)), // 100000: at the limit, not over
		Up(schema.Orders, "o-c", 0, order("c-1", "submitted", 1)),   // 100250: held
		Up(schema.Orders, "o-a", 1, order("c-1", "cancelled", 200)), // leaves the exposure
		Up(schema.Orders, "o-d", 0, order("c-1", "submitted", 1)),   // 50000 + 250 + 250
	)
	for i, r := range res {
		require.Equal(t, schema.PushApplied, r.Status, "mutation %d: %+v", i, r)
	}
	want := map[string]string{"o-a": "cancelled", "o-b": "submitted", "o-c": "credit_hold", "o-d": "submitted"}
	for id, status := range want {
		_, o := b.Record(schema.Orders, id)
		assert.Equal(t, status, o["status"], id)
	}
	_, oc := b.Record(schema.Orders, "o-c")
	assert.Equal(t, 100000.0, oc["hold_reason"].(map[string]any)["open_orders"])
}

// testCreditHolds: c-low has a limit of 1000 and owes 600; orders are 250
// a unit.
func testCreditHolds(t *testing.T, b *Bed) {
	b.OK("rep1", Up(schema.Orders, "o-draft", 0, order("c-low", "draft", 10))) // a draft is not checked
	b.OK("rep1", Up(schema.Orders, "o-1", 0, order("c-low", "submitted", 1)))  // 600 + 250 = 850
	_, o1 := b.Record(schema.Orders, "o-1")
	assert.Equal(t, "submitted", o1["status"])
	assert.Nil(t, o1["hold_reason"])

	res := b.Push("rep1", Up(schema.Orders, "o-2", 0, order("c-low", "submitted", 1))) // 600 + 250 + 250 = 1100
	require.Equal(t, schema.PushApplied, res[0].Status, "an order over the limit is taken, not refused: %+v", res[0])
	_, o2 := b.Record(schema.Orders, "o-2")
	assert.Equal(t, "credit_hold", o2["status"])
	assert.Equal(t, map[string]any{"code": "credit_limit_exceeded",
		"message":      "open balance 600 + open orders 250 + this order 250 = 1100 is above the credit limit 1000 by 100 (minor units)",
		"credit_limit": 1000.0, "open_balance": 600.0, "open_orders": 250.0, "order_total": 250.0, "exposure": 1100.0, "over": 100.0},
		o2["hold_reason"])

	// Submitting the draft: 600 + 250 + 250 (on hold counts) + 2500.
	b.OK("rep1", Up(schema.Orders, "o-draft", 1, order("c-low", "submitted", 10)))
	_, od := b.Record(schema.Orders, "o-draft")
	assert.Equal(t, "credit_hold", od["status"])
	assert.Equal(t, 3600.0, od["hold_reason"].(map[string]any)["exposure"])

	// Who may move a held order where.
	moves := []struct {
		name, user, id, to string
		version            int64
		want               string
	}{
		{"a rep may not approve", "rep1", "o-2", "confirmed", 1, schema.CodeInvalidTransition},
		{"a rep may not put back to submitted", "rep1", "o-2", "submitted", 1, schema.CodeInvalidTransition},
		{"no one sets credit_hold by hand", "admin", "o-1", "credit_hold", 1, schema.CodeInvalidTransition},
		{"another region's manager may not approve (nor see it)", "mgr2", "o-2", "confirmed", 1, schema.CodeNotFound},
		{"the territory's manager approves", "mgr", "o-2", "confirmed", 1, ""},
		{"the placer cancels its held order", "rep1", "o-draft", "cancelled", 2, ""},
	}
	for _, m := range moves {
		t.Run(m.name, func(t *testing.T) {
			qty := 1
			if m.id == "o-draft" {
				qty = 10
			}
			res := b.Push(m.user, Up(schema.Orders, m.id, m.version, order("c-low", m.to, qty)))[0]
			if m.want == "" {
				require.Equal(t, schema.PushApplied, res.Status, "%+v", res)
				_, got := b.Record(schema.Orders, m.id)
				assert.Equal(t, m.to, got["status"])
				assert.NotNil(t, got["hold_reason"], "the reason stays after the hold is released")
				return
			}
			require.Equal(t, schema.PushRejected, res.Status, "%+v", res)
			assert.Equal(t, m.want, res.Error.Code)
		})
	}

	t.Run("credit report", func(t *testing.T) {
		// c-low: 600 + o-1 250 (submitted) + o-2 250 (confirmed) = 1100 of 1000;
		// o-draft is cancelled. c-1: nothing open, 0 of 100000. c-3 has no
		// limit. c-2 (t-2): 4500 of 5000.
		b.OK("rep1", Up(schema.Orders, "o-c1", 0, order("c-1", "submitted", 4))) // 1000 of 100000
		b.OK("admin", Up(schema.Orders, "o-c1b", 0, order("c-1", "submitted", 2)))
		_, c1b := b.Record(schema.Orders, "o-c1b")
		require.Equal(t, "submitted", c1b["status"])
		for _, to := range []string{"confirmed", "shipped", "delivered"} { // delivered leaves exposure
			v, _ := b.Record(schema.Orders, "o-c1b")
			b.OK("admin", Up(schema.Orders, "o-c1b", v, order("c-1", to, 2)))
		}
		row := func(id, name, terr string, limit, balance, open, exposure int64, ratio float64, held int) *report.CreditRow {
			return &report.CreditRow{CustomerID: id, Name: name, TerritoryID: terr, CreditLimit: limit, OpenBalance: balance,
				OpenOrders: open, Exposure: exposure, Ratio: ratio, OrdersOnHold: held}
		}
		low := row("c-low", "Shop C-LOW", "t-1", 1000, 600, 500, 1100, 1.1, 0)
		c2 := row("c-2", "Shop C-2", "t-2", 5000, 4500, 0, 4500, 0.9, 0)
		c1 := row("c-1", "Shop C-1", "t-1", 100000, 0, 1000, 1000, 0.01, 0)
		tests := []struct {
			name, user, territory string
			min                   float64
			want                  []*report.CreditRow
		}{
			{"admin at 0.8", "admin", "", 0.8, []*report.CreditRow{low, c2}},
			{"admin at 0", "admin", "", 0, []*report.CreditRow{low, c2, c1}},
			{"manager sees its territories only", "mgr", "", 0, []*report.CreditRow{low, c1}},
			{"admin narrowed to t-2", "admin", "t-2", 0, []*report.CreditRow{c2}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := b.Reports.Credit(context.Background(), b.Users[tt.user], tt.min, tt.territory)
				require.NoError(t, err)
				assert.Equal(t, tt.want, got.Customers)
			})
		}
		// A held order counts in the exposure and the held count.
		b.OK("rep1", Up(schema.Orders, "o-3", 0, order("c-low", "submitted", 1)))
		got, err := b.Reports.Credit(context.Background(), b.Users["mgr"], 1, "")
		require.NoError(t, err)
		assert.Equal(t, []*report.CreditRow{row("c-low", "Shop C-LOW", "t-1", 1000, 600, 750, 1350, 1.35, 1)}, got.Customers)
		_, err = b.Reports.Credit(context.Background(), b.Users["rep1"], 0, "")
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code, "reps do not read the credit report")
		_, err = b.Reports.Credit(context.Background(), b.Users["mgr"], 0, "t-2")
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
	})
}

func target(rep, month string, amount, visits int64, locked bool) map[string]any {
	return map[string]any{"rep_id": rep, "month": month, "order_amount": amount, "visits": visits, "locked": locked}
}

func testTargetScope(t *testing.T, b *Bed) {
	ctx := context.Background()
	split := func(user, rep string, amount int64) error {
		_, err := b.Engine.SplitTargets(ctx, b.Users[user], &sync.SplitRequest{RepID: rep, Year: 2027, OrderAmount: amount, Visits: 120})
		return err
	}
	require.NoError(t, split("mgr", "u-rep1", 1200))
	v, jan := b.Record(schema.Targets, "tgt-u-rep1-2027-01")
	assert.Equal(t, int64(1), v)
	assert.Equal(t, 100.0, jan["order_amount"])

	refusals := []struct {
		name string
		err  error
		code string
	}{
		{"a manager may not set another region's targets", split("mgr", "u-rep2", 1200), schema.CodeForbidden},
		{"a rep may not split", split("rep1", "u-rep1", 1200), schema.CodeForbidden},
		{"not a rep", split("admin", "u-mgr", 1200), schema.CodeValidationFailed},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			require.Error(t, r.err)
			assert.Equal(t, r.code, schema.AsError(r.err).Code)
		})
	}
	pushes := []struct {
		name, user string
		mut        Mut
		code       string
	}{
		{"a rep may not set its own target", "rep1", Up(schema.Targets, "tgt-u-rep1-2027-02", 1, target("u-rep1", "2027-02", 1, 1, false)), schema.CodeForbidden},
		{"a rep may not create one", "rep1", Up(schema.Targets, "x-1", 0, target("u-rep1", "2028-02", 1, 1, false)), schema.CodeForbidden},
		{"a manager may not write another region's", "mgr", Up(schema.Targets, "x-2", 0, target("u-rep2", "2027-02", 1, 1, false)), schema.CodeForbidden},
		{"a manager may not lock", "mgr", Up(schema.Targets, "tgt-u-rep1-2027-02", 1, target("u-rep1", "2027-02", 100, 10, true)), schema.CodeForbidden},
		{"one target per rep and month", "admin", Up(schema.Targets, "x-3", 0, target("u-rep1", "2027-02", 1, 1, false)), schema.CodeConflict},
		{"month and rep do not change", "admin", Up(schema.Targets, "tgt-u-rep1-2027-02", 1, target("u-rep1", "2029-02", 1, 1, false)), schema.CodeValidationFailed},
		{"a manager may not write another region's rep's (nor see it)", "mgr2", Up(schema.Targets, "tgt-u-rep1-2027-02", 1, target("u-rep1", "2027-02", 5, 5, false)), schema.CodeNotFound},
	}
	for _, p := range pushes {
		t.Run(p.name, func(t *testing.T) {
			res := b.Push(p.user, p.mut)[0]
			require.Equal(t, schema.PushRejected, res.Status, "%+v", res)
			assert.Equal(t, p.code, res.Error.Code)
		})
	}

	t.Run("a locked month", func(t *testing.T) {
		b.OK("admin", Up(schema.Targets, "tgt-u-rep1-2027-03", 1, target("u-rep1", "2027-03", 100, 10, true)))
		err := split("mgr", "u-rep1", 2400)
		require.Error(t, err)
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		v, jan := b.Record(schema.Targets, "tgt-u-rep1-2027-01")
		assert.Equal(t, int64(1), v, "a refused split writes nothing")
		assert.Equal(t, 100.0, jan["order_amount"])
		res := b.Push("mgr", Up(schema.Targets, "tgt-u-rep1-2027-03", 2, target("u-rep1", "2027-03", 5, 5, true)))[0]
		assert.Equal(t, schema.PushRejected, res.Status)
		res = b.Push("mgr", Up(schema.Targets, "tgt-u-rep1-2027-03", 2, target("u-rep1", "2027-03", 5, 5, false)))[0]
		assert.Equal(t, schema.PushRejected, res.Status, "nor unlock")

		got, err := b.Engine.SplitTargets(ctx, b.Users["admin"], &sync.SplitRequest{RepID: "u-rep1", Year: 2027, OrderAmount: 2400, Visits: 12})
		require.NoError(t, err, "an admin may")
		require.Len(t, got.Targets, 12)
		_, mar := b.Record(schema.Targets, "tgt-u-rep1-2027-03")
		assert.Equal(t, map[string]any{"rep_id": "u-rep1", "month": "2027-03", "order_amount": 200.0, "visits": 1.0, "locked": true}, mar)
	})

	t.Run("reps see their own targets on their phones", func(t *testing.T) {
		count := func(user string) int {
			r := Replica{}
			PullAll(t, b.Engine, b.Users[user], "", 100, r)
			n := 0
			for k := range r {
				if strings.HasPrefix(k, "targets/") {
					n++
				}
			}
			return n
		}
		assert.Equal(t, 12, count("rep1"))
		assert.Equal(t, 0, count("rep2"))
		assert.Equal(t, 12, count("mgr"))
		assert.Equal(t, 0, count("mgr2"))
	})
}

// testTargetsReport: rep1's targets are 100000 and 10 visits in each of
// January to April 2027 and 0 after. Its orders, with the instant of
// their submission and what became of them:
//
//	o-a 2027-01-31 23:30Z 30000 confirmed  (Shanghai: 1 Feb)
//	o-b 2027-02-15 12:00Z 20000 delivered
//	o-c 2027-02-10 12:00Z   250 submitted (c-low), not confirmed: not counted
//	o-c2 2027-02-10 12:00Z  250 credit_hold (c-low: 600 + 250 + 250 > 1000): not counted
//	o-d 2027-03-01 02:00Z 10000 cancelled: not counted
//	o-e 2027-03-31 20:00Z 50000 shipped    (Shanghai: 1 Apr)
//	o-f 2027-03-10 12:00Z  7000 submitted, not confirmed: not counted
//
// and its visits: 2027-01-31 20:00Z (Shanghai: 1 Feb), 2027-02-20 10:00Z.
func testTargetsReport(t *testing.T, b *Bed) {
	ctx := context.Background()
	_, err := b.Engine.SplitTargets(ctx, b.Users["admin"], &sync.SplitRequest{RepID: "u-rep1", Year: 2027, OrderAmount: 400000, Visits: 40,
		Weights: []json.Number{"1", "1", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0"}})
	require.NoError(t, err)
	b.OK("admin", Up(schema.Customers, "c-1", 1, shop("C-1", "t-1", 52.52, 10000000, 0)))
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return tm
	}
	place := func(id, customer, when string, qty int, moves ...string) {
		b.Now = at(when)
		b.OK("rep1", Up(schema.Orders, id, 0, order(customer, "submitted", qty)))
		for i, to := range moves {
			b.OK("admin", Up(schema.Orders, id, int64(i+1), order(customer, to, qty)))
		}
	}
	place("o-a", "c-1", "2027-01-31T23:30:00Z", 120, "confirmed")
	place("o-b", "c-1", "2027-02-15T12:00:00Z", 80, "confirmed", "shipped", "delivered")
	place("o-c", "c-low", "2027-02-10T12:00:00Z", 1)
	place("o-c2", "c-low", "2027-02-10T12:00:00Z", 1)
	_, held := b.Record(schema.Orders, "o-c2")
	require.Equal(t, "credit_hold", held["status"])
	place("o-d", "c-1", "2027-03-01T02:00:00Z", 40, "cancelled")
	place("o-e", "c-1", "2027-03-31T20:00:00Z", 200, "confirmed", "shipped")
	place("o-f", "c-1", "2027-03-10T12:00:00Z", 28)
	for i, in := range []string{"2027-01-31T20:00:00Z", "2027-02-20T10:00:00Z"} {
		b.Now = at(in).Add(time.Hour)
		b.OK("rep1", Up(schema.Visits, fmt.Sprintf("v-%d", i), 0, map[string]any{"customer_id": "c-1",
			"check_in":  map[string]any{"at": in, "lat": 52.52, "lng": 13.405},
			"check_out": map[string]any{"at": at(in).Add(30 * time.Minute).Format(time.RFC3339), "lat": 52.52, "lng": 13.405}}))
	}

	f := func(v float64) *float64 { return &v }
	a := func(label string, target, actual, tv, av int64, att *float64) *report.Attainment {
		x := &report.Attainment{TargetOrderAmount: target, ActualOrderAmount: actual, TargetVisits: tv, ActualVisits: av, Attainment: att}
		switch {
		case len(label) == 7 && label[4] == '-' && label[5] != 'Q':
			x.Month = label
		case len(label) == 7:
			x.Quarter = label
		default:
			x.Year = label
		}
		return x
	}
	tests := []struct {
		tz   string
		want *report.RepTargets
	}{
		{"UTC", &report.RepTargets{RepID: "u-rep1",
			Months: []*report.Attainment{
				a("2027-01", 100000, 30000, 10, 1, f(0.3)), a("2027-02", 100000, 20000, 10, 1, f(0.2)),
				a("2027-03", 100000, 50000, 10, 0, f(0.5)), a("2027-04", 100000, 0, 10, 0, f(0)), a("2027-05", 0, 0, 0, 0, nil)},
			Quarters: []*report.Attainment{a("2027-Q1", 300000, 100000, 30, 2, f(0.3333)), a("2027-Q2", 100000, 0, 10, 0, f(0))},
			Year:     a("2027", 400000, 100000, 40, 2, f(0.25))}},
		{"Asia/Shanghai", &report.RepTargets{RepID: "u-rep1",
			Months: []*report.Attainment{
				a("2027-01", 100000, 0, 10, 0, f(0)), a("2027-02", 100000, 50000, 10, 2, f(0.5)),
				a("2027-03", 100000, 0, 10, 0, f(0)), a("2027-04", 100000, 50000, 10, 0, f(0.5)), a("2027-05", 0, 0, 0, 0, nil)},
			Quarters: []*report.Attainment{a("2027-Q1", 300000, 50000, 30, 2, f(0.1667)), a("2027-Q2", 100000, 50000, 10, 0, f(0.5))},
			Year:     a("2027", 400000, 100000, 40, 2, f(0.25))}},
	}
	for _, tt := range tests {
		t.Run(tt.tz, func(t *testing.T) {
			loc, err := time.LoadLocation(tt.tz)
			require.NoError(t, err)
			for _, user := range []string{"admin", "mgr", "rep1"} {
				got, err := b.Reports.Targets(ctx, b.Users[user], "2027-01", "2027-05", "", "u-rep1", loc)
				require.NoError(t, err, user)
				require.Len(t, got.Reps, 1, user)
				assert.Equal(t, tt.want, got.Reps[0], user)
			}
		})
	}
	t.Run("scope", func(t *testing.T) {
		got, err := b.Reports.Targets(ctx, b.Users["mgr2"], "2027-01", "2027-12", "", "", time.UTC)
		require.NoError(t, err)
		require.Len(t, got.Reps, 1)
		assert.Equal(t, "u-rep2", got.Reps[0].RepID, "a manager sees the reps of its territories")
		_, err = b.Reports.Targets(ctx, b.Users["mgr2"], "2027-01", "2027-12", "", "u-rep1", time.UTC)
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		_, err = b.Reports.Targets(ctx, b.Users["rep2"], "2027-01", "2027-12", "", "u-rep1", time.UTC)
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		_, err = b.Reports.Targets(ctx, b.Users["admin"], "2027-05", "2027-01", "", "", time.UTC)
		assert.Equal(t, schema.CodeValidationFailed, schema.AsError(err).Code)
	})
}

// testDailyReport: on 2026-11-23 rep1 plans c-1 and c-3 and visits c-1
// (08:00-08:30 UTC, two photos), c-3 (09:00-09:45, one photo, 0.01° north
// of c-1: 1111.95 m) and c-1 again from 11:00, still open; it submits one
// order of 500, one of 250 it cancels, and keeps a draft.
func testDailyReport(t *testing.T, b *Bed) {
	ctx := context.Background()
	b.OK("admin", Up(schema.RoutePlans, "rp-1", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23", "stops": []map[string]any{
		{"customer_id": "c-1", "position": 0, "status": "planned"}, {"customer_id": "c-3", "position": 1, "status": "planned"}}}))
	b.OK("admin", Up(schema.RoutePlans, "rp-2", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-24", "stops": []map[string]any{
		{"customer_id": "c-1", "position": 0, "status": "planned"}}}))
	visit := func(customer string, lat float64, in, out string) map[string]any {
		v := map[string]any{"customer_id": customer, "check_in": map[string]any{"at": "2026-11-23T" + in + ":00Z", "lat": lat, "lng": 13.405}}
		if out != "" {
			v["check_out"] = map[string]any{"at": "2026-11-23T" + out + ":00Z", "lat": lat, "lng": 13.405}
		}
		return v
	}
	photo := func(visit string, n int) map[string]any {
		return map[string]any{"visit_id": visit, "sha256": fmt.Sprintf("%064x", n), "content_type": "image/jpeg", "size": 1000}
	}
	b.OK("rep1",
		Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, "08:00", "08:30")),
		Up(schema.Photos, "ph-1", 0, photo("v-1", 1)), Up(schema.Photos, "ph-2", 0, photo("v-1", 2)),
		Up(schema.Visits, "v-2", 0, visit("c-3", 52.53, "09:00", "09:45")),
		Up(schema.Photos, "ph-3", 0, photo("v-2", 3)),
		Up(schema.Visits, "v-3", 0, visit("c-1", 52.52, "11:00", "")),
		Up(schema.Orders, "o-1", 0, order("c-1", "submitted", 2)),
		Up(schema.Orders, "o-2", 0, order("c-1", "submitted", 1)),
		Up(schema.Orders, "o-3", 0, order("c-1", "draft", 7)),
	)
	b.OK("rep1", Up(schema.Orders, "o-2", 1, order("c-1", "cancelled", 1)))

	tm := func(s string) *time.Time {
		x, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return &x
	}
	rep1 := &report.RepDay{RepID: "u-rep1", FirstCheckIn: tm("2026-11-23T08:00:00Z"), LastCheckOut: tm("2026-11-23T09:45:00Z"),
		Visits: 3, PlannedStops: 2, VisitedStops: 2, Orders: 1, OrderAmount: 500, Photos: 3, TimeInStoreS: 1800 + 2700, OpenVisits: 1,
		TravelM: 2 * 1111.95} // two hops of 0.01° of latitude
	rep2 := &report.RepDay{RepID: "u-rep2"}
	check := func(t *testing.T, want, got []*report.RepDay) {
		t.Helper()
		require.Len(t, got, len(want))
		for i := range want {
			g := *got[i]
			assert.InDelta(t, want[i].TravelM, g.TravelM, 0.2)
			w := *want[i]
			g.TravelM, w.TravelM = 0, 0
			assert.Equal(t, &w, &g)
		}
	}
	tests := []struct {
		name, user, territory, rep string
		want                       []*report.RepDay
	}{
		{"admin sees every rep", "admin", "", "", []*report.RepDay{rep1, rep2}},
		{"manager sees its territory's reps", "mgr", "", "", []*report.RepDay{rep1}},
		{"a rep sees itself", "rep1", "", "", []*report.RepDay{rep1}},
		{"narrowed to a rep", "admin", "", "u-rep1", []*report.RepDay{rep1}},
		{"narrowed to a territory", "admin", "t-2", "", []*report.RepDay{rep2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.Reports.Daily(ctx, b.Users[tt.user], "2026-11-23", tt.territory, tt.rep, time.UTC)
			require.NoError(t, err)
			check(t, tt.want, got.Reps)
		})
	}
	t.Run("in another zone the day is another", func(t *testing.T) {
		// In UTC-10 the 23rd runs from 10:00Z: only v-3 (open) falls in it,
		// and both orders, submitted at 12:00Z; the plan is the 23rd's.
		loc := time.FixedZone("UTC-10", -10*3600)
		got, err := b.Reports.Daily(ctx, b.Users["rep1"], "2026-11-23", "", "", loc)
		require.NoError(t, err)
		want := &report.RepDay{RepID: "u-rep1", FirstCheckIn: tm("2026-11-23T11:00:00Z"), Visits: 1, PlannedStops: 2, VisitedStops: 1,
			Orders: 1, OrderAmount: 500, OpenVisits: 1}
		check(t, []*report.RepDay{want}, got.Reps)
	})
	t.Run("refusals", func(t *testing.T) {
		_, err := b.Reports.Daily(ctx, b.Users["rep1"], "2026-11-23", "", "u-rep2", time.UTC)
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		_, err = b.Reports.Daily(ctx, b.Users["mgr"], "2026-11-23", "", "u-rep2", time.UTC)
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		_, err = b.Reports.Daily(ctx, b.Users["mgr"], "23.11.2026", "", "", time.UTC)
		assert.Equal(t, schema.CodeValidationFailed, schema.AsError(err).Code)
	})
}
