package sync

import (
	"fmt"
	"slices"

	"github.com/fieldsync/fieldsync/schema"
)

// CollectionSet validates the collections a pull or a live stream is
// restricted to, and returns them sorted without repeats; nil, meaning
// every collection, for none or for all of them. An unknown name is a
// bad_request naming its place in field.
func CollectionSet(field string, names []schema.Collection) ([]schema.Collection, error) {
	var out []schema.Collection
	for i, c := range names {
		if !c.Valid() {
			at := fmt.Sprintf("%s[%d]", field, i)
			return nil, schema.FieldErrorf(schema.CodeBadRequest, at, "%s is not a collection", at)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == len(schema.Collections()) {
		return nil, nil
	}
	return out, nil
}
