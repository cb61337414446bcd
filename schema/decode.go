package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Record is a decoded record of one of the synced collections.
type Record interface {
	// Validate returns nil or a validation error listing every problem.
	Validate() error
}

// New returns a pointer to a zero record of collection c, or an error
// (*Error with code validation_failed and field "collection") for an
// unknown collection.
func New(c Collection) (Record, error) {
	switch c {
	case Territories:
		return new(Territory), nil
	case Customers:
		return new(Customer), nil
	case Products:
		return new(Product), nil
	case PriceLists:
		return new(PriceList), nil
	case RoutePlans:
		return new(RoutePlan), nil
	case Visits:
		return new(Visit), nil
	case Orders:
		return new(Order), nil
	case Photos:
		return new(Photo), nil
	case Targets:
		return new(Target), nil
	}
	return nil, validationError([]Problem{{
		Field:   "collection",
		Code:    ProblemInvalidValue,
		Message: "collection " + strconv.Quote(string(c)) + " is not one of the synced collections",
	}})
}

// maxDepth is how deeply objects and arrays may nest in a record.
const maxDepth = 32

// MaxRecordBytes is the size, in bytes of JSON, of the largest record of
// any collection but price lists, which hold up to 10000 customers and
// 5000 prices and are written only by admins.
const MaxRecordBytes = 64 << 10

// maxUnknownFields is how many unknown members an object may have before
// it is refused as a whole instead of member by member.
const maxUnknownFields = 20

// Decode parses data, a JSON object, strictly into a new record of
// collection c and validates it. On failure it returns a nil record and an
// *Error with code validation_failed listing every problem found (at most
// 100), each with its field path such as `lines[2].quantity`: unknown
// fields, values of the wrong JSON type, integers (money above all) written
// with a fraction or exponent or out of range, times that are not RFC 3339,
// then whatever Validate finds in the fields that decoded. A problem with
// data as a whole (not JSON, not an object, nested too deeply) is reported
// alone, with field "data". null stands for an absent field.
//
// A record of any collection but price lists is at most MaxRecordBytes
// long, and an object with more than a few unknown members is refused as
// a whole, so that the work a bad record costs stays small.
func Decode(c Collection, data []byte) (Record, error) {
	r, err := New(c)
	if err != nil {
		return nil, err
	}
	if c != PriceLists && len(data) > MaxRecordBytes {
		return nil, validationError([]Problem{{Field: "data", Code: ProblemTooLong,
			Message: "data must be at most " + strconv.Itoa(MaxRecordBytes) + " bytes of JSON; this record has " + strconv.Itoa(len(data))}})
	}
	if decodeStrict(data, r) && r.Validate() == nil {
		return r, nil // the common case: nothing to report
	}
	// Something is wrong: walk the input to say what, field by field.
	if r, err = New(c); err != nil {
		return nil, err
	}
	obj, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	v := newValidator()
	checkValue(v, "", reflect.TypeOf(r).Elem(), false, obj)
	// checkValue dropped every value that does not fit, so what is left
	// decodes into the record without error.
	clean, err := json.Marshal(obj)
	if err == nil {
		err = json.Unmarshal(clean, r)
	}
	if err != nil {
		return nil, wholeProblem("data does not fit the record")
	}
	decoded := *v.problems
	if err := r.Validate(); err != nil {
		for _, p := range AsError(err).Problems {
			if !covered(decoded, p.Field) {
				v.append(p)
			}
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeStrict decodes data, exactly one JSON object, into r, refusing
// unknown fields and values of the wrong type. It finds no more than the
// first problem, so it only says whether there is one.
func decodeStrict(data []byte, r Record) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if dec.Decode(r) != nil {
		return false
	}
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// parseObject reads data as exactly one JSON object, keeping numbers as
// written.
func parseObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var x any
	var syntaxErr *json.SyntaxError
	switch err := dec.Decode(&x); {
	case errors.As(err, &syntaxErr):
		return nil, wholeProblem(fmt.Sprintf("data is not valid JSON (at byte %d)", syntaxErr.Offset))
	case errors.Is(err, io.EOF):
		return nil, wholeProblem("data must be a JSON object")
	case err != nil:
		return nil, wholeProblem("data is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, wholeProblem("data must be a single JSON object")
	}
	obj, ok := x.(map[string]any)
	if !ok {
		return nil, wholeProblem("data must be a JSON object")
	}
	if nestedDeeper(obj, maxDepth) {
		return nil, wholeProblem("data must not nest objects and arrays more than " + strconv.Itoa(maxDepth) + " levels deep")
	}
	return obj, nil
}

// wholeProblem returns a validation error about data as a whole.
func wholeProblem(msg string) error {
	return validationError([]Problem{{Field: "data", Code: ProblemInvalidType, Message: msg}})
}

// nestedDeeper reports whether objects and arrays in x nest more than
// levels deep; it looks no deeper than that.
func nestedDeeper(x any, levels int) bool {
	var items iter.Seq[any]
	switch x := x.(type) {
	case map[string]any:
		items = maps.Values(x)
	case []any:
		items = slices.Values(x)
	default:
		return false
	}
	if levels == 0 {
		return true
	}
	for item := range items {
		if nestedDeeper(item, levels-1) {
			return true
		}
	}
	return false
}

// covered reports whether field is, or is within, a field that already has
// a problem.
func covered(problems []Problem, field string) bool {
	for _, p := range problems {
		if field == p.Field || strings.HasPrefix(field, p.Field+".") || strings.HasPrefix(field, p.Field+"[") {
			return true
		}
	}
	return false
}

var timeType = reflect.TypeFor[time.Time]()

// checkValue checks the decoded JSON value x against the Go type t at
// path, adding a problem for each value that does not fit; it returns false
// when x itself does not fit and must be dropped. Inside objects it drops
// unknown fields and fields that do not fit; inside arrays it sets items
// that do not fit to null. money marks integers that hold money.
func checkValue(v validator, path string, t reflect.Type, money bool, x any) bool {
	if x == nil {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var ok bool
	switch kind := t.Kind(); {
	case t == timeType:
		s, isString := x.(string)
		if isString && new(time.Time).UnmarshalText([]byte(s)) != nil {
			v.add(path, ProblemBadFormat, "must be an RFC 3339 time")
			return false
		}
		ok = isString
	case kind == reflect.String:
		_, ok = x.(string)
	case kind == reflect.Bool:
		_, ok = x.(bool)
	case kind >= reflect.Int && kind <= reflect.Uint64:
		n, _ := x.(json.Number)
		_, err := strconv.ParseInt(string(n), 10, t.Bits())
		ok = err == nil
	case kind == reflect.Float64:
		n, _ := x.(json.Number)
		_, err := strconv.ParseFloat(string(n), 64)
		ok = err == nil
	case kind == reflect.Slice:
		var items []any
		if items, ok = x.([]any); ok {
			for i, item := range items {
				if !checkValue(v, index(path, i), t.Elem(), money, item) {
					items[i] = nil
				}
			}
		}
	case kind == reflect.Struct:
		var obj map[string]any
		if obj, ok = x.(map[string]any); ok {
			checkObject(v, path, t, obj)
		}
	}
	if !ok {
		v.add(path, ProblemInvalidType, "must be %s", describe(t, money))
	}
	return ok
}

// checkObject checks the members of obj against the fields of the struct
// type t, by their JSON names: known fields in the order the struct lists
// them, then unknown ones in name order.
func checkObject(v validator, path string, t reflect.Type, obj map[string]any) {
	fields := reflect.VisibleFields(t)
	if len(obj) > len(fields)+maxUnknownFields {
		name := path
		if name == "" {
			name = "data"
		}
		v.add(name, ProblemTooMany, "has %d members, far more than the %d fields it may have", len(obj), len(fields))
		clear(obj)
		return
	}
	known := make(map[string]bool, len(obj))
	for _, f := range fields {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		key, present := memberFor(obj, name)
		if !present {
			continue
		}
		known[key] = true
		if !checkValue(v, joinPath(path, name), f.Type, f.Tag.Get("schema") == "money", obj[key]) {
			delete(obj, key)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		if !known[name] {
			v.add(joinPath(path, name), ProblemUnknownField, "is not a field of this record")
			delete(obj, name)
		}
	}
}

// memberFor finds the member of obj that sets the field called name: the
// one with exactly that name, or else one whose name differs only in case,
// as encoding/json matches them.
func memberFor(obj map[string]any, name string) (string, bool) {
	if _, ok := obj[name]; ok {
		return name, true
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		if strings.EqualFold(key, name) {
			return key, true
		}
	}
	return "", false
}

// JSONKind says in plain words what JSON value a Go type takes ("a
// string", "an integer", "a list", "an object"…), for messages that must
// not show Go's names.
func JSONKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return describe(t, false)
}

// describe says what JSON value a Go type takes.
func describe(t reflect.Type, money bool) string {
	switch kind := t.Kind(); {
	case t == timeType:
		return "an RFC 3339 time"
	case kind == reflect.Int || kind == reflect.Int64:
		if money {
			return "an integer (money is in minor units)"
		}
		return "an integer"
	case kind == reflect.Float64 || kind == reflect.Float32:
		return "a number"
	case kind == reflect.String:
		return "a string"
	case kind == reflect.Bool:
		return "true or false"
	case kind == reflect.Slice || kind == reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
