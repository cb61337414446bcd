package sync

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// openVisit is the ref of a rep's visits that are checked in and not out.
func openVisit(repID string) string { return "open:" + repID }

// isOpenVisitRef reports whether ref is the ref of open visits.
func isOpenVisitRef(ref string) bool { return strings.HasPrefix(ref, "open:") }

// markCheckOutsMissing sets check_out_missing on the open visits of a
// written visit's rep that were checked in before it (v, the visit as
// written): the rep has left them without checking out. Only open visits
// not yet so marked carry the open ref, so the rep has at most a few of
// them whatever its history.
func (w *writer) markCheckOutsMissing(ctx context.Context, written *Record, v *schema.Visit) error {
	open, err := w.openVisits(ctx, v.RepID)
	if err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(open)) {
		if r := open[id]; r != nil && id != written.ID && !r.Deleted {
			if err := w.markCheckOutMissing(ctx, r, v.CheckIn.At); err != nil {
				return err
			}
		}
	}
	return nil
}

// openVisits returns a rep's visits that carry the open ref, by id, as
// stored. It reads them once per writer; the writer's own writes of
// visits keep them current after that (see noteVisit), so that a push of
// many visits does not look them up again for each.
func (w *writer) openVisits(ctx context.Context, repID string) (map[string]*Record, error) {
	if open, ok := w.open[repID]; ok {
		return open, nil
	}
	open := map[string]*Record{}
	for after := ""; ; {
		page, err := w.tx.RecordsByRef(ctx, schema.Visits, openVisit(repID), after, 100)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			open[r.ID] = r
		}
		if len(page) < 100 {
			break
		}
		after = page[len(page)-1].ID
	}
	if w.open == nil {
		w.open = map[string]map[string]*Record{}
	}
	w.open[repID] = open
	return open, nil
}

// noteVisit keeps the writer's open visits current with a visit it has
// just written.
func (w *writer) noteVisit(r *Record) {
	for _, open := range w.open {
		delete(open, r.ID)
	}
	for _, ref := range r.Refs {
		if rep, ok := strings.CutPrefix(ref, openVisit("")); ok && !r.Deleted {
			if open, ok := w.open[rep]; ok {
				open[r.ID] = r
			}
		}
	}
}

// markCheckOutMissing marks an open visit checked in before a later
// check-in as left without a check-out, as a new version.
func (w *writer) markCheckOutMissing(ctx context.Context, r *Record, later time.Time) error {
	var open schema.Visit
	fresh := false
	if d, ok := w.decoded[string(r.Collection)+"/"+r.ID]; ok && d.version == r.Version {
		open, fresh = *d.rec.(*schema.Visit), true // written by this push: decoded already
	} else if err := json.Unmarshal(r.Data, &open); err != nil {
		return err
	}
	if open.CheckOut != nil || !open.CheckIn.At.Before(later) {
		return nil
	}
	var (
		data []byte
		err  error
	)
	if fresh && !open.CheckOutMissing {
		data = withCheckOutMissing(r.Data) // encoded by this push: not again
		open.CheckOutMissing = true
	} else {
		open.CheckOutMissing = true
		if data, err = json.Marshal(&open); err != nil {
			return err
		}
	}
	next := *r
	next.Version, next.Data = r.Version+1, data
	next.Refs = slices.DeleteFunc(slices.Clone(r.Refs), isOpenVisitRef)
	next.UpdatedAt, next.UpdatedBy = w.e.now().UTC(), w.p.UserID
	next.History = w.history(schema.Visits, r, Revision{Version: next.Version, UserID: w.p.UserID}, nil)
	if next.Audit, err = w.completeAudit(r); err != nil {
		return err
	}
	if err := w.put(ctx, &next, r.Version); err != nil {
		return err
	}
	w.keepDecoded(&next, &open)
	return nil
}

// withCheckOutMissing returns the JSON encoding of a visit with
// check_out_missing set, from the encoding (by json.Marshal) of the same
// visit without it: the field is the last of schema.Visit and left out
// when false, so it goes last, after the visit's other fields (of which
// customer_id is always one). A push of open visits marks each of them;
// encoding 4 KB of notes again for a field was a tenth of its time in the
// store's lock.
func withCheckOutMissing(data []byte) []byte {
	const field = `,"check_out_missing":true}`
	out := make([]byte, 0, len(data)-1+len(field))
	return append(append(out, data[:len(data)-1]...), field...)
}

// stopFinder is a RecordTx that can tell from the route plans' stop facts
// whether a rep has a stop at a customer on a day (at: the day at 00:00
// UTC, as stop facts have it), done or not. markStopDone then reads no
// plan for a visit outside every plan.
type stopFinder interface {
	HasStop(ctx context.Context, rep, customer string, at time.Time) (bool, error)
}

// markStopDone marks done the planned stop that a new visit (v, as
// written) fulfils: the visit's customer on the route plan it names, or
// else on its rep's plan for the day of its check-in.
func (w *writer) markStopDone(ctx context.Context, v *schema.Visit) error {
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
		if sf, ok := w.tx.(stopFinder); ok {
			// Most visits outside a plan are told apart by one index read.
			at, err := time.Parse("2006-01-02", day)
			if err != nil {
				return err
			}
			if has, err := sf.HasStop(ctx, v.RepID, v.CustomerID, at); err != nil || !has {
				return err
			}
		}
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
		if err := w.audit(AuditUpdate, r, &next); err != nil {
			return err
		}
		if err := w.put(ctx, &next, r.Version); err != nil {
			return err
		}
	}
	return nil
}
