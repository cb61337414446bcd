package report

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// repScope is who a per-rep report covers: the territories whose facts
// count (nil: all) and the reps it has a row for.
type repScope struct {
	territories []string
	reps        []string
}

// repReportScope works out the reps a per-rep report covers for p: a rep
// only itself; a manager the active reps assigned to a territory it
// oversees (narrowed to one territory or one rep when asked); an admin
// every active rep, or the one asked for.
func (rs *Reports) repReportScope(ctx context.Context, p schema.Principal, territory, repID string) (*repScope, error) {
	if p.Role == schema.RoleRep {
		if repID != "" && repID != p.UserID {
			return nil, schema.FieldErrorf(schema.CodeForbidden, "rep_id", "a rep reads its own report only")
		}
		if territory != "" {
			return nil, schema.FieldErrorf(schema.CodeForbidden, "territory_id", "a rep reads its own report only")
		}
		return &repScope{reps: []string{p.UserID}}, nil
	}
	terr, err := schema.ReportScope(p, territory)
	if err != nil {
		return nil, err
	}
	users, err := rs.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("report.repReportScope: %w", err)
	}
	s := &repScope{territories: terr}
	for _, u := range users {
		inScope := terr == nil || slices.ContainsFunc(u.Territories, func(t string) bool { return slices.Contains(terr, t) })
		switch {
		case u.Role != schema.RoleRep || !inScope:
		case repID != "" && u.ID == repID:
			s.reps = []string{u.ID}
		case repID == "" && u.Active:
			s.reps = append(s.reps, u.ID)
		}
	}
	if repID != "" && len(s.reps) == 0 {
		return nil, schema.FieldErrorf(schema.CodeForbidden, "rep_id", "rep_id is not a rep of the territories the caller oversees")
	}
	slices.Sort(s.reps)
	return s, nil
}

// repFacts returns a rep's facts of a kind in [from, to) that belong to
// one of territories (all, when nil).
func (rs *Reports) repFacts(ctx context.Context, kind, rep string, territories []string, from, to time.Time) ([]sync.Fact, error) {
	facts, err := rs.store.RepFacts(ctx, kind, rep, from, to)
	if err != nil || territories == nil {
		return facts, err
	}
	return slices.DeleteFunc(facts, func(f sync.Fact) bool { return !slices.Contains(territories, f.Territory) }), nil
}
