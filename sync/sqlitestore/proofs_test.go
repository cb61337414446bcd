package sqlitestore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/sync"
)

func TestPhotoProofsReadAheadAnswerAsTheTableDoes(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	lat := 52.5
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		return tx.SaveProof(ctx, &sync.PhotoProof{UserID: "u-1", SHA256: "aa", Size: 10, Lat: &lat, At: at})
	}))
	require.NoError(t, s.Update(ctx, func(rtx sync.RecordTx) error {
		tx := rtx.(*tx)
		require.NoError(t, tx.PhotoProofs(ctx, "u-1", []string{"aa", "bb"}))
		got, err := tx.PhotoProof(ctx, "u-1", "aa")
		require.NoError(t, err)
		assert.Equal(t, &sync.PhotoProof{UserID: "u-1", SHA256: "aa", Size: 10, Lat: &lat, At: at}, got)
		_, err = tx.PhotoProof(ctx, "u-1", "bb")
		assert.ErrorIs(t, err, sync.ErrNotFound, "read ahead as missing")
		_, err = tx.PhotoProof(ctx, "u-2", "aa")
		assert.ErrorIs(t, err, sync.ErrNotFound, "another user's proof is no proof")

		require.NoError(t, tx.SaveProof(ctx, &sync.PhotoProof{UserID: "u-1", SHA256: "bb", Size: 20, At: at}))
		got, err = tx.PhotoProof(ctx, "u-1", "bb")
		require.NoError(t, err, "saved since it was read ahead as missing")
		assert.Equal(t, int64(20), got.Size)
		require.NoError(t, tx.SaveProof(ctx, &sync.PhotoProof{UserID: "u-1", SHA256: "aa", Size: 99, At: at}))
		got, err = tx.PhotoProof(ctx, "u-1", "aa")
		require.NoError(t, err)
		assert.Equal(t, int64(10), got.Size, "the first proof stays")
		return nil
	}))
}
