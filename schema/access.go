package schema

import "slices"

// Scope says which records of a collection a rule reaches.
type Scope string

// Scopes, from nothing to everything.
const (
	// ScopeNone reaches no record.
	ScopeNone Scope = ""
	// ScopeOwn reaches the records the caller owns: its visits, photos and
	// route plans (as the rep), the orders it placed — or, for a
	// distributor, the orders its distributor placed.
	ScopeOwn Scope = "own"
	// ScopeTerritory reaches records that belong to one of the caller's
	// territories: those a rep works in, or those a manager oversees.
	ScopeTerritory Scope = "territory"
	// ScopeDistributor reaches records for the caller's distributor: the
	// customers it serves and its price lists.
	ScopeDistributor Scope = "distributor"
	// ScopeAll reaches every record of the collection.
	ScopeAll Scope = "all"
)

// Op is a kind of write.
type Op string

// Write operations.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Rule is what one role may do with one collection.
type Rule struct {
	Read   Scope
	Create Scope
	Update Scope
	Delete Scope
	// UpdateFields, when not nil, lists the only fields an update may
	// change; any other field must stay as it is. A name of the form
	// "stops[].status" allows changing that field of each list item while
	// the list otherwise stays the same.
	UpdateFields []string
}

// Scope returns the rule's scope for op.
func (r Rule) Scope(op Op) Scope {
	switch op {
	case OpCreate:
		return r.Create
	case OpUpdate:
		return r.Update
	case OpDelete:
		return r.Delete
	}
	return ScopeNone
}

var (
	adminRule    = Rule{Read: ScopeAll, Create: ScopeAll, Update: ScopeAll, Delete: ScopeAll}
	readAllRule  = Rule{Read: ScopeAll}
	ownTerritory = Rule{Read: ScopeTerritory, Create: ScopeTerritory, Update: ScopeTerritory, Delete: ScopeTerritory}
)

// accessRules is the read/write table of the HTTP contract. A collection
// missing from a role's row is out of that role's reach.
var accessRules = map[Role]map[Collection]Rule{
	RoleRep: {
		Territories: {Read: ScopeTerritory},
		Customers:   {Read: ScopeTerritory, Update: ScopeTerritory, UpdateFields: []string{"contacts", "lat", "lng", "notes"}},
		Products:    readAllRule,
		PriceLists:  {Read: ScopeTerritory},
		RoutePlans:  {Read: ScopeOwn, Update: ScopeOwn, UpdateFields: []string{"stops[].status"}},
		Visits:      {Read: ScopeOwn, Create: ScopeOwn, Update: ScopeOwn},
		Orders:      {Read: ScopeOwn, Create: ScopeOwn, Update: ScopeOwn},
		Photos:      {Read: ScopeOwn, Create: ScopeOwn},
		Targets:     {Read: ScopeOwn},
	},
	RoleManager: {
		Territories: {Read: ScopeTerritory},
		Customers:   ownTerritory,
		Products:    readAllRule,
		PriceLists:  readAllRule,
		RoutePlans:  ownTerritory,
		Visits:      {Read: ScopeTerritory},
		Orders:      {Read: ScopeTerritory, Update: ScopeTerritory},
		Photos:      {Read: ScopeTerritory},
		Targets:     ownTerritory,
	},
	RoleDistributor: {
		Customers:  {Read: ScopeDistributor},
		Products:   readAllRule,
		PriceLists: {Read: ScopeDistributor},
		Orders:     {Read: ScopeOwn, Create: ScopeOwn, Update: ScopeOwn},
	},
	RoleAdmin: {
		Territories: adminRule, Customers: adminRule, Products: adminRule, PriceLists: adminRule,
		RoutePlans: adminRule, Visits: adminRule, Orders: adminRule, Photos: adminRule, Targets: adminRule,
	},
}

// AccessRule returns what role r may do with collection c.
func AccessRule(r Role, c Collection) Rule { return accessRules[r][c] }

// Facts is what the access rules need to know of one record: where it
// belongs and who owns it. The sync engine derives them from the record
// and the records it refers to.
type Facts struct {
	// Territories the record belongs to: a territory itself; a customer's
	// territory; a visit's, order's or photo's customer's territory; the
	// territories of a route plan's rep when it was written; the
	// territories of a price list's customers; the territories of a
	// target's rep when it was written.
	Territories []string
	// Owner is the user who owns the record: the rep of a visit, photo or
	// route plan or target, the user who placed an order.
	Owner string
	// Distributor is the distributor the record is for: the one serving a
	// customer, the one a price list is for, the one whose user placed an
	// order.
	Distributor string
}

// Reaches reports whether scope s, held by p, reaches a record with facts f.
func (s Scope) Reaches(p Principal, f Facts) bool {
	switch s {
	case ScopeAll:
		return true
	case ScopeOwn:
		if p.Role == RoleDistributor {
			return p.DistributorID != "" && f.Distributor == p.DistributorID
		}
		return f.Owner != "" && f.Owner == p.UserID
	case ScopeTerritory:
		return slices.ContainsFunc(f.Territories, p.HasTerritory)
	case ScopeDistributor:
		return p.DistributorID != "" && f.Distributor == p.DistributorID
	}
	return false
}

// CanRead reports whether p may read a record of collection c with facts f.
func CanRead(p Principal, c Collection, f Facts) bool {
	return AccessRule(p.Role, c).Read.Reaches(p, f)
}

// CanWrite reports whether p may perform op on a record of collection c
// with facts f. For an update, both the record as stored and the record as
// written must be reachable: call it with each one's facts.
func CanWrite(p Principal, op Op, c Collection, f Facts) bool {
	return AccessRule(p.Role, c).Scope(op).Reaches(p, f)
}
