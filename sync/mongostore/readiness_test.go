package mongostore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
)

// CheckWrite writes its probe document each time it is called, and a
// store that cannot take the write is reported unavailable.
func TestReadyCheckWriteWrites(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	var at []int64
	for range 2 {
		require.NoError(t, s.CheckWrite(ctx))
		var probe struct {
			At int64 `bson:"at"`
		}
		require.NoError(t, findOne(ctx, "test", s.meta, bson.M{"_id": writeProbeID}, nil, &probe))
		at = append(at, probe.At)
	}
	assert.Positive(t, at[0])
	assert.Greater(t, at[1], at[0], "written again")

	client, err := mongo.Connect(ctx, options.Client().ApplyURI(ferretURI(t)).SetMaxPoolSize(1))
	require.NoError(t, err)
	gone, err := New(ctx, client, s.db.Name())
	require.NoError(t, err)
	require.NoError(t, client.Disconnect(ctx))
	assert.ErrorIs(t, gone.CheckWrite(ctx), schema.ErrUnavailable)
}
