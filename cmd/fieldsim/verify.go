package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

// Verify checks a run's outcome against the server (which must be quiet:
// no device may still be syncing) and returns an error listing every
// mismatch:
//   - every record in res.Expected is on the server exactly once (an admin
//     pull from an empty checkpoint), not deleted, with the fields the
//     device set;
//   - every photo record is uploaded and its bytes (GET /v1/media/{sha})
//     hash to its name;
//   - every device in res.Replicas holds, with nothing pending, exactly the
//     records and versions that a fresh client of its user pulls.
func Verify(ctx context.Context, cfg Config, res *Result) error {
	cfg.defaults()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	admin, err := newAdminAPI(ctx, cfg)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	all, twice, err := pullAll(ctx, admin)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, k := range twice {
		bad("%s: pulled more than once from an empty checkpoint", k)
	}
	for _, e := range res.Expected {
		key := string(e.Collection) + "/" + e.ID
		env, ok := all[key]
		switch {
		case !ok:
			bad("%s (by %s): missing on the server", key, e.Username)
			continue
		case env.Deleted:
			bad("%s (by %s): deleted on the server", key, e.Username)
			continue
		}
		if err := compare(e, env.Data); err != nil {
			bad("%s (by %s): %v", key, e.Username, err)
		}
		if e.Photo != nil {
			var body []byte
			if _, err := admin.call(ctx, http.MethodGet, "/v1/media/"+e.Photo.SHA256, nil, &body); err != nil {
				bad("%s: bytes: %v", key, err)
			} else if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != e.Photo.SHA256 {
				bad("%s: bytes hash to %x, not %s", key, sum, e.Photo.SHA256)
			}
		}
	}
	for _, d := range res.Replicas {
		for _, p := range compareReplica(ctx, cfg, d) {
			bad("device %s: %s", d.DeviceID, p)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	const most = 30
	n := len(problems)
	if n > most {
		problems = append(problems[:most], fmt.Sprintf("… and %d more", n-most))
	}
	return fmt.Errorf("verification found %d problem(s):\n  %s", n, strings.Join(problems, "\n  "))
}

// compare checks the fields a device set against the server's data.
func compare(e *Expected, data json.RawMessage) error {
	var diffs []string
	diff := func(field string, want, got any) {
		diffs = append(diffs, fmt.Sprintf("%s is %v on the server, the device set %v", field, got, want))
	}
	switch {
	case e.Visit != nil:
		var got schema.Visit
		if err := json.Unmarshal(data, &got); err != nil {
			return err
		}
		w := e.Visit
		if got.CustomerID != w.CustomerID {
			diff("customer_id", w.CustomerID, got.CustomerID)
		}
		if !sameGeo(&got.CheckIn, &w.CheckIn) {
			diff("check_in", geo(&w.CheckIn), geo(&got.CheckIn))
		}
		if !sameGeo(got.CheckOut, w.CheckOut) {
			diff("check_out", geo(w.CheckOut), geo(got.CheckOut))
		}
		if got.Notes != w.Notes {
			diff("notes", w.Notes, got.Notes)
		}
	case e.Order != nil:
		var got schema.Order
		if err := json.Unmarshal(data, &got); err != nil {
			return err
		}
		w := e.Order
		if got.CustomerID != w.CustomerID {
			diff("customer_id", w.CustomerID, got.CustomerID)
		}
		if got.VisitID != w.VisitID {
			diff("visit_id", w.VisitID, got.VisitID)
		}
		if !slices.EqualFunc(got.Lines, w.Lines, func(a, b schema.OrderLine) bool {
			return a.ProductID == b.ProductID && a.Quantity == b.Quantity
		}) {
			diff("lines", lines(w.Lines), lines(got.Lines))
		}
	case e.Photo != nil:
		var got schema.Photo
		if err := json.Unmarshal(data, &got); err != nil {
			return err
		}
		w := e.Photo
		if got.VisitID != w.VisitID {
			diff("visit_id", w.VisitID, got.VisitID)
		}
		if got.SHA256 != w.SHA256 {
			diff("sha256", w.SHA256, got.SHA256)
		}
		if got.Size != w.Size {
			diff("size", w.Size, got.Size)
		}
		if !got.Uploaded {
			diffs = append(diffs, "uploaded is false on the server")
		}
	}
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}

// sameGeo reports whether two points (either may be nil) are the same.
func sameGeo(a, b *schema.GeoPoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.At.Equal(b.At) && sameFloat(a.Lat, b.Lat) && sameFloat(a.Lng, b.Lng)
}

func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// geo renders a point for a message.
func geo(p *schema.GeoPoint) string {
	if p == nil {
		return "none"
	}
	f := func(v *float64) string {
		if v == nil {
			return "?"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("%s@%s,%s", p.At.UTC().Format("2006-01-02T15:04:05Z"), f(p.Lat), f(p.Lng))
}

// lines renders order lines as product×quantity.
func lines(ls []schema.OrderLine) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s×%d", l.ProductID, l.Quantity))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// pullAll pulls every record from an empty checkpoint and returns them by
// "collection/id", with the keys that came more than once.
func pullAll(ctx context.Context, a *adminAPI) (map[string]*schema.Envelope, []string, error) {
	all := map[string]*schema.Envelope{}
	var twice []string
	checkpoint := ""
	for {
		var page schema.PullResponse
		if _, err := a.call(ctx, http.MethodPost, "/v1/sync/pull", schema.PullRequest{Checkpoint: checkpoint, Limit: 1000}, &page); err != nil {
			return nil, nil, err
		}
		for _, e := range page.Changes {
			key := string(e.Collection) + "/" + e.ID
			if _, ok := all[key]; ok {
				twice = append(twice, key)
			}
			all[key] = e
		}
		if !page.HasMore {
			return all, twice, nil
		}
		checkpoint = page.Checkpoint
	}
}

// replica returns what a client's store holds: version by "collection/id",
// and how many of its records are pending.
func replica(ctx context.Context, c *fieldsync.Client) (map[string]int64, int, error) {
	out := map[string]int64{}
	pending := 0
	for _, coll := range schema.Collections() {
		recs, err := c.List(ctx, coll)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range recs {
			out[string(coll)+"/"+r.ID] = r.Version
			if r.Pending {
				pending++
			}
		}
	}
	return out, pending, nil
}

// compareReplica compares a device's store with what a fresh client of its
// user pulls, and returns the differences.
func compareReplica(ctx context.Context, cfg Config, d DeviceInfo) []string {
	open := func(id, path string) (*fieldsync.Client, error) {
		return fieldsync.Open(ctx, fieldsync.Config{BaseURL: cfg.URL, Username: d.Username, Password: d.Password,
			DeviceID: id, StorePath: path, Retry: cfg.Retry})
	}
	dev, err := open(d.DeviceID, d.StorePath)
	if err != nil {
		return []string{fmt.Sprintf("open its store: %v", err)}
	}
	have, pending, err := replica(ctx, dev)
	dev.Close()
	if err != nil {
		return []string{fmt.Sprintf("read its store: %v", err)}
	}
	dir, err := os.MkdirTemp("", "fieldsim-verify-")
	if err != nil {
		return []string{err.Error()}
	}
	defer os.RemoveAll(dir)
	fresh, err := open(d.DeviceID+"-verify", dir+"/fresh.db")
	if err != nil {
		return []string{fmt.Sprintf("open a fresh store: %v", err)}
	}
	defer fresh.Close()
	if _, err := fresh.Sync(ctx); err != nil {
		return []string{fmt.Sprintf("pull as %s: %v", d.Username, err)}
	}
	want, _, err := replica(ctx, fresh)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	if pending > 0 {
		out = append(out, fmt.Sprintf("%d records still pending", pending))
	}
	keys := make([]string, 0, len(have)+len(want))
	for k := range have {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := have[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		h, inHave := have[k]
		w, inWant := want[k]
		switch {
		case !inWant:
			out = append(out, fmt.Sprintf("%s v%d is on the device but %s may not read it (or it is gone)", k, h, d.Username))
		case !inHave:
			out = append(out, fmt.Sprintf("%s v%d is readable by %s but missing on the device", k, w, d.Username))
		case h != w:
			out = append(out, fmt.Sprintf("%s is v%d on the device, v%d on the server", k, h, w))
		}
	}
	return out
}
