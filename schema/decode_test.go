package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	tests := []struct {
		collection Collection
		want       Record
	}{
		{Territories, &Territory{}},
		{Customers, &Customer{}},
		{Products, &Product{}},
		{PriceLists, &PriceList{}},
		{RoutePlans, &RoutePlan{}},
		{Visits, &Visit{}},
		{Orders, &Order{}},
		{Photos, &Photo{}},
		{Targets, &Target{}},
	}
	require.Len(t, tests, len(Collections()), "one case per collection")
	for _, tt := range tests {
		t.Run(string(tt.collection), func(t *testing.T) {
			got, err := New(tt.collection)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNewUnknownCollection(t *testing.T) {
	for _, c := range []Collection{"", "users", "Orders"} {
		t.Run(string(c), func(t *testing.T) {
			got, err := New(c)
			assert.Nil(t, got)
			assertProblem(t, err, "collection", ProblemInvalidValue)
			assert.Equal(t, "collection", AsError(err).Field)

			_, err = Decode(c, []byte(`{}`))
			assertProblem(t, err, "collection", ProblemInvalidValue)
		})
	}
}

// roundTrips holds a fully populated valid record of each collection, as
// canonical JSON.
var roundTrips = map[Collection]string{
	Territories: `{"name":"North","region":"EU"}`,
	Customers: `{"code":"C-17","name":"Corner Shop","address":"1 High St","territory_id":"t-1",
		"lat":52.52,"lng":13.405,"grade":"A",
		"contacts":[{"name":"Ann","role":"owner","phone":"+49 30 1234"},{"name":"Bob"}],
		"credit_limit":500000,"payment_terms_days":30,"open_balance":-1200,
		"tags":["kiosk","24h"],"notes":"back door","distributor_id":"d-1","geofence_m":150}`,
	Products: `{"sku":"SKU-1","name":"Cola 0.5l","unit":"case","price":1299,"active":true}`,
	PriceLists: `{"name":"Winter","customer_ids":["c-1","c-2"],"distributor_id":"d-1",
		"valid_from":"2026-11-01","valid_to":"2027-02-28",
		"items":[{"product_id":"p-1","price":1199,"min_quantity":10},{"product_id":"p-2","price":0}]}`,
	RoutePlans: `{"rep_id":"u-3","date":"2026-11-23","stops":[
		{"customer_id":"c-1","position":0,"status":"planned","window_start":"08:00","window_end":"09:30"},
		{"customer_id":"c-2","position":1,"status":"done"}]}`,
	Visits: `{"customer_id":"c-1","route_plan_id":"rp-1",
		"check_in":{"at":"2026-11-23T08:00:00Z","lat":52.52,"lng":13.405,"accuracy":8.5},
		"check_out":{"at":"2026-11-23T09:20:00.5+01:00","lat":52.5201,"lng":13.4051},
		"notes":"shelf restocked","outcome":"order",
		"rep_id":"u-3","distance_m":12.5,"within_geofence":true,"duration_s":1200}`,
	Orders: `{"customer_id":"c-1","visit_id":"v-1","lines":[
		{"product_id":"p-1","quantity":3,"unit_price":1299,"discount":100},
		{"product_id":"p-2","quantity":1,"unit_price":0}],
		"status":"submitted","requested_delivery_date":"2026-11-25","payment_due_date":"2026-12-25",
		"notes":"ring twice","placed_by":"u-3","total":3797,"distributor_id":"d-1",
		"submitted_at":"2026-11-23T08:30:00Z","hold_reason":{"code":"credit_limit_exceeded","message":"over",
		"credit_limit":1000,"open_balance":500,"open_orders":0,"order_total":3797,"exposure":4297,"over":3297}}`,
	Photos: `{"visit_id":"v-1","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"content_type":"image/heic","size":2097152,"taken_at":"2026-11-23T08:05:00Z",
		"lat":52.52,"lng":13.405,"uploaded":true,"rep_id":"u-3"}`,
	Targets: `{"rep_id":"u-3","month":"2027-01","order_amount":1500000,"visits":120,"locked":true}`,
}

func TestDecodeRoundTrip(t *testing.T) {
	require.Len(t, roundTrips, len(Collections()), "one record per collection")
	for _, c := range Collections() {
		t.Run(string(c), func(t *testing.T) {
			in := roundTrips[c]
			r, err := Decode(c, []byte(in))
			assertValid(t, err)
			require.NotNil(t, r)
			want, err := New(c)
			require.NoError(t, err)
			assert.IsType(t, want, r)

			out, err := json.Marshal(r)
			require.NoError(t, err)
			assert.JSONEq(t, in, string(out))
		})
	}
}

func TestDecodeFillsTheRecord(t *testing.T) {
	r, err := Decode(Orders, []byte(roundTrips[Orders]))
	require.NoError(t, err)
	o, ok := r.(*Order)
	require.True(t, ok, "got %T, want *Order", r)
	assert.Equal(t, OrderLine{ProductID: "p-1", Quantity: 3, UnitPrice: 1299, Discount: 100}, o.Lines[0])
	assert.Equal(t, int64(3797), o.Total)
}

// decodeCase is one input to Decode and one problem it should report; an
// empty field means the input is valid.
type decodeCase struct {
	name       string
	collection Collection
	data       string
	field      string
	code       string
	message    string // when set, the problem's whole message
}

func runDecodeCases(t *testing.T, tests []decodeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode(tt.collection, []byte(tt.data))
			if tt.field == "" {
				assertValid(t, err)
				assert.NotNil(t, r)
				return
			}
			assert.Nil(t, r, "record on failure")
			assertProblem(t, err, tt.field, tt.code)
			if tt.message != "" {
				assert.Contains(t, problemsOf(t, err), Problem{Field: tt.field, Code: tt.code, Message: tt.message})
			}
		})
	}
}

const (
	visitStart = `{"customer_id":"c-1","check_in":{"at":"2026-11-23T08:00:00Z","lat":1,"lng":2`
	orderStart = `{"customer_id":"c-1","status":"draft","lines":[`
)

// A member whose name differs from a field's only in case sets that field,
// as encoding/json does; when the record has other problems too, it is
// still not reported as unknown.
func TestDecodeMatchesNamesLikeEncodingJSON(t *testing.T) {
	r, err := Decode(Territories, []byte(`{"Name":"North","REGION":"EU"}`))
	require.NoError(t, err)
	assert.Equal(t, &Territory{Name: "North", Region: "EU"}, r)

	_, err = Decode(Customers, []byte(`{"Code":"c","name":"n","territory_id":"t","grade":"Z"}`))
	require.Error(t, err)
	problems := AsError(err).Problems
	require.Len(t, problems, 1, "%v", problems)
	assert.Equal(t, "grade", problems[0].Field)
}

func TestDecodeUnknownFields(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"top level", Territories, `{"name":"N","region":"R","nmae":"x"}`, "nmae", ProblemUnknownField, "nmae is not a field of this record"},
		{"in a list item", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","contacts":[{"name":"a"},{"name":"b","email":"b@x"}]}`,
			"contacts[1].email", ProblemUnknownField, ""},
		{"in an object", Visits, visitStart + `,"altitude":30}}`, "check_in.altitude", ProblemUnknownField, ""},
		{"holding anything", Products, `{"sku":"s","name":"n","unit":"u","extra":{"a":[1,{"b":null}]}}`, "extra", ProblemUnknownField, ""},
	})
}

func TestDecodeWrongTypes(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"string for an integer", Orders, orderStart + `{"product_id":"p","quantity":1},{"product_id":"p","quantity":1},{"product_id":"p","quantity":"3"}]}`,
			"lines[2].quantity", ProblemInvalidType, "lines[2].quantity must be an integer"},
		{"number for a string", Territories, `{"name":7,"region":"R"}`, "name", ProblemInvalidType, "name must be a string"},
		{"string for a bool", Products, `{"sku":"s","name":"n","unit":"u","active":"yes"}`, "active", ProblemInvalidType, "active must be true or false"},
		{"string for a coordinate", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","lat":"52.5","lng":13}`,
			"lat", ProblemInvalidType, "lat must be a number"},
		{"object for an array", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","contacts":{"name":"a"}}`,
			"contacts", ProblemInvalidType, "contacts must be an array"},
		{"array for an object", Visits, `{"customer_id":"c-1","check_in":[1,2]}`, "check_in", ProblemInvalidType, "check_in must be an object"},
		{"number in a string list", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","tags":["a",5]}`,
			"tags[1]", ProblemInvalidType, "tags[1] must be a string"},
		{"string for a list item object", Orders, orderStart + `"p-1"]}`, "lines[0]", ProblemInvalidType, "lines[0] must be an object"},
		{"number for a time", Visits, `{"customer_id":"c-1","check_in":{"at":1700000000,"lat":1,"lng":2}}`,
			"check_in.at", ProblemInvalidType, "check_in.at must be an RFC 3339 time"},
		{"string for a server-owned number", Orders, orderStart + `{"product_id":"p","quantity":1}],"total":"12"}`,
			"total", ProblemInvalidType, ""},
		{"huge float", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","lat":1e400,"lng":1}`, "lat", ProblemInvalidType, ""},
	})
}

func TestDecodeIntegers(t *testing.T) {
	line := func(quantity, unitPrice string) string {
		return orderStart + `{"product_id":"p","quantity":` + quantity + `,"unit_price":` + unitPrice + `}]}`
	}
	const moneyMessage = "lines[0].unit_price must be an integer (money is in minor units)"
	runDecodeCases(t, []decodeCase{
		{"whole numbers", Orders, line("2", "1299"), "", "", ""},
		{"largest money", Orders, line("1", "9223372036854775807"), "", "", ""},
		{"fractional money", Orders, line("1", "12.99"), "lines[0].unit_price", ProblemInvalidType, moneyMessage},
		{"money with a zero fraction", Orders, line("1", "1299.0"), "lines[0].unit_price", ProblemInvalidType, moneyMessage},
		{"money with an exponent", Orders, line("1", "1e3"), "lines[0].unit_price", ProblemInvalidType, moneyMessage},
		{"money past int64", Orders, line("1", "9223372036854775808"), "lines[0].unit_price", ProblemInvalidType, moneyMessage},
		{"fractional quantity", Orders, line("2.5", "1"), "lines[0].quantity", ProblemInvalidType, "lines[0].quantity must be an integer"},
		{"fractional credit limit", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","credit_limit":0.5}`,
			"credit_limit", ProblemInvalidType, "credit_limit must be an integer (money is in minor units)"},
		{"fractional price", Products, `{"sku":"s","name":"n","unit":"u","price":9.99}`,
			"price", ProblemInvalidType, "price must be an integer (money is in minor units)"},
		{"fractional position", RoutePlans, `{"rep_id":"u","date":"2026-11-23","stops":[{"customer_id":"c","status":"done","position":1.5}]}`,
			"stops[0].position", ProblemInvalidType, "stops[0].position must be an integer"},
	})
}

func TestDecodeNull(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"optional field", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","address":null,"lat":null,"lng":null,"contacts":null}`, "", "", ""},
		{"required string", Territories, `{"name":null,"region":"R"}`, "name", ProblemRequired, "name is required"},
		{"required object", Visits, `{"customer_id":"c-1","check_in":null}`, "check_in", ProblemRequired, ""},
		{"required coordinate", Visits, `{"customer_id":"c-1","check_in":{"at":"2026-11-23T08:00:00Z","lat":null,"lng":2}}`,
			"check_in.lat", ProblemRequired, ""},
		{"required time", Visits, `{"customer_id":"c-1","check_in":{"at":null,"lat":1,"lng":2}}`, "check_in.at", ProblemRequired, ""},
		{"list item", Customers, `{"code":"c","name":"n","territory_id":"t","grade":"A","contacts":[null]}`, "contacts[0].name", ProblemRequired, ""},
	})
}

func TestDecodeTimes(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"offset", Visits, visitStart + `},"check_out":{"at":"2026-11-23T09:00:00+01:00","lat":1,"lng":2}}`, "", "", ""},
		{"fraction", Photos, `{"visit_id":"v","sha256":"` + strings.Repeat("0", 64) + `","content_type":"image/png","size":1,"taken_at":"2026-11-23T08:00:00.123456Z"}`, "", "", ""},
		{"no zone", Visits, `{"customer_id":"c-1","check_in":{"at":"2026-11-23T08:00:00","lat":1,"lng":2}}`,
			"check_in.at", ProblemBadFormat, "check_in.at must be an RFC 3339 time"},
		{"space for T", Visits, `{"customer_id":"c-1","check_in":{"at":"2026-11-23 08:00:00Z","lat":1,"lng":2}}`, "check_in.at", ProblemBadFormat, ""},
		{"date only", Visits, visitStart + `},"check_out":{"at":"2026-11-23","lat":1,"lng":2}}`, "check_out.at", ProblemBadFormat, ""},
		{"not a day", Photos, `{"visit_id":"v","sha256":"` + strings.Repeat("0", 64) + `","content_type":"image/png","size":1,"taken_at":"2026-02-30T08:00:00Z"}`,
			"taken_at", ProblemBadFormat, ""},
		{"words", Photos, `{"visit_id":"v","sha256":"` + strings.Repeat("0", 64) + `","content_type":"image/png","size":1,"taken_at":"yesterday"}`,
			"taken_at", ProblemBadFormat, ""},
		{"bad date field", RoutePlans, `{"rep_id":"u","date":"2026-1-5"}`, "date", ProblemBadFormat, "date must be a date YYYY-MM-DD"},
		{"bad time of day", RoutePlans, `{"rep_id":"u","date":"2026-01-05","stops":[{"customer_id":"c","status":"done","window_start":"8am"}]}`,
			"stops[0].window_start", ProblemBadFormat, "stops[0].window_start must be a time of day HH:MM"},
	})
}

func TestDecodeLimits(t *testing.T) {
	tags := func(n int) string {
		b, err := json.Marshal(many(n, "t"))
		require.NoError(t, err)
		return `{"code":"c","name":"n","territory_id":"t","grade":"A","tags":` + string(b) + `}`
	}
	unknown := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"name":"N","region":"R"`)
		for i := range n {
			fmt.Fprintf(&b, `,"x%05d":1`, i)
		}
		return b.String() + "}"
	}
	padded := func(c Collection, record string, size int) string {
		return record[:len(record)-1] + `,"notes":"` + strings.Repeat("x", size-len(record)-len(`,"notes":""`)) + `"}`
	}
	customer := `{"code":"c","name":"n","territory_id":"t","grade":"A"}`
	ids := make([]string, 3000)
	for i := range ids {
		ids[i] = fmt.Sprintf("customer-%08d", i)
	}
	priceList := `{"name":"P","customer_ids":` + string(must(json.Marshal(ids))) + `}`
	runDecodeCases(t, []decodeCase{
		{"long string", Territories, `{"name":"` + strings.Repeat("x", 1000) + `","region":"R"}`, "name", ProblemTooLong, "name must be at most 200 characters"},
		{"huge string", Territories, `{"name":"` + strings.Repeat("x", 1<<20) + `","region":"R"}`, "data", ProblemTooLong, "data must be at most 65536 bytes of JSON; this record has 1048600"},
		{"a record of 64 KB", Customers, padded(Customers, customer, MaxRecordBytes), "notes", ProblemTooLong, ""},
		{"a record of 64 KB and a byte", Customers, padded(Customers, customer, MaxRecordBytes+1), "data", ProblemTooLong, ""},
		{"a price list beyond 64 KB", PriceLists, priceList, "", "", ""},
		{"50 tags", Customers, tags(50), "", "", ""},
		{"51 tags", Customers, tags(51), "tags", ProblemTooMany, "tags must have at most 50 items"},
		{"20 unknown fields, each named", Territories, unknown(20), "x00000", ProblemUnknownField, "x00000 is not a field of this record"},
		{"21 unknown fields, refused whole", Territories, unknown(21), "data", ProblemTooMany, "data has 23 members, far more than the 2 fields it may have"},
		{"thousands of unknown fields", Territories, unknown(5000), "data", ProblemTooMany, "data has 5002 members, far more than the 2 fields it may have"},
		{"too many members in a nested object", Visits, `{"customer_id":"c","check_in":` + unknown(30) + `}`, "check_in", ProblemTooMany, ""},
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDecodeDataAsAWhole(t *testing.T) {
	tests := []struct {
		name string
		data string
		code string // default invalid_type
	}{
		{"empty", ``, ""},
		{"blank", "  \n", ""},
		{"null", `null`, ""},
		{"array", `[{"name":"N","region":"R"}]`, ""},
		{"string", `"name"`, ""},
		{"number", `42`, ""},
		{"truncated", `{"name":"N",`, ""},
		{"not JSON", `name=N`, ""},
		{"two objects", `{"name":"N","region":"R"} {}`, ""},
		{"trailing garbage", `{"name":"N","region":"R"}x`, ""},
		{"nested 33 deep", `{"notes":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, ""},
		{"nested a million deep", strings.Repeat(`{"a":`, 1_000_000), ProblemTooLong},
		{"nested 13000 deep, under the size limit", strings.Repeat(`{"a":`, 13000), ""},
		{"arrays 30000 deep, under the size limit", `{"a":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`, ""},
		{"arrays a million deep", `{"a":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`, ProblemTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode(Territories, []byte(tt.data))
			assert.Nil(t, r)
			got := problemsOf(t, err)
			require.Len(t, got, 1, "problems: %+v", got)
			assert.Equal(t, "data", got[0].Field)
			want := ProblemInvalidType
			if tt.code != "" {
				want = tt.code
			}
			assert.Equal(t, want, got[0].Code)
		})
	}
}

func TestDecodeNestingAtTheLimit(t *testing.T) {
	// 32 levels in all: the record and 31 arrays inside an unknown field.
	data := `{"name":"N","region":"R","x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`
	_, err := Decode(Territories, []byte(data))
	assertProblems(t, err, Problem{Field: "x", Code: ProblemUnknownField, Message: "x is not a field of this record"})
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	data := `{
		"customer_id": "c 1",
		"lines": [
			{"product_id": "p-1", "quantity": 0, "unit_price": 1.5},
			{"product_id": "", "quantity": "2", "unit_price": 100, "discount": 500, "note": "x"}
		],
		"status": "lost",
		"requested_delivery_date": "2026-02-30",
		"colour": "red"
	}`
	_, err := Decode(Orders, []byte(data))
	assertProblems(t, err,
		Problem{Field: "lines[0].unit_price", Code: ProblemInvalidType, Message: "lines[0].unit_price must be an integer (money is in minor units)"},
		Problem{Field: "lines[1].quantity", Code: ProblemInvalidType, Message: "lines[1].quantity must be an integer"},
		Problem{Field: "lines[1].note", Code: ProblemUnknownField, Message: "lines[1].note is not a field of this record"},
		Problem{Field: "colour", Code: ProblemUnknownField, Message: "colour is not a field of this record"},
		Problem{Field: "customer_id", Code: ProblemBadFormat, Message: "customer_id must be an id of 1 to 128 letters, digits and . _ : -"},
		Problem{Field: "lines[0].quantity", Code: ProblemOutOfRange, Message: "lines[0].quantity must be at least 1"},
		Problem{Field: "lines[1].product_id", Code: ProblemRequired, Message: "lines[1].product_id is required"},
		Problem{Field: "status", Code: ProblemInvalidValue, Message: "status must be one of draft, submitted, credit_hold, confirmed, shipped, delivered, cancelled"},
		Problem{Field: "requested_delivery_date", Code: ProblemBadFormat, Message: "requested_delivery_date must be a date YYYY-MM-DD"},
	)
	assert.Equal(t, "lines[0].unit_price must be an integer (money is in minor units) (and 8 more problems)", AsError(err).Message)
}

func TestDecodeListsAtMostMaxProblems(t *testing.T) {
	data := `{"code":"c","name":"n","territory_id":"t","grade":"A","tags":[` + strings.Repeat("1,", 999) + `1]}`
	_, err := Decode(Customers, []byte(data))
	assert.Len(t, problemsOf(t, err), maxProblems)
}

// FuzzDecode checks that no input makes Decode panic, and that whatever it
// accepts is valid and survives a second round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, c := range Collections() {
		f.Add(string(c), roundTrips[c])
	}
	f.Add(string(Orders), `{"lines":[{"quantity":1.5,"x":[[{}]]}],"status":null}`)
	f.Fuzz(func(t *testing.T, collection, data string) {
		r, err := Decode(Collection(collection), []byte(data))
		if err != nil {
			assert.Nil(t, r)
			assert.NotEmpty(t, problemsOf(t, err))
			return
		}
		assertValid(t, r.Validate())
		out, err := json.Marshal(r)
		require.NoError(t, err)
		again, err := Decode(Collection(collection), out)
		assertValid(t, err)
		outAgain, err := json.Marshal(again)
		require.NoError(t, err)
		assert.JSONEq(t, string(out), string(outAgain))
	})
}
