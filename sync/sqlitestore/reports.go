package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

const factColumns = "kind, rep, customer, territory, visit, label, grade, day, at, flag, amount, balance, count, status"

// scanFact reads factColumns, after any columns in extra.
func scanFact(sc interface{ Scan(...any) error }, extra ...any) (sync.Fact, error) {
	var (
		f  sync.Fact
		at int64
	)
	err := sc.Scan(append(extra, &f.Kind, &f.Rep, &f.Customer, &f.Territory, &f.Visit, &f.Label, &f.Grade, &f.Day, &at, &f.Flag,
		&f.Amount, &f.Balance, &f.Count, &f.Status)...)
	f.At = time.Unix(0, at).UTC()
	return f, err
}

// Facts returns the facts of a kind in territories within [from, to),
// through the (kind, territory, at) index.
func (s *Store) Facts(ctx context.Context, kind string, territories []string, from, to time.Time) ([]sync.Fact, error) {
	query := "SELECT " + factColumns + " FROM facts WHERE kind = ? AND at >= ? AND at < ?"
	args := []any{kind, from.UnixNano(), to.UnixNano()}
	if territories != nil {
		if len(territories) == 0 {
			return nil, nil
		}
		query += " AND territory IN (?" + strings.Repeat(", ?", len(territories)-1) + ")"
		for _, t := range territories {
			args = append(args, t)
		}
	}
	out, err := s.queryFacts(ctx, query, args...)
	if err != nil {
		return nil, errorf("sqlitestore.Facts: %w", err)
	}
	return out, nil
}

// RepFacts returns the facts of a kind about a rep within [from, to),
// through the (kind, rep, at) index.
func (s *Store) RepFacts(ctx context.Context, kind, rep string, from, to time.Time) ([]sync.Fact, error) {
	out, err := s.queryFacts(ctx, "SELECT "+factColumns+" FROM facts WHERE kind = ? AND rep = ? AND at >= ? AND at < ?",
		kind, rep, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, errorf("sqlitestore.RepFacts: %w", err)
	}
	return out, nil
}

func (s *Store) queryFacts(ctx context.Context, query string, args ...any) ([]sync.Fact, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sync.Fact
	for rows.Next() {
		f, err := scanFact(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// LatestFact returns a customer's fact of a kind with the latest At.
func (s *Store) LatestFact(ctx context.Context, kind, customerID string) (*sync.Fact, error) {
	f, err := scanFact(s.r.QueryRowContext(ctx, "SELECT "+factColumns+
		" FROM facts WHERE kind = ? AND customer = ? ORDER BY at DESC LIMIT 1", kind, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, errorf("sqlitestore.LatestFact: %w", err)
	}
	return &f, nil
}

// NoteDeviceSync records a device's push or pull.
func (s *Store) NoteDeviceSync(ctx context.Context, userID, deviceID string, push bool, at time.Time) error {
	column := "last_pull"
	if push {
		column = "last_push"
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO device_syncs (user_id, device_id, `+column+`) VALUES (?, ?, ?)
		ON CONFLICT (user_id, device_id) DO UPDATE SET `+column+` = max(`+column+`, excluded.`+column+`)`,
		userID, deviceID, at.UnixNano())
	if err != nil {
		return errorf("sqlitestore.NoteDeviceSync: %w", err)
	}
	return nil
}

// DeviceSyncs returns when every device last pushed and pulled.
func (s *Store) DeviceSyncs(ctx context.Context) ([]report.DeviceSync, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT user_id, device_id, last_push, last_pull FROM device_syncs ORDER BY user_id, device_id")
	if err != nil {
		return nil, errorf("sqlitestore.DeviceSyncs: %w", err)
	}
	defer rows.Close()
	var out []report.DeviceSync
	for rows.Next() {
		var (
			d          report.DeviceSync
			push, pull int64
		)
		if err := rows.Scan(&d.UserID, &d.DeviceID, &push, &pull); err != nil {
			return nil, errorf("sqlitestore.DeviceSyncs: %w", err)
		}
		d.LastPushAt, d.LastPullAt = unixOrZero(push), unixOrZero(pull)
		out = append(out, d)
	}
	return out, rows.Err()
}

func unixOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Users returns every user, in id order.
func (s *Store) Users(ctx context.Context) ([]*schema.User, error) {
	return s.ListUsers(ctx, sync.UserFilter{})
}

// ListUsers returns the users that f selects, in id order.
func (s *Store) ListUsers(ctx context.Context, f sync.UserFilter) ([]*schema.User, error) {
	const op = "sqlitestore.ListUsers"
	q := "SELECT " + userColumns + " FROM users WHERE id > ?"
	args := []any{f.After}
	if f.Role != "" {
		q += " AND role = ?"
		args = append(args, string(f.Role))
	}
	if f.Territory != "" {
		q += " AND EXISTS (SELECT 1 FROM json_each(users.territories) WHERE value = ?)"
		args = append(args, f.Territory)
	}
	if f.Active != nil {
		q += " AND active = ?"
		args = append(args, *f.Active)
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	defer rows.Close()
	out := []*schema.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, errorf("%s: %w", op, err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// coverageSQL counts coverage in one statement. The days come as a JSON
// list of [date, start, end] (Unix nanoseconds), so that a visit falls on
// its local day whatever the time zone does; {{scope}} narrows each fact
// to the territories when there are any.
const coverageSQL = `
WITH
days(day, s, e) AS MATERIALIZED (
	SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]' FROM json_each(:days)),
-- Days are compared as whole days since 1970-01-01: a stop's At is its
-- date at 00:00 UTC, a visit's local date is worked out below.
v AS ({{visits}}),
st AS (
	SELECT f.rep, f.customer, f.at / 86400000000000 AS day FROM facts f
	WHERE f.kind = 'stop' AND f.at >= :stopsFrom AND f.at < :stopsTo AND f.day BETWEEN :first AND :last {{scope}}),
o AS MATERIALIZED (
	SELECT f.visit, count(*) AS n FROM facts f
	WHERE f.kind = 'order' AND f.flag = 1 AND f.visit <> '' AND f.at >= :from AND f.at < :to {{scope}}
	GROUP BY f.visit),
-- Stops and visits meet per call (rep, customer, day): a stop is visited
-- when its call has a visit, a visit is unplanned when its call has no
-- stop. Each side is read once.
calls AS (
	SELECT rep, sum(stop) AS stops, sum(visit) AS visits, sum(orders) AS orders, sum(struck) AS struck,
		sum(known) AS known, sum(within) AS within
	FROM (
		SELECT rep, customer, day, 1 AS stop, 0 AS visit, 0 AS orders, 0 AS struck, 0 AS known, 0 AS within FROM st
		UNION ALL
		SELECT v.rep, v.customer, v.day, 0, 1, coalesce(o.n, 0), o.n IS NOT NULL, v.flag >= 0, v.flag = 1
		FROM v LEFT JOIN o ON o.visit = v.visit)
	GROUP BY rep, customer, day)
SELECT rep, sum(stops), sum(CASE WHEN visits > 0 THEN stops ELSE 0 END), sum(visits),
	sum(CASE WHEN stops = 0 THEN visits ELSE 0 END), sum(orders), sum(struck), sum(known), sum(within)
FROM calls GROUP BY rep`

// CoverageCounts counts coverage per rep in SQLite, through the facts
// indexes.
func (s *Store) CoverageCounts(ctx context.Context, q report.CoverageQuery) ([]report.RepCoverage, error) {
	if len(q.Days) == 0 || (q.Territories != nil && len(q.Territories) == 0) {
		return nil, nil
	}
	query, args, err := coverageQuery(q)
	if err != nil {
		return nil, errorf("sqlitestore.CoverageCounts: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, errorf("sqlitestore.CoverageCounts: %w", err)
	}
	defer rows.Close()
	var out []report.RepCoverage
	for rows.Next() {
		var c report.RepCoverage
		if err := rows.Scan(&c.Rep, &c.Planned, &c.Visited, &c.Visits, &c.Unplanned, &c.Orders, &c.Struck, &c.GeofenceKnown, &c.Within); err != nil {
			return nil, errorf("sqlitestore.CoverageCounts: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// coverageQuery returns the statement that counts q's coverage, with its
// arguments; q has days.
func coverageQuery(q report.CoverageQuery) (string, []any, error) {
	days := make([][3]any, len(q.Days))
	for i, d := range q.Days {
		date, err := time.Parse("2006-01-02", d.Date)
		if err != nil {
			return "", nil, errorf("day %q: %w", d.Date, err)
		}
		days[i] = [3]any{date.Unix() / 86400, d.Start.UnixNano(), d.End.UnixNano()}
	}
	rawDays, err := json.Marshal(days)
	if err != nil {
		return "", nil, err
	}
	from, to := q.Days[0].Start, q.Days[len(q.Days)-1].End
	query, scope := coverageSQL, ""
	args := []any{
		sql.Named("days", string(rawDays)),
		sql.Named("from", from.UnixNano()), sql.Named("to", to.UnixNano()),
		sql.Named("stopsFrom", from.AddDate(0, 0, -1).UnixNano()), sql.Named("stopsTo", to.AddDate(0, 0, 1).UnixNano()),
		sql.Named("first", q.Days[0].Date), sql.Named("last", q.Days[len(q.Days)-1].Date),
	}
	if q.Territories != nil {
		rawTerr, err := json.Marshal(q.Territories)
		if err != nil {
			return "", nil, err
		}
		scope = "AND f.territory IN (SELECT value FROM json_each(:territories))"
		args = append(args, sql.Named("territories", string(rawTerr)))
	}
	visits := `SELECT f.rep, f.customer, f.visit, f.flag, d.day FROM facts f JOIN days d ON f.at >= d.s AND f.at < d.e
		WHERE f.kind = 'visit' AND f.at >= :from AND f.at < :to {{scope}}`
	if q.Offset != nil { // one offset all along: the local day by arithmetic
		visits = `SELECT f.rep, f.customer, f.visit, f.flag, (f.at / 1000000000 + :offset) / 86400 AS day FROM facts f
			WHERE f.kind = 'visit' AND f.at >= :from AND f.at < :to {{scope}}`
		args = append(args, sql.Named("offset", *q.Offset))
	}
	query = strings.ReplaceAll(query, "{{visits}}", visits)
	query = strings.ReplaceAll(query, "{{scope}}", scope)
	return query, args, nil
}
