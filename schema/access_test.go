package schema

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAccessTable(t *testing.T) {
	rep := Principal{UserID: "u-rep", Role: RoleRep, Territories: []string{"t-1"}}
	mgr := Principal{UserID: "u-mgr", Role: RoleManager, Territories: []string{"t-1", "t-2"}}
	dist := Principal{UserID: "u-dist", Role: RoleDistributor, DistributorID: "d-1"}
	admin := Principal{UserID: "u-admin", Role: RoleAdmin}

	inT1 := Facts{Territories: []string{"t-1"}}
	inT3 := Facts{Territories: []string{"t-3"}}
	repOwnT1 := Facts{Territories: []string{"t-1"}, Owner: "u-rep"}
	otherRepT1 := Facts{Territories: []string{"t-1"}, Owner: "u-other"}
	servedByD1 := Facts{Territories: []string{"t-3"}, Distributor: "d-1"}
	servedByD2 := Facts{Territories: []string{"t-1"}, Distributor: "d-2"}
	global := Facts{}

	const (
		R = "read"
		C = OpCreate
		U = OpUpdate
		D = OpDelete
	)
	tests := []struct {
		who   Principal
		coll  Collection
		op    Op // "read" for reads
		facts Facts
		want  bool
	}{
		// territories: rep reads own, manager overseen, distributor none, admin all
		{rep, Territories, R, inT1, true},
		{rep, Territories, R, inT3, false},
		{rep, Territories, C, inT1, false},
		{mgr, Territories, R, inT1, true},
		{mgr, Territories, U, inT1, false},
		{dist, Territories, R, inT1, false},
		{admin, Territories, C, inT3, true},
		// customers
		{rep, Customers, R, inT1, true},
		{rep, Customers, R, inT3, false},
		{rep, Customers, U, inT1, true},
		{rep, Customers, C, inT1, false},
		{rep, Customers, D, inT1, false},
		{mgr, Customers, C, inT1, true},
		{mgr, Customers, D, inT1, true},
		{mgr, Customers, U, inT3, false},
		{dist, Customers, R, servedByD1, true},
		{dist, Customers, R, servedByD2, false},
		{dist, Customers, U, servedByD1, false},
		{admin, Customers, D, inT3, true},
		// products: everyone reads, only admin writes
		{rep, Products, R, global, true},
		{dist, Products, R, global, true},
		{mgr, Products, U, global, false},
		{admin, Products, C, global, true},
		// price lists
		{rep, PriceLists, R, inT1, true},
		{rep, PriceLists, R, inT3, false},
		{mgr, PriceLists, R, inT3, true},
		{dist, PriceLists, R, servedByD1, true},
		{dist, PriceLists, R, servedByD2, false},
		{mgr, PriceLists, C, global, false},
		// route plans
		{rep, RoutePlans, R, repOwnT1, true},
		{rep, RoutePlans, R, otherRepT1, false},
		{rep, RoutePlans, U, repOwnT1, true},
		{rep, RoutePlans, C, repOwnT1, false},
		{mgr, RoutePlans, C, otherRepT1, true},
		{mgr, RoutePlans, R, inT3, false},
		{dist, RoutePlans, R, repOwnT1, false},
		// visits
		{rep, Visits, C, repOwnT1, true},
		{rep, Visits, U, repOwnT1, true},
		{rep, Visits, D, repOwnT1, false},
		{rep, Visits, R, otherRepT1, false},
		{mgr, Visits, R, otherRepT1, true},
		{mgr, Visits, U, otherRepT1, false},
		{dist, Visits, R, otherRepT1, false},
		// orders
		{rep, Orders, C, repOwnT1, true},
		{rep, Orders, R, otherRepT1, false},
		{mgr, Orders, R, otherRepT1, true},
		{mgr, Orders, U, otherRepT1, true},
		{mgr, Orders, C, otherRepT1, false},
		{dist, Orders, C, Facts{Owner: "u-dist", Distributor: "d-1"}, true},
		{dist, Orders, R, Facts{Owner: "u-dist2", Distributor: "d-1"}, true},
		{dist, Orders, R, Facts{Owner: "u-rep", Territories: []string{"t-1"}}, false},
		// photos
		{rep, Photos, C, repOwnT1, true},
		{rep, Photos, U, repOwnT1, false},
		{rep, Photos, R, otherRepT1, false},
		{mgr, Photos, R, otherRepT1, true},
		{mgr, Photos, C, otherRepT1, false},
		{admin, Photos, R, inT3, true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%s/%s/%v", tt.who.Role, tt.coll, tt.op, tt.facts)
		t.Run(name, func(t *testing.T) {
			var got bool
			if tt.op == R {
				got = CanRead(tt.who, tt.coll, tt.facts)
			} else {
				got = CanWrite(tt.who, tt.op, tt.coll, tt.facts)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestEveryRoleAndCollectionHasADecision(t *testing.T) {
	// A manager and a rep must be able to read something of each collection
	// the contract gives them; a distributor only its four.
	wantRead := map[Role][]Collection{
		RoleRep:         Collections(),
		RoleManager:     Collections(),
		RoleAdmin:       Collections(),
		RoleDistributor: {Customers, Products, PriceLists, Orders},
	}
	for role, colls := range wantRead {
		for _, c := range Collections() {
			got := AccessRule(role, c).Read != ScopeNone
			want := false
			for _, w := range colls {
				want = want || w == c
			}
			assert.Equalf(t, want, got, "%s reads %s", role, c)
		}
	}
}

func TestDistributorWithoutIDReachesNothing(t *testing.T) {
	p := Principal{UserID: "u", Role: RoleDistributor}
	assert.False(t, CanRead(p, Customers, Facts{}))
	assert.False(t, CanRead(p, Orders, Facts{Owner: "u"}))
}

func TestRepFieldRestrictions(t *testing.T) {
	assert.ElementsMatch(t, []string{"contacts", "lat", "lng", "notes"}, AccessRule(RoleRep, Customers).UpdateFields)
	assert.Equal(t, []string{"stops[].status"}, AccessRule(RoleRep, RoutePlans).UpdateFields)
	assert.Nil(t, AccessRule(RoleManager, Customers).UpdateFields)
}
