package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

func order(customer, status string, lines ...map[string]any) map[string]any {
	ls := make([]any, len(lines))
	for i, l := range lines {
		ls[i] = l
	}
	return map[string]any{"customer_id": customer, "status": status, "lines": ls}
}

func line(product string, qty, price int) map[string]any {
	return map[string]any{"product_id": product, "quantity": qty, "unit_price": price}
}

func TestOrderPricing(t *testing.T) {
	e := newEnv(t)
	seed(e) // p-1 lists at 250; c-1 in t-1, c-2 in t-2
	e.OK("admin",
		storetest.Up(schema.Products, "p-2", 0, map[string]any{"sku": "S2", "name": "Rice", "unit": "kg", "price": 400, "active": true}),
		storetest.Up(schema.Products, "p-old", 0, map[string]any{"sku": "S3", "name": "Old", "unit": "kg", "price": 100, "active": false}),
		storetest.Up(schema.Customers, "c-3", 0, storetest.With(customer("t-1", "B"), "distributor_id", "d-1")),
		storetest.Up(schema.PriceLists, "pl-c1", 0, map[string]any{"name": "Ana's", "customer_ids": []string{"c-1"},
			"valid_from": "2026-11-01", "valid_to": "2026-12-31",
			"items": []any{map[string]any{"product_id": "p-1", "price": 230}, map[string]any{"product_id": "p-1", "price": 200, "min_quantity": 10}}}),
		storetest.Up(schema.PriceLists, "pl-old", 0, map[string]any{"name": "Summer", "customer_ids": []string{"c-1"},
			"valid_from": "2026-06-01", "valid_to": "2026-08-31", "items": []any{map[string]any{"product_id": "p-2", "price": 1}}}),
		storetest.Up(schema.PriceLists, "pl-d1", 0, map[string]any{"name": "Distributor d-1", "distributor_id": "d-1",
			"items": []any{map[string]any{"product_id": "p-2", "price": 350}}}),
	)
	tests := []struct {
		name      string
		order     map[string]any
		status    schema.PushStatus
		wantPrice []float64
		wantTotal float64
		code      string
	}{
		{"list price", order("c-2", "draft", line("p-1", 2, 250)), schema.PushApplied, []float64{250}, 500, ""},
		{"the customer's list", order("c-1", "draft", line("p-1", 2, 230)), schema.PushApplied, []float64{230}, 460, ""},
		{"a quantity tier", order("c-1", "draft", line("p-1", 12, 200)), schema.PushApplied, []float64{200}, 2400, ""},
		{"an expired list is ignored", order("c-1", "draft", line("p-2", 1, 400)), schema.PushApplied, []float64{400}, 400, ""},
		{"the distributor's list", order("c-3", "draft", line("p-2", 2, 350)), schema.PushApplied, []float64{350}, 700, ""},
		{"a wrong client price is replaced", order("c-1", "draft", line("p-1", 12, 250), line("p-2", 1, 5)), schema.PushMerged, []float64{200, 400}, 2800, ""},
		{"a product no longer sold", order("c-1", "draft", line("p-old", 1, 100)), schema.PushRejected, nil, 0, schema.CodeValidationFailed},
		{"an unknown product", order("c-1", "draft", line("p-none", 1, 100)), schema.PushRejected, nil, 0, schema.CodeValidationFailed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.Push("admin", storetest.Up(schema.Orders, fmt.Sprintf("o-%d", i), 0, tt.order))[0]
			require.Equal(t, tt.status, res.Status, "%+v", res)
			if tt.code != "" {
				assert.Equal(t, tt.code, res.Error.Code)
				return
			}
			_, changes, _ := e.Pull("admin", "")
			var got schema.Order
			for _, ch := range changes {
				if ch.ID == fmt.Sprintf("o-%d", i) {
					require.NoError(t, json.Unmarshal(ch.Data, &got))
				}
			}
			var prices []float64
			for _, l := range got.Lines {
				prices = append(prices, float64(l.UnitPrice))
			}
			assert.Equal(t, tt.wantPrice, prices)
			assert.Equal(t, int64(tt.wantTotal), got.Total)
			if tt.status == schema.PushMerged {
				assert.Equal(t, float64(2800), data(t, res.Record)["total"], "the merged answer carries the priced record")
			}
		})
	}
}

// Each order is priced with the products and price lists as they stand
// when it is written: a push that changes a product or a price list
// prices its later orders with the change, its earlier ones without.
func TestOrdersArePricedAsOfTheirWrite(t *testing.T) {
	e := newEnv(t)
	seed(e) // p-1 lists at 250
	prices := func(id string) []int64 {
		t.Helper()
		_, changes, _ := e.Pull("admin", "")
		for _, ch := range changes {
			if ch.Collection == schema.Orders && ch.ID == id {
				var o schema.Order
				require.NoError(t, json.Unmarshal(ch.Data, &o))
				var out []int64
				for _, l := range o.Lines {
					out = append(out, l.UnitPrice)
				}
				return out
			}
		}
		t.Fatalf("no order %s", id)
		return nil
	}
	soap := func(price int, active bool) map[string]any {
		return map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": price, "active": active}
	}
	list := func(price int) map[string]any {
		return map[string]any{"name": "Ana's", "customer_ids": []string{"c-1"}, "items": []any{map[string]any{"product_id": "p-1", "price": price}}}
	}
	res := e.Push("admin",
		storetest.Up(schema.Orders, "o-1", 0, order("c-1", "draft", line("p-1", 1, 250))),
		storetest.Up(schema.Products, "p-1", 1, soap(300, true)),
		storetest.Up(schema.Orders, "o-2", 0, order("c-1", "draft", line("p-1", 1, 250), line("p-1", 2, 250))),
		storetest.Up(schema.PriceLists, "pl-1", 0, list(180)),
		storetest.Up(schema.Orders, "o-3", 0, order("c-1", "draft", line("p-1", 1, 250))),
		storetest.Up(schema.PriceLists, "pl-1", 1, list(170)),
		storetest.Up(schema.Orders, "o-4", 0, order("c-1", "draft", line("p-1", 1, 250))),
		storetest.Up(schema.Products, "p-1", 2, soap(300, false)),
		storetest.Up(schema.Orders, "o-5", 0, order("c-1", "draft", line("p-1", 1, 250))),
	)
	assert.Equal(t, []string{"applied", "applied", "merged", "applied", "merged", "applied", "merged", "applied", "rejected"}, statuses(res))
	assert.Equal(t, []int64{250}, prices("o-1"), "before the product's new price")
	assert.Equal(t, []int64{300, 300}, prices("o-2"), "after it")
	assert.Equal(t, []int64{180}, prices("o-3"), "after the new price list")
	assert.Equal(t, []int64{170}, prices("o-4"), "after its change")
	assert.Equal(t, "lines[0].product_id", res[8].Error.Field, "the product is no longer sold")

	// The next push prices with what the last one left.
	res = e.Push("rep1", storetest.Up(schema.Orders, "o-6", 0, order("c-1", "draft", line("p-1", 1, 170))))
	assert.Equal(t, schema.PushRejected, res[0].Status, "p-1 is no longer sold: %+v", res[0])
}

// Every status change by every role.
func TestOrderTransitions(t *testing.T) {
	statuses := []string{"draft", "submitted", "confirmed", "shipped", "delivered", "cancelled"}
	allowed := map[string][]string{
		"rep":   {"draft>draft", "draft>submitted", "draft>cancelled", "submitted>cancelled"},
		"dist":  {"draft>draft", "draft>submitted", "draft>cancelled", "submitted>cancelled"},
		"mgr":   {"submitted>confirmed", "submitted>cancelled", "confirmed>shipped", "confirmed>cancelled", "shipped>delivered"},
		"admin": {"draft>draft", "draft>submitted", "draft>cancelled", "submitted>confirmed", "submitted>cancelled", "confirmed>shipped", "confirmed>cancelled", "shipped>delivered"},
	}
	// The path to each status, walked by the admin.
	paths := map[string][]string{
		"draft": nil, "submitted": {"submitted"}, "confirmed": {"submitted", "confirmed"},
		"shipped": {"submitted", "confirmed", "shipped"}, "delivered": {"submitted", "confirmed", "shipped", "delivered"},
		"cancelled": {"cancelled"},
	}
	e := newEnv(t)
	seed(e)
	e.OK("admin", storetest.Up(schema.Customers, "c-d", 0, storetest.With(customer("t-1", "C"), "distributor_id", "d-1")))
	actors := map[string]string{"rep": "rep1", "dist": "dist", "mgr": "mgr", "admin": "admin"}
	n := 0
	for role, user := range actors {
		for _, from := range statuses {
			for _, to := range statuses {
				if from == to && from != "draft" {
					continue
				}
				t.Run(fmt.Sprintf("%s %s>%s", role, from, to), func(t *testing.T) {
					n++
					id := fmt.Sprintf("o-%d", n)
					owner := user
					if role == "mgr" || role == "admin" {
						owner = "rep1"
					}
					cust := "c-1"
					if role == "dist" {
						cust = "c-d"
					}
					e.OK(owner, storetest.Up(schema.Orders, id, 0, order(cust, "draft", line("p-1", 1, 250))))
					v := int64(1)
					for _, s := range paths[from] {
						e.OK("admin", storetest.Up(schema.Orders, id, v, order(cust, s, line("p-1", 1, 250))))
						v++
					}
					res := e.Push(user, storetest.Up(schema.Orders, id, v, order(cust, to, line("p-1", 1, 250))))[0]
					want := false
					for _, a := range allowed[role] {
						want = want || a == from+">"+to
					}
					if want {
						assert.Equal(t, schema.PushApplied, res.Status, "%+v", res)
						return
					}
					require.Equal(t, schema.PushRejected, res.Status, "%+v", res)
					assert.Contains(t, []string{schema.CodeInvalidTransition, schema.CodeForbidden}, res.Error.Code)
				})
			}
		}
	}
	t.Run("created only as draft or submitted", func(t *testing.T) {
		for _, s := range []string{"confirmed", "shipped", "delivered", "cancelled"} {
			res := e.Push("admin", storetest.Up(schema.Orders, "o-new-"+s, 0, order("c-1", s, line("p-1", 1, 250))))[0]
			assert.Equal(t, schema.CodeInvalidTransition, res.Error.Code, s)
		}
	})
	t.Run("a submitted order's lines no longer change", func(t *testing.T) {
		e.OK("rep1", storetest.Up(schema.Orders, "o-lines", 0, order("c-1", "submitted", line("p-1", 1, 250))))
		res := e.Push("rep1", storetest.Up(schema.Orders, "o-lines", 1, order("c-1", "submitted", line("p-1", 3, 250))))[0]
		require.Equal(t, schema.PushRejected, res.Status)
		assert.Equal(t, schema.CodeInvalidTransition, res.Error.Code)
	})
}

// visitAt is a visit of customer c checked in at in and, unless out is
// empty, checked out at out.
func visitAt(c, in, out string) map[string]any {
	v := visit(c, 52.52, 13.405)
	v["check_in"].(map[string]any)["at"] = in
	if out != "" {
		v["check_out"] = map[string]any{"at": out, "lat": 52.52, "lng": 13.405}
	}
	return v
}

// visitData pulls a visit as a user sees it.
func visitData(e *storetest.Bed, t *testing.T, user, id string) map[string]any {
	t.Helper()
	_, changes, _ := e.Pull(user, "")
	for _, ch := range changes {
		if ch.Collection == schema.Visits && ch.ID == id {
			return data(t, ch)
		}
	}
	require.Failf(t, "no such visit", "%s does not pull %s", user, id)
	return nil
}

func TestOpenVisitsAreKeptAndFlagged(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visitAt("c-1", "2026-11-23T09:00:00Z", "")))
	assert.NotContains(t, visitData(e, t, "rep1", "v-1"), "check_out_missing", "the latest visit is just open")

	e.OK("rep1", storetest.Up(schema.Visits, "v-2", 0, visitAt("c-1", "2026-11-23T10:00:00Z", "")))
	assert.Equal(t, true, visitData(e, t, "rep1", "v-1")["check_out_missing"], "a later check-in exists")
	assert.NotContains(t, visitData(e, t, "rep1", "v-1"), "duration_s", "no time in store without a check-out")
	assert.NotContains(t, visitData(e, t, "rep1", "v-2"), "check_out_missing")

	t.Run("a later closed visit pushed first", func(t *testing.T) {
		e.OK("rep1", storetest.Up(schema.Visits, "v-4", 0, visitAt("c-1", "2026-11-23T15:00:00Z", "2026-11-23T15:20:00Z")))
		assert.Equal(t, true, visitData(e, t, "rep1", "v-2")["check_out_missing"], "v-2 is earlier")
		e.OK("rep1", storetest.Up(schema.Visits, "v-3", 0, visitAt("c-1", "2026-11-23T14:00:00Z", "")))
		assert.Equal(t, true, visitData(e, t, "rep1", "v-3")["check_out_missing"], "v-4 was checked in later")
	})
	t.Run("the device's claim is not taken", func(t *testing.T) {
		e.OK("rep1", storetest.Up(schema.Visits, "v-5", 0, storetest.With(visitAt("c-1", "2026-11-23T16:00:00Z", ""), "check_out_missing", true)))
		assert.NotContains(t, visitData(e, t, "rep1", "v-5"), "check_out_missing", "nothing later")
	})
	t.Run("checking out clears it and counts the time", func(t *testing.T) {
		e.OK("rep1", storetest.Up(schema.Visits, "v-1", 2, visitAt("c-1", "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")))
		v := visitData(e, t, "rep1", "v-1")
		assert.NotContains(t, v, "check_out_missing")
		assert.Equal(t, float64(1800), v["duration_s"])
	})
	t.Run("another rep's visits are not later check-ins", func(t *testing.T) {
		e.OK("rep2", storetest.Up(schema.Visits, "v-rep2", 0, visitAt("c-2", "2026-11-23T18:00:00Z", "")))
		assert.NotContains(t, visitData(e, t, "rep1", "v-5"), "check_out_missing")
	})
	t.Run("one push with several open visits", func(t *testing.T) {
		res := e.Push("rep2",
			storetest.Up(schema.Visits, "v-r2-a", 0, visitAt("c-2", "2026-11-24T09:00:00Z", "")),
			storetest.Up(schema.Visits, "v-r2-b", 0, visitAt("c-2", "2026-11-24T10:00:00Z", "")),
			storetest.Up(schema.Visits, "v-r2-c", 0, visitAt("c-2", "2026-11-24T11:00:00Z", "2026-11-24T11:10:00Z")))
		assert.Equal(t, []string{"applied", "applied", "applied"}, statuses(res))
		for _, id := range []string{"v-rep2", "v-r2-a", "v-r2-b"} {
			assert.Equal(t, true, visitData(e, t, "rep2", id)["check_out_missing"], id)
		}
		assert.NotContains(t, visitData(e, t, "rep2", "v-r2-c"), "check_out_missing")
	})
	t.Run("one push that opens a visit, closes it and opens the next", func(t *testing.T) {
		res := e.Push("rep2",
			storetest.Up(schema.Visits, "v-r2-d", 0, visitAt("c-2", "2026-11-24T11:20:00Z", "")),
			storetest.Up(schema.Visits, "v-r2-e", 0, visitAt("c-2", "2026-11-24T11:15:00Z", "")),
			storetest.Up(schema.Visits, "v-r2-d", 1, visitAt("c-2", "2026-11-24T11:20:00Z", "2026-11-24T11:40:00Z")),
			storetest.Up(schema.Visits, "v-r2-f", 0, visitAt("c-2", "2026-11-24T11:50:00Z", "")))
		require.Equal(t, []string{"applied", "applied", "applied", "applied"}, statuses(res), "%+v", res)
		v, _ := e.Record(schema.Visits, "v-r2-d")
		assert.Equal(t, int64(2), v, "closed, and not marked after")
		assert.NotContains(t, visitData(e, t, "rep2", "v-r2-d"), "check_out_missing")
		assert.Equal(t, true, visitData(e, t, "rep2", "v-r2-e")["check_out_missing"], "checked in before v-r2-d")
		assert.NotContains(t, visitData(e, t, "rep2", "v-r2-f"), "check_out_missing", "the latest")
	})
}

func TestVisitMarksItsPlannedStopDone(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("admin",
		storetest.Up(schema.Customers, "c-9", 0, customer("t-1", "C")),
		storetest.Up(schema.RoutePlans, "rp-23", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23", "stops": []any{
			map[string]any{"customer_id": "c-1", "position": 1, "status": "planned"},
			map[string]any{"customer_id": "c-9", "position": 2, "status": "planned"}}}),
		storetest.Up(schema.RoutePlans, "rp-24", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-24", "stops": []any{
			map[string]any{"customer_id": "c-9", "position": 1, "status": "planned"}}}))
	_, _, cp := e.Pull("rep1", "")
	closed := func(customer, at string) map[string]any {
		v := visit(customer, 52.52, 13.405)
		v["check_in"].(map[string]any)["at"] = at
		v["check_out"] = map[string]any{"at": at, "lat": 52.52, "lng": 13.405}
		return v
	}
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, closed("c-1", "2026-11-23T09:00:00Z")))
	e.OK("rep1", storetest.Up(schema.Visits, "v-2", 0, storetest.With(closed("c-9", "2026-11-23T11:00:00Z"), "route_plan_id", "rp-24")))

	_, changes, _ := e.Pull("rep1", cp)
	plans := map[string]schema.RoutePlan{}
	for _, ch := range changes {
		if ch.Collection == schema.RoutePlans {
			var p schema.RoutePlan
			require.NoError(t, json.Unmarshal(ch.Data, &p))
			plans[ch.ID] = p
		}
	}
	require.Contains(t, plans, "rp-23")
	assert.Equal(t, "done", plans["rp-23"].Stops[0].Status, "the check-in on the plan's day")
	assert.Equal(t, "planned", plans["rp-23"].Stops[1].Status, "c-9 was visited for another plan")
	require.Contains(t, plans, "rp-24")
	assert.Equal(t, "done", plans["rp-24"].Stops[0].Status, "the plan the visit names")

	ctx := context.Background()
	var rp *sync.Record
	require.NoError(t, e.Store.View(ctx, func(tx sync.RecordTx) error {
		var err error
		rp, err = tx.Record(ctx, schema.RoutePlans, "rp-23")
		return err
	}))
	assert.Equal(t, int64(2), rp.Version, "a new version")
}

// A visit finds its stop through the plans' stop facts before it reads a
// plan: the facts of a plan written earlier in the same transaction count,
// and a visit outside every plan leaves the plans alone.
func TestVisitFindsItsStopByTheStopFacts(t *testing.T) {
	e := newEnv(t)
	seed(e)
	closed := func(customer, at string) map[string]any {
		v := storetest.With(visit(customer, 52.52, 13.405), "rep_id", "u-rep1")
		v["check_in"].(map[string]any)["at"] = at
		v["check_out"] = map[string]any{"at": at, "lat": 52.52, "lng": 13.405}
		return v
	}
	plan := func(customers ...string) map[string]any {
		var stops []any
		for i, c := range customers {
			stops = append(stops, map[string]any{"customer_id": c, "position": i + 1, "status": "planned"})
		}
		return map[string]any{"rep_id": "u-rep1", "date": "2026-11-22", "stops": stops}
	}
	e.OK("admin",
		storetest.Up(schema.Customers, "c-9", 0, customer("t-1", "C")),
		storetest.Up(schema.RoutePlans, "rp-22", 0, plan("c-1")),
		storetest.Up(schema.Visits, "v-1", 0, closed("c-1", "2026-11-22T09:00:00Z")))
	stops := func() (int64, []schema.Stop) {
		var rp *sync.Record
		ctx := context.Background()
		require.NoError(t, e.Store.View(ctx, func(tx sync.RecordTx) error {
			var err error
			rp, err = tx.Record(ctx, schema.RoutePlans, "rp-22")
			return err
		}))
		var p schema.RoutePlan
		require.NoError(t, json.Unmarshal(rp.Data, &p))
		return rp.Version, p.Stops
	}
	version, got := stops()
	assert.Equal(t, int64(2), version, "marked in the push that wrote the plan")
	assert.Equal(t, "done", got[0].Status)

	e.OK("rep1", storetest.Up(schema.Visits, "v-2", 0, closed("c-9", "2026-11-22T10:00:00Z")))
	e.OK("rep1", storetest.Up(schema.Visits, "v-3", 0, closed("c-1", "2026-11-23T10:00:00Z")))
	version, _ = stops()
	assert.Equal(t, int64(2), version, "a customer off the plan, and the plan's customer on another day")

	// A stop added later has its fact too.
	e.OK("admin", storetest.Up(schema.RoutePlans, "rp-22", 2, plan("c-1", "c-9")))
	e.OK("rep1", storetest.Up(schema.Visits, "v-4", 0, closed("c-9", "2026-11-22T11:00:00Z")))
	version, got = stops()
	assert.Equal(t, int64(4), version)
	require.Len(t, got, 2)
	assert.Equal(t, "done", got[1].Status)
}

func TestPhotoTakesItsVisitsRep(t *testing.T) {
	e := newEnv(t)
	seed(e)
	admin := storetest.With(visitAt("c-1", "2026-11-23T09:00:00Z", ""), "rep_id", "u-rep1")
	e.OK("admin", storetest.Up(schema.Visits, "v-1", 0, admin), storetest.Up(schema.Visits, "v-2", 0, visitAt("c-1", "2026-11-23T10:00:00Z", "")))
	photo := func(visit string) map[string]any {
		return map[string]any{"visit_id": visit, "sha256": strings.Repeat("a", 64), "content_type": "image/jpeg", "size": 10,
			"rep_id": "u-rep2"}
	}
	e.OK("admin", storetest.Up(schema.Photos, "ph-1", 0, photo("v-1")), storetest.Up(schema.Photos, "ph-2", 0, photo("v-2")))
	for id, rep := range map[string]string{"ph-1": "u-rep1", "ph-2": "u-admin"} {
		_, got := e.Record(schema.Photos, id)
		assert.Equal(t, rep, got["rep_id"], "%s: the rep of its visit, whoever wrote it and whatever it says", id)
	}
}
