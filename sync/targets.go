package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// targetRef is the ref by which a rep's target for a month is found.
func targetRef(rep, month string) string { return "rep-month:" + rep + ":" + month }

// deriveTarget works out where a target belongs (its rep's territories at
// the time of the write) and keeps one target per rep and month. A locked
// target, or one being locked, is written only by an admin.
func (w *writer) deriveTarget(ctx context.Context, t *schema.Target, prev schema.Record, d *derived) error {
	rep, err := w.e.store.User(ctx, t.RepID)
	if errors.Is(err, ErrNotFound) || (err == nil && rep.Role != schema.RoleRep) {
		return rejection(schema.CodeValidationFailed, "rep_id", "rep_id refers to no rep")
	}
	if err != nil {
		return err
	}
	if !w.rederive {
		was, _ := prev.(*schema.Target)
		switch {
		case was != nil && (was.RepID != t.RepID || was.Month != t.Month):
			return rejection(schema.CodeValidationFailed, "month", "a target's rep_id and month do not change; delete it and create another")
		case w.p.Role != schema.RoleAdmin && (t.Locked || (was != nil && was.Locked)):
			return rejection(schema.CodeForbidden, "locked", "a locked target changes only by an admin")
		case was == nil:
			if err := w.checkOneTarget(ctx, t); err != nil {
				return err
			}
		}
	}
	start, _ := time.Parse("2006-01", t.Month)
	d.facts = schema.Facts{Owner: t.RepID, Territories: rep.Territories}
	d.refs = []string{"rep:" + t.RepID, targetRef(t.RepID, t.Month)}
	d.report = []Fact{{Kind: FactTarget, Rep: t.RepID, Territory: first(rep.Territories), Day: t.Month, At: start,
		Amount: t.OrderAmount, Count: t.Visits}}
	return nil
}

// checkOneTarget refuses a second target for the same rep and month.
func (w *writer) checkOneTarget(ctx context.Context, t *schema.Target) error {
	page, err := w.tx.RecordsByRef(ctx, schema.Targets, targetRef(t.RepID, t.Month), "", 10)
	if err != nil {
		return err
	}
	for _, r := range page {
		if !r.Deleted {
			return rejection(schema.CodeConflict, "month", "rep %s has a target for %s already (id %s)", t.RepID, t.Month, r.ID)
		}
	}
	return nil
}

// SplitRequest asks for a rep's twelve monthly targets of a year, split
// from the year's evenly or by Weights.
type SplitRequest struct {
	RepID       string        `json:"rep_id"`
	Year        int           `json:"year"`
	OrderAmount int64         `json:"order_amount"`
	Visits      int64         `json:"visits"`
	Weights     []json.Number `json:"weights,omitempty"`
}

// SplitResponse is the twelve targets a split wrote, January first.
type SplitResponse struct {
	Targets []*schema.Envelope `json:"targets"`
}

// check validates a split request.
func (r *SplitRequest) check() error {
	switch {
	case !schema.CheckID(r.RepID):
		return schema.FieldErrorf(schema.CodeValidationFailed, "rep_id", "rep_id must name a rep")
	case r.Year < 2000 || r.Year > 2200:
		return schema.FieldErrorf(schema.CodeValidationFailed, "year", "year must be between 2000 and 2200")
	case r.OrderAmount < 0:
		return schema.FieldErrorf(schema.CodeValidationFailed, "order_amount", "order_amount must be at least 0 (minor units)")
	case r.Visits < 0:
		return schema.FieldErrorf(schema.CodeValidationFailed, "visits", "visits must be at least 0")
	case r.Weights != nil && len(r.Weights) != 12:
		return schema.FieldErrorf(schema.CodeValidationFailed, "weights", "weights must be 12 numbers, one per month")
	}
	_, err := weights(r.Weights)
	return err
}

// weights reads the split weights as exact fractions; twelve ones when
// none are given.
func weights(ws []json.Number) ([]*big.Rat, error) {
	out := make([]*big.Rat, 12)
	sum := new(big.Rat)
	for i := range out {
		out[i] = big.NewRat(1, 1)
		if ws == nil {
			continue
		}
		w, ok := new(big.Rat).SetString(string(ws[i]))
		if !ok || w.Sign() < 0 {
			return nil, schema.FieldErrorf(schema.CodeValidationFailed, fmt.Sprintf("weights[%d]", i), "weights[%d] must be a number of at least 0", i)
		}
		out[i] = w
		sum.Add(sum, w)
	}
	if ws != nil && sum.Sign() == 0 {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "weights", "weights must not all be 0")
	}
	return out, nil
}

// Split divides total into len(weights) whole parts in proportion to the
// weights, adding up exactly to total. Each part is first its exact share
// rounded down; the units left over go one each to the parts with the
// largest remainders, and among equal remainders to the earliest part.
// Even weights thus put the remainder on the first months of the year.
func Split(total int64, ws []*big.Rat) []int64 {
	sum := new(big.Rat)
	for _, w := range ws {
		sum.Add(sum, w)
	}
	parts := make([]int64, len(ws))
	rems := make([]*big.Rat, len(ws))
	left := total
	for i, w := range ws {
		share := new(big.Rat).Mul(big.NewRat(total, 1), w)
		share.Quo(share, sum)
		floor := new(big.Int).Quo(share.Num(), share.Denom()) // shares are ≥ 0
		parts[i] = floor.Int64()
		rems[i] = new(big.Rat).Sub(share, new(big.Rat).SetInt(floor))
		left -= parts[i]
	}
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rems[b].Cmp(rems[a]) })
	for k := 0; left > 0; k, left = k+1, left-1 {
		parts[order[k]]++
	}
	return parts
}

// SplitTargets writes the twelve monthly targets of a rep's year through
// a push, so that they are versioned, fed and checked like any write:
// the existing target of a month is updated, a missing one created with
// the id tgt-<rep>-<month> (or a random one when that is too long). It
// refuses the whole split, writing nothing, when the rep is not one the
// caller may set targets for or a month is locked and the caller no admin.
func (e *Engine) SplitTargets(ctx context.Context, p schema.Principal, req *SplitRequest) (*SplitResponse, error) {
	const op = "sync.SplitTargets"
	if p.Role != schema.RoleManager && p.Role != schema.RoleAdmin {
		return nil, schema.Errorf(schema.CodeForbidden, "targets are set by managers and admins")
	}
	if err := req.check(); err != nil {
		return nil, err
	}
	ws, _ := weights(req.Weights)
	amounts, visits := Split(req.OrderAmount, ws), Split(req.Visits, ws)
	rep, err := e.store.User(ctx, req.RepID)
	if errors.Is(err, ErrNotFound) || (err == nil && rep.Role != schema.RoleRep) {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "rep_id", "rep_id refers to no rep")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !schema.CanWrite(p, schema.OpCreate, schema.Targets, schema.Facts{Owner: rep.ID, Territories: rep.Territories}) {
		return nil, schema.FieldErrorf(schema.CodeForbidden, "rep_id", "the caller may not set this rep's targets")
	}
	batch := make([]json.RawMessage, 12)
	err = e.store.View(ctx, func(tx RecordTx) error {
		for i := range 12 {
			month := fmt.Sprintf("%04d-%02d", req.Year, i+1)
			m := schema.Mutation{MutationID: "split-" + randomID(), Collection: schema.Targets, ID: targetID(req.RepID, month), Op: schema.MutationUpsert}
			page, err := tx.RecordsByRef(ctx, schema.Targets, targetRef(req.RepID, month), "", 10)
			if err != nil {
				return err
			}
			locked := false
			for _, r := range page {
				if !r.Deleted {
					m.ID, m.BaseVersion = r.ID, r.Version
					var t schema.Target
					if err := json.Unmarshal(r.Data, &t); err != nil {
						return err
					}
					locked = t.Locked
				}
			}
			if locked && p.Role != schema.RoleAdmin {
				return schema.FieldErrorf(schema.CodeForbidden, "year", "%s is locked; only an admin changes it", month)
			}
			data, err := json.Marshal(schema.Target{RepID: req.RepID, Month: month, OrderAmount: amounts[i], Visits: visits[i], Locked: locked})
			if err != nil {
				return err
			}
			m.Data = data
			if batch[i], err = json.Marshal(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, withOp(op, err)
	}
	resp, err := e.Push(ctx, p, &schema.PushRequest{DeviceID: p.DeviceID, Mutations: batch})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := &SplitResponse{}
	err = e.store.View(ctx, func(tx RecordTx) error {
		for i, res := range resp.Results {
			if res.Status != schema.PushApplied && res.Status != schema.PushMerged {
				if res.Error != nil {
					return res.Error
				}
				return schema.Errorf(schema.CodeConflict, "the target of month %d changed meanwhile; split again", i+1)
			}
			var m schema.Mutation
			if err := json.Unmarshal(batch[i], &m); err != nil {
				return err
			}
			r, err := tx.Record(ctx, schema.Targets, m.ID)
			if err != nil {
				return err
			}
			out.Targets = append(out.Targets, envelopeOf(r))
		}
		return nil
	})
	if err != nil {
		return nil, withOp(op, err)
	}
	return out, nil
}

// targetID is the id a split gives a new target.
func targetID(rep, month string) string {
	if id := "tgt-" + rep + "-" + month; schema.CheckID(id) {
		return id
	}
	return "tgt-" + randomID()
}

// randomID returns 128 random bits in hex.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// withOp wraps err with the operation, unless it is a *schema.Error,
// which callers show as it is.
func withOp(op string, err error) error {
	var se *schema.Error
	if errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
