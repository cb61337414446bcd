package sqlitestore

import (
	"context"

	"github.com/fieldsync/fieldsync/sync"
)

// Sizes reports the bytes each table and index takes in the database file,
// counted in whole pages by SQLite's dbstat table, with each table's row
// count, and the free pages the file holds as one entry of kind "free". A
// WITHOUT ROWID table keeps its rows in its primary key, so it has no
// separate primary key index. Sizes reads every page: it takes as long as
// reading the file.
func (s *Store) Sizes(ctx context.Context) ([]sync.TableSize, error) {
	const op = "sqlitestore.Sizes"
	rows, err := s.r.QueryContext(ctx, `
		SELECT d.name, COALESCE(m.type, 'table'), COALESCE(m.tbl_name, d.name), SUM(d.pgsize)
		FROM dbstat AS d LEFT JOIN sqlite_schema AS m ON m.name = d.name
		GROUP BY d.name ORDER BY d.name`)
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	var sizes []sync.TableSize
	for rows.Next() {
		var t sync.TableSize
		if err := rows.Scan(&t.Name, &t.Kind, &t.Table, &t.Bytes); err != nil {
			rows.Close()
			return nil, errorf("%s: %w", op, err)
		}
		sizes = append(sizes, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	counts := map[string]int64{}
	for i, t := range sizes {
		n, ok := counts[t.Table]
		if !ok {
			// Names come from sqlite_schema, not from callers.
			if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+t.Table+`"`).Scan(&n); err != nil {
				return nil, errorf("%s: count %s: %w", op, t.Table, err)
			}
			counts[t.Table] = n
		}
		sizes[i].Rows = n
	}
	var free, pageSize int64
	if err := s.r.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	return append(sizes, sync.TableSize{Name: "free_pages", Kind: sync.SizeFree, Bytes: free * pageSize}), nil
}
