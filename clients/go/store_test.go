package fieldsync

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A write transaction's query runs as it is the first time and is prepared
// once the transaction ends; later transactions run the prepared
// statement, and what they write is the same.
func TestWriteTransactionsPrepareTheirQueriesOnce(t *testing.T) {
	ctx := context.Background()
	s, err := openStore(ctx, filepath.Join(t.TempDir(), "local.db"), time.Now)
	require.NoError(t, err)
	t.Cleanup(func() { s.close() })
	const insert = `INSERT INTO meta (key, value) VALUES (?, ?)`
	prepared := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.stmts)
	}

	require.NoError(t, s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, insert, "a", "1")
		assert.Zero(t, prepared(), "nothing prepared while the transaction holds the writer")
		return err
	}))
	assert.Equal(t, 1, prepared(), "prepared once the transaction ended")

	boom := errors.New("boom")
	require.ErrorIs(t, s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, insert, "b", "2"); err != nil {
			return err
		}
		return boom
	}), boom)
	require.NoError(t, s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, insert, "c", "3"); err != nil {
			return err
		}
		var v string
		if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, "a").Scan(&v); err != nil {
			return err
		}
		assert.Equal(t, "1", v)
		return nil
	}))
	assert.Equal(t, 2, prepared(), "the insert and the select, each once")

	got, err := collect(ctx, s.r, func(rs *sql.Rows, v *[2]string) error { return rs.Scan(&v[0], &v[1]) },
		`SELECT key, value FROM meta WHERE key IN ('a', 'b', 'c') ORDER BY key`)
	require.NoError(t, err)
	assert.Equal(t, [][2]string{{"a", "1"}, {"c", "3"}}, got, "the rolled-back write is not kept")
}
