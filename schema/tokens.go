package schema

import (
	"slices"
	"strings"
)

// Read tokens turn the access table into something a store can index. A
// record carries the tokens of every scope that reaches it
// (RecordTokens); a caller holds one token per scope its role reads with
// (ReadTokens); the caller may read the record exactly when the two sets
// meet. Tokens are opaque strings, the same in every store.

// RecordTokens returns the read tokens of a record of collection c with
// facts f.
func RecordTokens(c Collection, f Facts) []string {
	prefix := string(c) + "|"
	tokens := []string{prefix + "all"}
	for _, t := range f.Territories {
		if t != "" {
			tokens = append(tokens, prefix+"terr:"+t)
		}
	}
	if f.Owner != "" {
		tokens = append(tokens, prefix+"own:"+f.Owner)
	}
	if f.Distributor != "" {
		tokens = append(tokens, prefix+"dist:"+f.Distributor)
	}
	slices.Sort(tokens)
	return slices.Compact(tokens)
}

// ReadTokens returns every read token p holds, across all collections.
func ReadTokens(p Principal) []string {
	var tokens []string
	for _, c := range collections {
		prefix := string(c) + "|"
		switch scope := AccessRule(p.Role, c).Read; scope {
		case ScopeAll:
			tokens = append(tokens, prefix+"all")
		case ScopeTerritory:
			for _, t := range p.Territories {
				tokens = append(tokens, prefix+"terr:"+t)
			}
		case ScopeOwn:
			if p.Role == RoleDistributor {
				if p.DistributorID != "" {
					tokens = append(tokens, prefix+"dist:"+p.DistributorID)
				}
			} else {
				tokens = append(tokens, prefix+"own:"+p.UserID)
			}
		case ScopeDistributor:
			if p.DistributorID != "" {
				tokens = append(tokens, prefix+"dist:"+p.DistributorID)
			}
		}
	}
	slices.Sort(tokens)
	return slices.Compact(tokens)
}

// Intersects reports whether two sorted token lists share a token.
func Intersects(a, b []string) bool {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			return true
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return false
}

// TokenCollection returns the collection a read token is about.
func TokenCollection(token string) Collection {
	c, _, _ := strings.Cut(token, "|")
	return Collection(c)
}

// TokensIn returns the tokens about one of collections, in their order;
// all of them when collections is empty.
func TokensIn(tokens []string, collections []Collection) []string {
	if len(collections) == 0 {
		return tokens
	}
	var out []string
	for _, t := range tokens {
		if slices.Contains(collections, TokenCollection(t)) {
			out = append(out, t)
		}
	}
	return out
}
