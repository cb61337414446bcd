package mongostore

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/fieldsync/fieldsync/sync"
)

// collStats is the part of the collStats command's answer Sizes reads.
// Numbers are floats because servers answer them as int32, int64 or double.
type collStats struct {
	Count       float64            `bson:"count"`
	Size        float64            `bson:"size"`
	StorageSize float64            `bson:"storageSize"`
	IndexSizes  map[string]float64 `bson:"indexSizes"`
}

// Sizes reports, for each collection of the database, the bytes it takes
// and the bytes of each of its indexes, from the collStats command, with
// its document count. A collection's bytes are its storage size (on disk,
// compressed) where the server reports one, else its data size. Servers
// differ in what they count: FerretDB answers from its own backend's
// tables and may leave some numbers at zero.
func (s *Store) Sizes(ctx context.Context) ([]sync.TableSize, error) {
	const op = "mongostore.Sizes"
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fail(op, err)
	}
	slices.Sort(names)
	var sizes []sync.TableSize
	for _, name := range names {
		var st collStats
		if err := s.db.RunCommand(ctx, bson.D{{Key: "collStats", Value: name}}).Decode(&st); err != nil {
			return nil, fail(op, err)
		}
		bytes := st.StorageSize
		if bytes == 0 {
			bytes = st.Size
		}
		rows := int64(st.Count)
		sizes = append(sizes, sync.TableSize{Name: name, Kind: sync.SizeTable, Table: name, Rows: rows, Bytes: int64(bytes)})
		indexes := make([]string, 0, len(st.IndexSizes))
		for ix := range st.IndexSizes {
			indexes = append(indexes, ix)
		}
		slices.Sort(indexes)
		for _, ix := range indexes {
			sizes = append(sizes, sync.TableSize{Name: name + "." + ix, Kind: sync.SizeIndex, Table: name, Rows: rows, Bytes: int64(st.IndexSizes[ix])})
		}
	}
	return sizes, nil
}
