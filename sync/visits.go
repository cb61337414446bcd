package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/fieldsync/fieldsync/schema"
)

// openVisit is the ref of a rep's visits that are checked in and not out.
func openVisit(repID string) string { return "open:" + repID }

// checkOneOpenVisit refuses a rep a second open visit, unless a later
// mutation of the same push checks out of the open one.
func (w *writer) checkOneOpenVisit(ctx context.Context, repID string) error {
	open, err := w.tx.RecordsByRef(ctx, schema.Visits, openVisit(repID), "", 10)
	if err != nil {
		return err
	}
	current := ""
	if m, perr := decodeMutation(w.batch[w.at]); perr == nil {
		current = m.ID
	}
	for _, r := range open {
		if r.Deleted || r.ID == current || w.closedLater(r.ID) {
			continue
		}
		return rejection(schema.CodeVisitOpen, "check_in", "visit %s is still open: check out of it first", r.ID)
	}
	return nil
}

// closedLater reports whether a later mutation of the push checks out of
// a visit.
func (w *writer) closedLater(visitID string) bool {
	for _, raw := range w.batch[w.at+1:] {
		m, perr := decodeMutation(raw)
		if perr != nil || m.Collection != schema.Visits || m.ID != visitID || m.Op != schema.MutationUpsert {
			continue
		}
		var v struct {
			CheckOut json.RawMessage `json:"check_out"`
		}
		if json.Unmarshal(m.Data, &v) == nil && len(v.CheckOut) > 0 && !bytes.Equal(v.CheckOut, []byte("null")) {
			return true
		}
	}
	return false
}

// markStopDone marks done the planned stop that a new visit fulfils: the
// visit's customer on the route plan it names, or else on its rep's plan
// for the day of its check-in.
func (w *writer) markStopDone(ctx context.Context, visit *Record) error {
	var v schema.Visit
	if err := json.Unmarshal(visit.Data, &v); err != nil {
		return err
	}
	var plans []*Record
	if v.RoutePlanID != "" {
		r, err := w.tx.Record(ctx, schema.RoutePlans, v.RoutePlanID)
		if err != nil && err != ErrNotFound {
			return err
		}
		if r != nil {
			plans = append(plans, r)
		}
	} else {
		day := v.CheckIn.At.In(w.e.location).Format("2006-01-02")
		page, err := w.tx.RecordsByRef(ctx, schema.RoutePlans, "rep-date:"+v.RepID+":"+day, "", 10)
		if err != nil {
			return err
		}
		plans = page
	}
	for _, r := range plans {
		if r.Deleted {
			continue
		}
		var plan schema.RoutePlan
		if err := json.Unmarshal(r.Data, &plan); err != nil {
			return err
		}
		i := slices.IndexFunc(plan.Stops, func(s schema.Stop) bool {
			return s.CustomerID == v.CustomerID && s.Status == schema.StopPlanned
		})
		if plan.RepID != v.RepID || i < 0 {
			continue
		}
		plan.Stops[i].Status = schema.StopDone
		data, err := json.Marshal(&plan)
		if err != nil {
			return err
		}
		next := *r
		next.Version, next.Data = r.Version+1, data
		next.UpdatedAt, next.UpdatedBy = w.e.now().UTC(), w.p.UserID
		next.History = w.history(schema.RoutePlans, r, Revision{Version: next.Version, UserID: w.p.UserID}, data)
		if err := w.tx.Put(ctx, &next, r.Version); err != nil {
			return err
		}
	}
	return nil
}
