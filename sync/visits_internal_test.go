package sync

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

// TestWithCheckOutMissing checks that marking a visit's encoding gives
// what encoding the marked visit gives, byte for byte, for a visit with
// as few and as many fields as there are: it fails when check_out_missing
// stops being the last field of schema.Visit.
func TestWithCheckOutMissing(t *testing.T) {
	lat, lng, dist, within, secs := 52.5, 13.4, 12.5, true, int64(300)
	at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for name, v := range map[string]schema.Visit{
		"fewest fields": {CustomerID: "c-1", CheckIn: schema.GeoPoint{At: at}},
		"every field": {CustomerID: "c-1", RoutePlanID: "p-1", CheckIn: schema.GeoPoint{At: at, Lat: &lat, Lng: &lng},
			Notes: "left \"early\" <b>&</b> \u2028", Outcome: "order", RepID: "u-1", DistanceM: &dist, WithinGeofence: &within,
			DurationS: &secs},
	} {
		data, err := json.Marshal(&v)
		require.NoError(t, err, name)
		v.CheckOutMissing = true
		want, err := json.Marshal(&v)
		require.NoError(t, err, name)
		assert.Equal(t, string(want), string(withCheckOutMissing(data)), name)
	}
}
