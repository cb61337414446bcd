package mongotest

import (
	"context"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Through the proxy, clients with normal pools in parallel keep every
// $inc and let exactly one of several version-guarded updates win: what
// FerretDB alone gets wrong under concurrency.
func TestProxyMakesEachWriteAtomic(t *testing.T) {
	ctx := context.Background()
	bed, err := Start(ctx, Config{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { bed.Close() })

	const clients, workers, incs = 2, 4, 100
	colls := make([]*mongo.Collection, clients)
	for i := range colls {
		c, err := mongo.Connect(ctx, options.Client().ApplyURI(bed.URI()).SetMaxPoolSize(8))
		require.NoError(t, err)
		t.Cleanup(func() { c.Disconnect(context.Background()) })
		colls[i] = c.Database("bed").Collection("counters")
	}
	_, err = colls[0].InsertOne(ctx, bson.M{"_id": "n", "n": 0, "version": 0})
	require.NoError(t, err)

	var wg gosync.WaitGroup
	for w := range clients * workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range incs {
				_, err := colls[w%clients].UpdateOne(ctx, bson.M{"_id": "n"}, bson.M{"$inc": bson.M{"n": 1}})
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	var got struct{ N int }
	require.NoError(t, colls[0].FindOne(ctx, bson.M{"_id": "n"}).Decode(&got))
	assert.Equal(t, clients*workers*incs, got.N, "every $inc kept")

	for round := range 10 {
		var wins gosync.Map
		for w := range clients * workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := colls[w%clients].UpdateOne(ctx, bson.M{"_id": "n", "version": round},
					bson.M{"$set": bson.M{"version": round + 1, "by": fmt.Sprint(w)}})
				if assert.NoError(t, err) && res.ModifiedCount == 1 {
					wins.Store(w, true)
				}
			}()
		}
		wg.Wait()
		n := 0
		wins.Range(func(any, any) bool { n++; return true })
		assert.Equal(t, 1, n, "round %d: winners of one version-guarded update", round)
	}
}

// A cursor read in several batches works through the proxy, and Close
// ends open connections.
func TestProxyCursorsAndClose(t *testing.T) {
	ctx := context.Background()
	bed, err := Start(ctx, Config{Dir: t.TempDir()})
	require.NoError(t, err)
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(bed.URI()))
	require.NoError(t, err)
	defer client.Disconnect(context.Background())
	coll := client.Database("bed").Collection("docs")
	docs := make([]any, 250)
	for i := range docs {
		docs[i] = bson.M{"_id": i}
	}
	_, err = coll.InsertMany(ctx, docs)
	require.NoError(t, err)
	cur, err := coll.Find(ctx, bson.M{}, options.Find().SetBatchSize(20))
	require.NoError(t, err)
	var all []bson.M
	require.NoError(t, cur.All(ctx, &all))
	assert.Len(t, all, 250)

	require.NoError(t, bed.Close())
	short, cancel := context.WithTimeout(ctx, 2e9)
	defer cancel()
	assert.Error(t, client.Ping(short, nil), "the bed is closed")
}

// A test may close its bed early, as an outage would: the store answers
// no more, and the close at the test's end does nothing.
func TestForTestClosesEarlyAndOnce(t *testing.T) {
	ctx := context.Background()
	bed := ForTest(t)
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(bed.URI()+"?serverSelectionTimeoutMS=1000"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	require.NoError(t, c.Ping(ctx, nil))

	require.NoError(t, bed.Close())
	require.NoError(t, bed.Close(), "a second Close does nothing")
	assert.Error(t, c.Ping(ctx, nil), "a closed bed answers no more")
}

// A test's bed runs in a process of its own, built without the race
// detector, which ends with its standard input: a test process that dies
// leaves no store behind.
func TestForTestRunsApartAndEndsWithItsTest(t *testing.T) {
	ctx := context.Background()
	bed := ForTest(t)
	require.NotNil(t, bed.proc, "a process of its own")
	for _, uri := range []string{bed.URI(), bed.DirectURI()} {
		c, err := mongo.Connect(ctx, options.Client().ApplyURI(uri+"?serverSelectionTimeoutMS=5000"))
		require.NoError(t, err)
		assert.NoError(t, c.Ping(ctx, nil), uri)
		c.Disconnect(ctx)
	}
	require.NoError(t, bed.proc.stdin.Close())
	select {
	case err := <-bed.proc.done:
		assert.NoError(t, err, "testmongo ends cleanly when its input ends")
		bed.proc.done <- err // for the Close at the test's end
	case <-time.After(30 * time.Second):
		t.Fatal("testmongo still runs after its standard input ended")
	}
}
