package schema

import "time"

// ReportScope works out the territories a report covers for p: those it
// oversees (all, for an admin: nil), narrowed to one when asked.
func ReportScope(p Principal, territory string) ([]string, error) {
	switch {
	case p.Role == RoleAdmin && territory == "":
		return nil, nil
	case p.Role == RoleAdmin:
		return []string{territory}, nil
	case p.Role != RoleManager:
		return nil, Errorf(CodeForbidden, "reports are for managers and admins")
	case territory == "":
		return p.Territories, nil
	case p.HasTerritory(territory):
		return []string{territory}, nil
	}
	return nil, FieldErrorf(CodeForbidden, "territory_id", "territory_id is not one the caller oversees")
}

// ReportDays parses a report's date range: from and to are inclusive dates; the
// range runs from the start of from to the start of the day after to, in
// loc.
func ReportDays(from, to string, loc *time.Location) (start, end time.Time, err error) {
	f, err1 := time.ParseInLocation("2006-01-02", from, loc)
	t, err2 := time.ParseInLocation("2006-01-02", to, loc)
	switch {
	case err1 != nil:
		return start, end, FieldErrorf(CodeValidationFailed, "from", "from must be a date, YYYY-MM-DD")
	case err2 != nil:
		return start, end, FieldErrorf(CodeValidationFailed, "to", "to must be a date, YYYY-MM-DD")
	case t.Before(f):
		return start, end, FieldErrorf(CodeValidationFailed, "to", "to must not be before from")
	case t.Sub(f) > 366*24*time.Hour:
		return start, end, FieldErrorf(CodeValidationFailed, "to", "a report covers at most a year")
	}
	return f, t.AddDate(0, 0, 1), nil
}
