package schema

import "slices"

// Collection names a kind of synced record.
type Collection string

// The synced collections.
const (
	Territories Collection = "territories"
	Customers   Collection = "customers"
	Products    Collection = "products"
	PriceLists  Collection = "price_lists"
	RoutePlans  Collection = "route_plans"
	Visits      Collection = "visits"
	Orders      Collection = "orders"
	Photos      Collection = "photos"
	Targets     Collection = "targets"
)

// collections lists every collection, in the order a client should apply
// them so that references point at records it already has.
var collections = []Collection{Territories, Customers, Products, PriceLists, RoutePlans, Visits, Orders, Photos, Targets}

// Collections lists every collection, in the order a client should apply
// them so that references point at records it already has; a copy.
func Collections() []Collection { return slices.Clone(collections) }

// Valid reports whether c is one of the synced collections.
func (c Collection) Valid() bool {
	for _, k := range collections {
		if c == k {
			return true
		}
	}
	return false
}

// MaxIDLength is the longest record or user id accepted.
const MaxIDLength = 128

// CheckID reports whether id is usable as a record id: 1 to MaxIDLength
// characters of letters, digits and . _ : -
func CheckID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == ':' || c == '-':
		default:
			return false
		}
	}
	return true
}
