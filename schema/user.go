package schema

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role is what a user is to the organisation; it decides what the user may
// read and write.
type Role string

// The four roles.
const (
	RoleRep         Role = "rep"
	RoleManager     Role = "manager"
	RoleDistributor Role = "distributor"
	RoleAdmin       Role = "admin"
)

// roles lists every role.
var roles = []Role{RoleRep, RoleManager, RoleDistributor, RoleAdmin}

// Roles lists every role; a copy.
func Roles() []Role { return slices.Clone(roles) }

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return slices.Contains(roles, r) }

// Principal is the authenticated caller of a request: who it is and its
// scope, taken from the user record, never from what a client claims.
type Principal struct {
	UserID        string
	Role          Role
	Territories   []string // worked in (rep) or overseen (manager)
	DistributorID string   // for distributors: the distributor they act for
	DeviceID      string
	LoginID       string
}

// HasTerritory reports whether t is in the principal's territories.
func (p Principal) HasTerritory(t string) bool { return t != "" && slices.Contains(p.Territories, t) }

// User is a person or integration that signs in to fieldsync.
type User struct {
	ID            string    `json:"id"`
	Username      string    `json:"username"`
	PasswordHash  string    `json:"-"`
	Role          Role      `json:"role"`
	Territories   []string  `json:"territories"`
	DistributorID string    `json:"distributor_id"`
	Active        bool      `json:"active"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Principal returns the scope of u signed in on a device under a login.
func (u *User) Principal(deviceID, loginID string) Principal {
	return Principal{
		UserID: u.ID, Role: u.Role, Territories: u.Territories, DistributorID: u.DistributorID,
		DeviceID: deviceID, LoginID: loginID,
	}
}

// Username and password limits.
const (
	MinUsernameLength = 3
	MaxUsernameLength = 64
	MinPasswordLength = 8
	MaxPasswordLength = 72 // what bcrypt reads
	MaxTerritories    = 500
)

// CheckUser reports every problem with a user's username, role, scope and,
// when not empty, password.
func CheckUser(u *User, password string) error {
	var problems []Problem
	add := func(field, code, format string, args ...any) {
		problems = append(problems, Problem{Field: field, Code: code, Message: field + " " + fmt.Sprintf(format, args...)})
	}
	if n := len(u.Username); n < MinUsernameLength || n > MaxUsernameLength || !validUsername(u.Username) {
		add("username", ProblemInvalidValue, "must be %d to %d letters, digits or . _ @ -", MinUsernameLength, MaxUsernameLength)
	}
	if password != "" && (len(password) < MinPasswordLength || len(password) > MaxPasswordLength) {
		add("password", ProblemOutOfRange, "must be %d to %d bytes long", MinPasswordLength, MaxPasswordLength)
	}
	if !u.Role.Valid() {
		add("role", ProblemInvalidValue, "must be one of rep, manager, distributor, admin")
	}
	if len(u.Territories) > MaxTerritories {
		add("territories", ProblemTooMany, "must have at most %d items", MaxTerritories)
	}
	for i, t := range u.Territories {
		if !CheckID(t) {
			add(fmt.Sprintf("territories[%d]", i), ProblemInvalidValue, "must be a valid id")
		}
	}
	switch {
	case u.Role == RoleDistributor && !CheckID(u.DistributorID):
		add("distributor_id", ProblemRequired, "is required for a distributor")
	case u.Role != RoleDistributor && u.DistributorID != "":
		add("distributor_id", ProblemInvalidValue, "is only for distributors")
	}
	return validationError(problems)
}

func validUsername(s string) bool {
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-", c)
		if !ok {
			return false
		}
	}
	return true
}
