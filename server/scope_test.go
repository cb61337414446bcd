package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// delMut is a delete mutation.
func delMut(mid, coll, id string, base int64) map[string]any {
	return map[string]any{"mutation_id": mid, "collection": coll, "id": id, "op": "delete", "base_version": base}
}

// results pushes mutations and returns the answers, whatever they are.
func (f *fieldTeam) results(t testing.TB, s session, muts ...map[string]any) []map[string]any {
	t.Helper()
	r := f.ts.call(t, "POST", "/v1/sync/push", s.Access, map[string]any{"device_id": "d", "mutations": muts})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	var out []map[string]any
	for _, res := range r.Body["results"].([]any) {
		out = append(out, res.(map[string]any))
	}
	require.Len(t, out, len(muts))
	return out
}

// refusal returns the error of a rejected answer.
func refusal(t testing.TB, res map[string]any) map[string]any {
	t.Helper()
	require.Equal(t, "rejected", res["status"], "%v", res)
	return res["error"].(map[string]any)
}

// pulled returns the envelopes a session pulls from the beginning, by
// collection/id.
func (f *fieldTeam) pulled(t testing.TB, s session) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for cp, more := "", true; more; {
		r := f.ts.call(t, "POST", "/v1/sync/pull", s.Access, map[string]any{"checkpoint": cp})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		for _, ch := range r.Body["changes"].([]any) {
			env := ch.(map[string]any)
			out[env["collection"].(string)+"/"+env["id"].(string)] = env
		}
		cp, more = r.Body["checkpoint"].(string), r.Body["has_more"].(bool)
	}
	return out
}

// readable lists, of the records a session pulls, those not deleted.
func readable(pulled map[string]map[string]any) []string {
	var out []string
	for key, env := range pulled {
		if env["deleted"] != true {
			out = append(out, key)
		}
	}
	return out
}

// Two managers, each overseeing one territory, and a rep in each: nobody
// takes over a deleted record, or what belonged to it, by creating it
// again.
func TestRecreatingADeletedRecord(t *testing.T) {
	f := newFieldTeam(t, nil)
	ts := f.ts
	ts.createUser(t, f.admin, map[string]any{"username": "mgr2", "password": "mgr2-password", "role": "manager", "territories": []string{"t-2"}})
	mgr2 := ts.login(t, "mgr2", "mgr2-password", "laptop-m2")

	f.push(t, f.admin, mut("p-1", "products", "p-1", 0, map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": 100, "active": true}))
	order := func(customer string) map[string]any {
		return map[string]any{"customer_id": customer, "status": "draft",
			"lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 100}}}
	}
	body := jpeg(20_000)
	f.push(t, f.rep1, photoRecord("ph-1", body), mut("o-1", "orders", "o-1", 0, order("c-1")))
	require.Equal(t, http.StatusCreated, ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body))).Status)
	f.push(t, f.admin, delMut("del-c-1", "customers", "c-1", 1))

	shop := func(territory string) map[string]any {
		return map[string]any{"code": "C1", "name": "Taken over", "territory_id": territory, "grade": "A"}
	}
	t.Run("a manager of another territory may not recreate a customer", func(t *testing.T) {
		res := f.results(t, mgr2, mut("m2-c-1", "customers", "c-1", 0, shop("t-2")))[0]
		e := refusal(t, res)
		assert.Equal(t, "forbidden", e["code"])
		assert.Equal(t, "id", e["field"])
		assert.Nil(t, res["record"], "nothing of the old record")
		fresh := f.results(t, mgr2, mut("m2-c-1b", "customers", "c-1", 0, shop("t-2")))[0]
		assert.Equal(t, res["error"], fresh["error"], "sent again, the same answer")
	})
	t.Run("nor may an admin move it elsewhere by recreating it", func(t *testing.T) {
		e := refusal(t, f.results(t, f.admin, mut("a-c-1", "customers", "c-1", 0, shop("t-2")))[0])
		assert.Equal(t, "forbidden", e["code"])
	})
	t.Run("what belonged to it stays where it was", func(t *testing.T) {
		got := f.pulled(t, mgr2)
		for _, key := range []string{"customers/c-1", "visits/v-1", "orders/o-1", "photos/ph-1"} {
			assert.NotContains(t, readable(got), key)
		}
		assert.Equal(t, http.StatusNotFound, ts.call(t, "GET", "/v1/media/"+sum(body), mgr2.Access, nil).Status)
	})
	t.Run("the territory's manager may bring it back where it was", func(t *testing.T) {
		f.push(t, f.mgr, mut("m-c-1", "customers", "c-1", 0, shop("t-1")))
		assert.Contains(t, readable(f.pulled(t, f.mgr)), "visits/v-1")
	})

	f.push(t, f.admin, delMut("del-v-1", "visits", "v-1", 1))
	visitAt := func(customer string) map[string]any {
		return map[string]any{"customer_id": customer, "check_in": map[string]any{"at": "2026-11-23T11:00:00Z", "lat": 52.52, "lng": 13.405}}
	}
	t.Run("another rep may not recreate a deleted visit", func(t *testing.T) {
		e := refusal(t, f.results(t, f.rep2, mut("r2-v-1", "visits", "v-1", 0, visitAt("c-2")))[0])
		assert.Equal(t, "forbidden", e["code"])
		assert.Equal(t, "id", e["field"])
		for _, key := range []string{"visits/v-1", "photos/ph-1", "orders/o-1"} {
			assert.NotContains(t, readable(f.pulled(t, f.rep2)), key)
		}
		assert.Equal(t, http.StatusNotFound, ts.call(t, "GET", "/v1/media/"+sum(body), f.rep2.Access, nil).Status)
		assert.Equal(t, http.StatusNotFound, ts.call(t, "GET", "/v1/media/"+sum(body), mgr2.Access, nil).Status)
	})
	t.Run("an admin may not give a deleted visit to another rep", func(t *testing.T) {
		v := visitAt("c-2")
		v["rep_id"] = f.rep2.UserID
		e := refusal(t, f.results(t, f.admin, mut("a-v-1", "visits", "v-1", 0, v))[0])
		assert.Equal(t, "forbidden", e["code"])
	})
	t.Run("its own rep may bring it back", func(t *testing.T) {
		f.push(t, f.rep1, mut("r1-v-1", "visits", "v-1", 0, visitAt("c-1")))
		assert.Contains(t, readable(f.pulled(t, f.rep1)), "visits/v-1")
	})
	t.Run("route plans, orders and photos", func(t *testing.T) {
		ts.createUser(t, f.admin, map[string]any{"username": "rep3", "password": "rep3-password", "role": "rep", "territories": []string{"t-1"}})
		plan := map[string]any{"rep_id": f.rep1.UserID, "date": "2026-11-24", "stops": []any{}}
		f.push(t, f.mgr, mut("m-rp", "route_plans", "rp-1", 0, plan))
		f.push(t, f.admin, delMut("del-rp-1", "route_plans", "rp-1", 1), delMut("del-o-1", "orders", "o-1", 1), delMut("del-ph-1", "photos", "ph-1", 2))
		e := refusal(t, f.results(t, mgr2, mut("m2-rp", "route_plans", "rp-1", 0, plan))[0])
		assert.Equal(t, "forbidden", e["code"], "mgr2 cannot see the plan's tombstone")
		e = refusal(t, f.results(t, f.rep2, mut("r2-o-1", "orders", "o-1", 0, order("c-2")))[0])
		assert.Equal(t, "forbidden", e["code"])
		e = refusal(t, f.results(t, f.rep2, mut("r2-ph-1", "photos", "ph-1", 0, map[string]any{"visit_id": "v-1", "sha256": sum(body),
			"content_type": "image/jpeg", "size": len(body)}))[0])
		assert.Equal(t, "forbidden", e["code"])
		rep3 := ts.login(t, "rep3", "rep3-password", "phone-3")
		e = refusal(t, f.results(t, rep3, mut("r3-o-1", "orders", "o-1", 0, order("c-1")))[0])
		assert.Equal(t, "forbidden", e["code"], "a rep of the same territory does not take over another rep's order")
	})
}

// A manager plans only stops at customers it oversees, and reports list
// only the reps and customers of the caller's territories.
func TestRoutePlansAndReportsStayInScope(t *testing.T) {
	f := newFieldTeam(t, nil)
	ts := f.ts
	ts.createUser(t, f.admin, map[string]any{"username": "mgr2", "password": "mgr2-password", "role": "manager", "territories": []string{"t-2"}})
	mgr2 := ts.login(t, "mgr2", "mgr2-password", "laptop-m2")
	plan := func(customer string) map[string]any {
		return map[string]any{"rep_id": f.rep1.UserID, "date": "2026-11-23", "stops": []any{
			map[string]any{"customer_id": "c-1", "position": 1, "status": "planned"},
			map[string]any{"customer_id": customer, "position": 2, "status": "planned"}}}
	}

	res := f.results(t, f.mgr, mut("rp-far", "route_plans", "rp-1", 0, plan("c-2")), mut("rp-none", "route_plans", "rp-2", 0, plan("c-none")))
	far, none := refusal(t, res[0]), refusal(t, res[1])
	assert.Equal(t, "validation_failed", far["code"])
	assert.Equal(t, "stops[1].customer_id", far["field"])
	assert.Equal(t, none, far, "the same answer as for a customer that does not exist")

	// An admin may plan any stop: another territory's manager still sees
	// only its own reps.
	f.push(t, f.admin, mut("rp-admin", "route_plans", "rp-1", 0, plan("c-2")))
	for _, tt := range []struct {
		who  session
		reps []string
	}{
		{mgr2, []string{f.rep2.UserID}},
		{f.mgr, []string{f.rep1.UserID}},
	} {
		r := ts.call(t, "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", tt.who.Access, nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		var reps []string
		for _, row := range r.Body["reps"].([]any) {
			reps = append(reps, row.(map[string]any)["rep_id"].(string))
		}
		assert.Equal(t, tt.reps, reps)
	}
}

// Two reps and their managers: naming another rep's photo hash in one's
// own photo record grants nothing; only uploading the bytes does.
func TestPhotoHashIsNoKey(t *testing.T) {
	f := newFieldTeam(t, nil)
	ts := f.ts
	ts.createUser(t, f.admin, map[string]any{"username": "mgr2", "password": "mgr2-password", "role": "manager", "territories": []string{"t-2"}})
	mgr2 := ts.login(t, "mgr2", "mgr2-password", "laptop-m2")
	get := func(s session, hash string) int { return ts.call(t, "GET", "/v1/media/"+hash, s.Access, nil).Status }
	head := func(s session, hash string) int { return ts.call(t, "HEAD", "/v1/media/"+hash, s.Access, nil).Status }
	uploaded := func(s session, id string) any {
		return f.pulled(t, s)["photos/"+id]["data"].(map[string]any)["uploaded"]
	}

	secret := jpeg(30_000)
	f.push(t, f.rep1, photoRecord("ph-1", secret))
	require.Equal(t, http.StatusCreated, ts.upload(t, f.rep1.Access, sum(secret), "image/jpeg", bytes.NewReader(secret), int64(len(secret))).Status)
	require.Equal(t, true, uploaded(f.rep1, "ph-1"))

	f.push(t, f.rep2, mut("v-2", "visits", "v-2", 0, map[string]any{"customer_id": "c-2",
		"check_in": map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.52, "lng": 13.405}}))
	claim := photoRecord("ph-2", secret)
	claim["data"].(map[string]any)["visit_id"] = "v-2"
	f.push(t, f.rep2, claim)

	t.Run("a record naming someone else's hash is not uploaded", func(t *testing.T) {
		assert.Equal(t, false, uploaded(f.rep2, "ph-2"))
	})
	t.Run("and grants neither GET nor HEAD", func(t *testing.T) {
		for name, s := range map[string]session{"rep2": f.rep2, "mgr2": mgr2} {
			assert.Equal(t, http.StatusNotFound, get(s, sum(secret)), name)
			assert.Equal(t, http.StatusNotFound, head(s, sum(secret)), name)
		}
		assert.Equal(t, http.StatusOK, get(f.mgr, sum(secret)), "rep1's manager reads rep1's photo")
		assert.Equal(t, http.StatusOK, head(f.rep1, sum(secret)))
	})
	t.Run("a PUT of stored bytes must carry them", func(t *testing.T) {
		fake := jpeg(len(secret))
		r := ts.upload(t, f.rep2.Access, sum(secret), "image/jpeg", bytes.NewReader(fake), int64(len(fake)))
		assert.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
		assert.Equal(t, "hash_mismatch", r.ErrorCode())
		assert.Equal(t, false, uploaded(f.rep2, "ph-2"))
		assert.Equal(t, http.StatusNotFound, get(f.rep2, sum(secret)))
	})
	t.Run("uploading the bytes themselves is the proof", func(t *testing.T) {
		r := ts.upload(t, f.rep2.Access, sum(secret), "image/jpeg", bytes.NewReader(secret), int64(len(secret)))
		require.Equal(t, http.StatusOK, r.Status, "already stored: %s", r.Raw)
		assert.Equal(t, true, uploaded(f.rep2, "ph-2"))
		assert.Equal(t, http.StatusOK, get(f.rep2, sum(secret)))
		assert.Equal(t, http.StatusOK, head(mgr2, sum(secret)))
	})
	t.Run("the declared size must match", func(t *testing.T) {
		body := jpeg(10_000)
		wrong := photoRecord("ph-3", body)
		wrong["data"].(map[string]any)["size"] = len(body) + 1
		f.push(t, f.rep1, wrong)
		require.Equal(t, http.StatusCreated, ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body))).Status)
		assert.Equal(t, false, uploaded(f.rep1, "ph-3"))
		assert.Equal(t, http.StatusNotFound, get(f.rep1, sum(body)))
	})
}
