package sync

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/fieldsync/fieldsync/schema"
)

// fieldsOf splits canonical record data into its top-level fields.
func fieldsOf(data json.RawMessage) (map[string]json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return fields, nil
	}
	err := json.Unmarshal(data, &fields)
	return fields, err
}

// changedFields lists, sorted, the top-level fields whose values differ
// between two versions of a record's canonical data. A missing field and
// an empty one (omitted by the encoder) are the same.
func changedFields(before, after map[string]json.RawMessage) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range []map[string]json.RawMessage{before, after} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				if !bytes.Equal(before[k], after[k]) {
					out = append(out, k)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkUpdateFields refuses an update that changes a field the rule does
// not let the caller change.
func checkUpdateFields(rule schema.Rule, before, after map[string]json.RawMessage) *schema.Error {
	if rule.UpdateFields == nil {
		return nil
	}
	for _, f := range changedFields(before, after) {
		if slices.Contains(rule.UpdateFields, f) {
			continue
		}
		if item, ok := itemOnlyRule(rule.UpdateFields, f); ok && onlyItemFieldChanged(before[f], after[f], item) {
			continue
		}
		return rejection(schema.CodeForbidden, f, "%s may not be changed by this role", f)
	}
	return nil
}

// itemOnlyRule finds a rule "list[].field" for a list field.
func itemOnlyRule(allowed []string, list string) (string, bool) {
	for _, a := range allowed {
		if rest, ok := strings.CutPrefix(a, list+"[]."); ok {
			return rest, true
		}
	}
	return "", false
}

// onlyItemFieldChanged reports whether two JSON lists of objects have the
// same length and differ only in the named field of their items.
func onlyItemFieldChanged(before, after json.RawMessage, field string) bool {
	var b, a []map[string]json.RawMessage
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil || len(a) != len(b) {
		return false
	}
	for i := range a {
		delete(a[i], field)
		delete(b[i], field)
		if len(changedFields(b[i], a[i])) > 0 {
			return false
		}
	}
	return true
}

// merge combines a client's write made from base with the server's
// current data when they changed different fields: the current data with
// the client's changed fields laid over it. ok is false when both changed
// a field.
func merge(base, current, client map[string]json.RawMessage) (merged map[string]json.RawMessage, ok bool) {
	theirs := changedFields(base, current)
	mine := changedFields(base, client)
	for _, f := range mine {
		if slices.Contains(theirs, f) {
			return nil, false
		}
	}
	merged = make(map[string]json.RawMessage, len(current)+len(mine))
	for k, v := range current {
		merged[k] = v
	}
	for _, f := range mine {
		if v, ok := client[f]; ok {
			merged[f] = v
		} else {
			delete(merged, f)
		}
	}
	return merged, true
}
