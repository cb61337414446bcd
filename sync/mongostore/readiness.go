package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
)

// writeProbeTimeout bounds CheckWrite: a store that takes longer to
// accept one small write is not ready for traffic.
const writeProbeTimeout = 2 * time.Second

// writeProbeID is the _id of the document CheckWrite writes in meta.
const writeProbeID = "write_probe"

// CheckWrite reports whether the store takes writes now, by upserting a
// small probe document: a primary lost (reads may still answer), a full
// disk or a write refused for any other reason fails it with an error
// marked schema.ErrUnavailable. It writes every time it is called;
// callers decide how often.
func (s *Store) CheckWrite(ctx context.Context) error {
	const op = "mongostore.CheckWrite"
	ctx, cancel := context.WithTimeout(ctx, writeProbeTimeout)
	defer cancel()
	_, err := s.meta.UpdateOne(ctx, bson.M{"_id": writeProbeID}, bson.M{"$set": bson.M{"at": s.now().UnixNano()}}, options.Update().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, schema.ErrUnavailable, err)
	}
	return nil
}
