package schema

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Tokens must decide exactly what CanRead decides, for every role,
// collection and mix of facts.
func TestTokensAgreeWithTheAccessTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(options ...string) string { return options[rng.IntN(len(options))] }
	someTerritories := func() []string {
		var ts []string
		for range rng.IntN(3) {
			ts = append(ts, pick("t-1", "t-2", "t-3"))
		}
		return ts
	}
	for i := range 20000 {
		p := Principal{
			UserID:        pick("u-1", "u-2"),
			Role:          Roles()[rng.IntN(len(Roles()))],
			Territories:   someTerritories(),
			DistributorID: pick("", "d-1", "d-2"),
		}
		f := Facts{Territories: someTerritories(), Owner: pick("", "u-1", "u-2"), Distributor: pick("", "d-1", "d-2")}
		c := Collections()[rng.IntN(len(Collections()))]
		want := CanRead(p, c, f)
		got := Intersects(ReadTokens(p), RecordTokens(c, f))
		if got != want {
			t.Fatalf("case %d: %+v reading %s with %+v: tokens say %v, table says %v\nread %v\nrecord %v",
				i, p, c, f, got, want, ReadTokens(p), RecordTokens(c, f))
		}
	}
}

func TestIntersects(t *testing.T) {
	tests := []struct {
		a, b []string
		want bool
	}{
		{nil, nil, false},
		{[]string{"a"}, nil, false},
		{[]string{"a", "c"}, []string{"b", "c"}, true},
		{[]string{"a", "c"}, []string{"b", "d"}, false},
		{[]string{"z"}, []string{"a", "z"}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.a, tt.b), func(t *testing.T) {
			assert.Equal(t, tt.want, Intersects(tt.a, tt.b))
		})
	}
}

func TestTokensIn(t *testing.T) {
	rep := ReadTokens(Principal{UserID: "u-1", Role: RoleRep, Territories: []string{"t-1"}})
	tests := []struct {
		name        string
		collections []Collection
		want        []string
	}{
		{"none named: all", nil, rep},
		{"one", []Collection{Customers}, []string{"customers|terr:t-1"}},
		{"two", []Collection{Visits, Products}, []string{"products|all", "visits|own:u-1"}},
		{"one it cannot read", []Collection{Collection("nope")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, TokensIn(rep, tt.collections))
		})
	}
	for _, tok := range rep {
		assert.True(t, TokenCollection(tok).Valid(), tok)
	}
	assert.Equal(t, Customers, TokenCollection(RecordTokens(Customers, Facts{Territories: []string{"t-9"}})[1]))
}
