package schema

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// problemsOf returns the problems of err, which must be a validation error.
func problemsOf(tb testing.TB, err error) []Problem {
	tb.Helper()
	require.Error(tb, err)
	e := AsError(err)
	require.Equal(tb, CodeValidationFailed, e.Code, "error code of %v", err)
	require.NotEmpty(tb, e.Problems, "problems of %v", err)
	return e.Problems
}

// assertProblem checks that err lists a problem with field and code.
func assertProblem(tb testing.TB, err error, field, code string) {
	tb.Helper()
	problems := problemsOf(tb, err)
	for _, p := range problems {
		if p.Field == field {
			assert.Equal(tb, code, p.Code, "code of the problem with %s", field)
			assert.True(tb, strings.HasPrefix(p.Message, field+" "), "message %q should start with the field", p.Message)
			return
		}
	}
	tb.Errorf("got problems %+v, want one with field %q and code %q", problems, field, code)
}

// assertProblems checks that err lists exactly want, in order, and that
// its field and message are the first problem's.
func assertProblems(tb testing.TB, err error, want ...Problem) {
	tb.Helper()
	assert.Equal(tb, want, problemsOf(tb, err))
	e := AsError(err)
	assert.Equal(tb, want[0].Field, e.Field, "field of the error")
	assert.True(tb, strings.HasPrefix(e.Message, want[0].Message), "message %q should start with the first problem's", e.Message)
}

// assertValid checks that err is nil, showing the problems if not.
func assertValid(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Errorf("got %+v, want no error", AsError(err).Problems)
	}
}

// with returns r after applying change to it.
func with[T any](r *T, change func(*T)) *T {
	change(r)
	return r
}

func validTerritory() *Territory { return &Territory{Name: "North", Region: "EU"} }

func validCustomer() *Customer {
	return &Customer{
		Code: "C-17", Name: "Corner Shop", Address: "1 High St", TerritoryID: "t-1",
		Lat: new(52.52), Lng: new(13.405), Grade: "A",
		Contacts:    []Contact{{Name: "Ann", Role: "owner", Phone: "+49 30 1234"}, {Name: "Bob"}},
		CreditLimit: 500000, PaymentTermsDays: 30, OpenBalance: -1200,
		Tags: []string{"kiosk", "24h"}, Notes: "back door", DistributorID: "d-1", GeofenceM: 150,
	}
}

func validProduct() *Product {
	return &Product{SKU: "SKU-1", Name: "Cola 0.5l", Unit: "case", Price: 1299, Active: true}
}

func validPriceList() *PriceList {
	return &PriceList{
		Name: "Winter", CustomerIDs: []string{"c-1", "c-2"}, DistributorID: "d-1",
		ValidFrom: "2026-11-01", ValidTo: "2027-02-28",
		Items: []PriceItem{{ProductID: "p-1", Price: 1199, MinQuantity: 10}, {ProductID: "p-2", Price: 0}},
	}
}

func validRoutePlan() *RoutePlan {
	return &RoutePlan{RepID: "u-3", Date: "2026-11-23", Stops: []Stop{
		{CustomerID: "c-1", Position: 0, Status: StopPlanned, WindowStart: "08:00", WindowEnd: "09:30"},
		{CustomerID: "c-2", Position: 1, Status: StopDone},
		{CustomerID: "c-3", Position: 2, Status: StopSkipped},
	}}
}

var checkInTime = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func validVisit() *Visit {
	return &Visit{
		CustomerID: "c-1", RoutePlanID: "rp-1",
		CheckIn:  GeoPoint{At: checkInTime, Lat: new(52.52), Lng: new(13.405), Accuracy: 8},
		CheckOut: &GeoPoint{At: checkInTime.Add(20 * time.Minute), Lat: new(52.52), Lng: new(13.405)},
		Notes:    "shelf restocked", Outcome: "order",
	}
}

func validOrder() *Order {
	return &Order{
		CustomerID: "c-1", VisitID: "v-1", Status: OrderDraft,
		Lines: []OrderLine{
			{ProductID: "p-1", Quantity: 3, UnitPrice: 1299, Discount: 100},
			{ProductID: "p-2", Quantity: 1, UnitPrice: 0},
			{ProductID: "p-3", Quantity: 2, UnitPrice: 500, Discount: 1000},
		},
		RequestedDeliveryDate: "2026-11-25", PaymentDueDate: "2026-12-25", Notes: "ring twice",
	}
}

func validPhoto() *Photo {
	return &Photo{
		VisitID: "v-1", SHA256: strings.Repeat("ab", 32), ContentType: "image/jpeg", Size: 2 << 20,
		TakenAt: &checkInTime, Lat: new(52.52), Lng: new(13.405),
	}
}

// validationCase is one record and the problem it should have; an empty
// field means the record is valid.
type validationCase struct {
	name   string
	record interface{ Validate() error }
	field  string
	code   string
}

func runValidationCases(t *testing.T, tests []validationCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.record.Validate()
			if tt.field == "" {
				assertValid(t, err)
				return
			}
			assertProblem(t, err, tt.field, tt.code)
		})
	}
}

// many returns n copies of item.
func many[T any](n int, item T) []T {
	items := make([]T, n)
	for i := range items {
		items[i] = item
	}
	return items
}

// ids returns n distinct record ids.
func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "c-" + strconv.Itoa(i)
	}
	return out
}

func TestTerritoryValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validTerritory(), "", ""},
		{"name of 200 multibyte characters", with(validTerritory(), func(r *Territory) { r.Name = strings.Repeat("é", 200) }), "", ""},
		{"name missing", with(validTerritory(), func(r *Territory) { r.Name = "" }), "name", ProblemRequired},
		{"name blank", with(validTerritory(), func(r *Territory) { r.Name = "  " }), "name", ProblemRequired},
		{"name too long", with(validTerritory(), func(r *Territory) { r.Name = strings.Repeat("é", 201) }), "name", ProblemTooLong},
		{"name not UTF-8", with(validTerritory(), func(r *Territory) { r.Name = "a\xffb" }), "name", ProblemBadFormat},
		{"region missing", with(validTerritory(), func(r *Territory) { r.Region = "" }), "region", ProblemRequired},
		{"region too long", with(validTerritory(), func(r *Territory) { r.Region = strings.Repeat("r", 201) }), "region", ProblemTooLong},
	})
}

func TestCustomerValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validCustomer(), "", ""},
		{"only required fields", &Customer{Code: "c", Name: "n", TerritoryID: "t", Grade: "D"}, "", ""},
		{"code missing", with(validCustomer(), func(c *Customer) { c.Code = "" }), "code", ProblemRequired},
		{"code too long", with(validCustomer(), func(c *Customer) { c.Code = strings.Repeat("c", 65) }), "code", ProblemTooLong},
		{"name missing", with(validCustomer(), func(c *Customer) { c.Name = "" }), "name", ProblemRequired},
		{"name too long", with(validCustomer(), func(c *Customer) { c.Name = strings.Repeat("n", 201) }), "name", ProblemTooLong},
		{"address of 500", with(validCustomer(), func(c *Customer) { c.Address = strings.Repeat("a", 500) }), "", ""},
		{"address too long", with(validCustomer(), func(c *Customer) { c.Address = strings.Repeat("a", 501) }), "address", ProblemTooLong},
		{"territory missing", with(validCustomer(), func(c *Customer) { c.TerritoryID = "" }), "territory_id", ProblemRequired},
		{"territory id bad", with(validCustomer(), func(c *Customer) { c.TerritoryID = "t 1" }), "territory_id", ProblemBadFormat},
		{"no location", with(validCustomer(), func(c *Customer) { c.Lat, c.Lng = nil, nil }), "", ""},
		{"location at the edges", with(validCustomer(), func(c *Customer) { c.Lat, c.Lng = new(-90.0), new(180.0) }), "", ""},
		{"lat without lng", with(validCustomer(), func(c *Customer) { c.Lng = nil }), "lng", ProblemRequired},
		{"lng without lat", with(validCustomer(), func(c *Customer) { c.Lat = nil }), "lat", ProblemRequired},
		{"lat out of range", with(validCustomer(), func(c *Customer) { c.Lat = new(90.5) }), "lat", ProblemOutOfRange},
		{"lat NaN", with(validCustomer(), func(c *Customer) { c.Lat = new(math.NaN()) }), "lat", ProblemOutOfRange},
		{"lng out of range", with(validCustomer(), func(c *Customer) { c.Lng = new(-180.1) }), "lng", ProblemOutOfRange},
		{"grade missing", with(validCustomer(), func(c *Customer) { c.Grade = "" }), "grade", ProblemRequired},
		{"grade unknown", with(validCustomer(), func(c *Customer) { c.Grade = "E" }), "grade", ProblemInvalidValue},
		{"20 contacts", with(validCustomer(), func(c *Customer) { c.Contacts = many(20, Contact{Name: "x"}) }), "", ""},
		{"too many contacts", with(validCustomer(), func(c *Customer) { c.Contacts = many(21, Contact{Name: "x"}) }), "contacts", ProblemTooMany},
		{"contact name missing", with(validCustomer(), func(c *Customer) { c.Contacts[1].Name = "" }), "contacts[1].name", ProblemRequired},
		{"contact name too long", with(validCustomer(), func(c *Customer) { c.Contacts[0].Name = strings.Repeat("n", 201) }), "contacts[0].name", ProblemTooLong},
		{"contact role too long", with(validCustomer(), func(c *Customer) { c.Contacts[0].Role = strings.Repeat("r", 101) }), "contacts[0].role", ProblemTooLong},
		{"contact phone too long", with(validCustomer(), func(c *Customer) { c.Contacts[1].Phone = strings.Repeat("1", 41) }), "contacts[1].phone", ProblemTooLong},
		{"credit limit zero", with(validCustomer(), func(c *Customer) { c.CreditLimit = 0 }), "", ""},
		{"credit limit negative", with(validCustomer(), func(c *Customer) { c.CreditLimit = -1 }), "credit_limit", ProblemOutOfRange},
		{"payment terms 365", with(validCustomer(), func(c *Customer) { c.PaymentTermsDays = 365 }), "", ""},
		{"payment terms over a year", with(validCustomer(), func(c *Customer) { c.PaymentTermsDays = 366 }), "payment_terms_days", ProblemOutOfRange},
		{"payment terms negative", with(validCustomer(), func(c *Customer) { c.PaymentTermsDays = -1 }), "payment_terms_days", ProblemOutOfRange},
		{"50 tags of 64", with(validCustomer(), func(c *Customer) { c.Tags = many(50, strings.Repeat("t", 64)) }), "", ""},
		{"too many tags", with(validCustomer(), func(c *Customer) { c.Tags = many(51, "t") }), "tags", ProblemTooMany},
		{"empty tag", with(validCustomer(), func(c *Customer) { c.Tags[1] = "" }), "tags[1]", ProblemRequired},
		{"tag too long", with(validCustomer(), func(c *Customer) { c.Tags[0] = strings.Repeat("t", 65) }), "tags[0]", ProblemTooLong},
		{"notes too long", with(validCustomer(), func(c *Customer) { c.Notes = strings.Repeat("n", 4001) }), "notes", ProblemTooLong},
		{"distributor id bad", with(validCustomer(), func(c *Customer) { c.DistributorID = "d/1" }), "distributor_id", ProblemBadFormat},
		{"geofence 100 km", with(validCustomer(), func(c *Customer) { c.GeofenceM = 100000 }), "", ""},
		{"geofence too large", with(validCustomer(), func(c *Customer) { c.GeofenceM = 100001 }), "geofence_m", ProblemOutOfRange},
		{"geofence negative", with(validCustomer(), func(c *Customer) { c.GeofenceM = -1 }), "geofence_m", ProblemOutOfRange},
	})
}

func TestProductValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validProduct(), "", ""},
		{"free and inactive", with(validProduct(), func(p *Product) { p.Price, p.Active = 0, false }), "", ""},
		{"sku missing", with(validProduct(), func(p *Product) { p.SKU = "" }), "sku", ProblemRequired},
		{"sku too long", with(validProduct(), func(p *Product) { p.SKU = strings.Repeat("s", 65) }), "sku", ProblemTooLong},
		{"name missing", with(validProduct(), func(p *Product) { p.Name = "" }), "name", ProblemRequired},
		{"name too long", with(validProduct(), func(p *Product) { p.Name = strings.Repeat("n", 201) }), "name", ProblemTooLong},
		{"unit missing", with(validProduct(), func(p *Product) { p.Unit = "" }), "unit", ProblemRequired},
		{"unit too long", with(validProduct(), func(p *Product) { p.Unit = strings.Repeat("u", 33) }), "unit", ProblemTooLong},
		{"price negative", with(validProduct(), func(p *Product) { p.Price = -1 }), "price", ProblemOutOfRange},
	})
}

func TestPriceListValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validPriceList(), "", ""},
		{"open ended", with(validPriceList(), func(p *PriceList) { p.ValidFrom, p.ValidTo = "", "" }), "", ""},
		{"one day", with(validPriceList(), func(p *PriceList) { p.ValidTo = p.ValidFrom }), "", ""},
		{"name missing", with(validPriceList(), func(p *PriceList) { p.Name = "" }), "name", ProblemRequired},
		{"name too long", with(validPriceList(), func(p *PriceList) { p.Name = strings.Repeat("n", 201) }), "name", ProblemTooLong},
		{"10000 customers", with(validPriceList(), func(p *PriceList) { p.CustomerIDs = ids(10000) }), "", ""},
		{"too many customers", with(validPriceList(), func(p *PriceList) { p.CustomerIDs = ids(10001) }), "customer_ids", ProblemTooMany},
		{"customer id bad", with(validPriceList(), func(p *PriceList) { p.CustomerIDs[1] = "c#2" }), "customer_ids[1]", ProblemBadFormat},
		{"customer id empty", with(validPriceList(), func(p *PriceList) { p.CustomerIDs[0] = "" }), "customer_ids[0]", ProblemRequired},
		{"customer repeated", with(validPriceList(), func(p *PriceList) { p.CustomerIDs = []string{"c-1", "c-2", "c-1"} }), "customer_ids[2]", ProblemInvalidValue},
		{"distributor id bad", with(validPriceList(), func(p *PriceList) { p.DistributorID = "d 1" }), "distributor_id", ProblemBadFormat},
		{"valid from not a day", with(validPriceList(), func(p *PriceList) { p.ValidFrom = "2026-02-30" }), "valid_from", ProblemBadFormat},
		{"valid to unpadded", with(validPriceList(), func(p *PriceList) { p.ValidTo = "2027-1-5" }), "valid_to", ProblemBadFormat},
		{"valid to before valid from", with(validPriceList(), func(p *PriceList) { p.ValidTo = "2026-10-31" }), "valid_to", ProblemOutOfRange},
		{"5000 items", with(validPriceList(), func(p *PriceList) { p.Items = many(5000, PriceItem{ProductID: "p"}) }), "", ""},
		{"too many items", with(validPriceList(), func(p *PriceList) { p.Items = many(5001, PriceItem{ProductID: "p"}) }), "items", ProblemTooMany},
		{"item product missing", with(validPriceList(), func(p *PriceList) { p.Items[1].ProductID = "" }), "items[1].product_id", ProblemRequired},
		{"item price negative", with(validPriceList(), func(p *PriceList) { p.Items[0].Price = -1 }), "items[0].price", ProblemOutOfRange},
		{"item min quantity negative", with(validPriceList(), func(p *PriceList) { p.Items[0].MinQuantity = -1 }), "items[0].min_quantity", ProblemOutOfRange},
	})
}

func TestRoutePlanValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validRoutePlan(), "", ""},
		{"no stops", with(validRoutePlan(), func(r *RoutePlan) { r.Stops = nil }), "", ""},
		{"window of a minute at midnight", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[0].WindowStart, r.Stops[0].WindowEnd = "23:59", "23:59" }), "", ""},
		{"rep missing", with(validRoutePlan(), func(r *RoutePlan) { r.RepID = "" }), "rep_id", ProblemRequired},
		{"rep id bad", with(validRoutePlan(), func(r *RoutePlan) { r.RepID = "u 3" }), "rep_id", ProblemBadFormat},
		{"date missing", with(validRoutePlan(), func(r *RoutePlan) { r.Date = "" }), "date", ProblemRequired},
		{"date not a day", with(validRoutePlan(), func(r *RoutePlan) { r.Date = "2026-02-30" }), "date", ProblemBadFormat},
		{"too many stops", with(validRoutePlan(), func(r *RoutePlan) { r.Stops = many(201, Stop{CustomerID: "c", Status: StopPlanned}) }), "stops", ProblemTooMany},
		{"customer twice", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[2].CustomerID = "c-1" }), "stops[2].customer_id", ProblemInvalidValue},
		{"stop customer missing", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[1].CustomerID = "" }), "stops[1].customer_id", ProblemRequired},
		{"stop position negative", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[0].Position = -1 }), "stops[0].position", ProblemOutOfRange},
		{"stop status missing", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[1].Status = "" }), "stops[1].status", ProblemRequired},
		{"stop status unknown", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[1].Status = "late" }), "stops[1].status", ProblemInvalidValue},
		{"window start 24:00", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[0].WindowStart = "24:00" }), "stops[0].window_start", ProblemBadFormat},
		{"window end unpadded", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[0].WindowEnd = "9:30" }), "stops[0].window_end", ProblemBadFormat},
		{"window end before start", with(validRoutePlan(), func(r *RoutePlan) { r.Stops[0].WindowEnd = "07:59" }), "stops[0].window_end", ProblemOutOfRange},
	})
}

func TestVisitValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validVisit(), "", ""},
		{"not checked out", with(validVisit(), func(v *Visit) { v.CheckOut = nil }), "", ""},
		{"checked out at check-in", with(validVisit(), func(v *Visit) { v.CheckOut.At = v.CheckIn.At }), "", ""},
		{"server-owned fields not checked", with(validVisit(), func(v *Visit) { v.RepID, v.DistanceM, v.DurationS = "not an id!", new(-1.0), new(int64(-5)) }), "", ""},
		{"customer missing", with(validVisit(), func(v *Visit) { v.CustomerID = "" }), "customer_id", ProblemRequired},
		{"route plan id bad", with(validVisit(), func(v *Visit) { v.RoutePlanID = "rp 1" }), "route_plan_id", ProblemBadFormat},
		{"check-in missing", with(validVisit(), func(v *Visit) { v.CheckIn = GeoPoint{} }), "check_in", ProblemRequired},
		{"check-in time missing", with(validVisit(), func(v *Visit) { v.CheckIn.At = time.Time{} }), "check_in.at", ProblemRequired},
		{"check-in position missing", with(validVisit(), func(v *Visit) { v.CheckIn.Lat, v.CheckIn.Lng = nil, nil }), "check_in.lng", ProblemRequired},
		{"check-in lat missing", with(validVisit(), func(v *Visit) { v.CheckIn.Lat = nil }), "check_in.lat", ProblemRequired},
		{"check-in lat out of range", with(validVisit(), func(v *Visit) { v.CheckIn.Lat = new(-91.0) }), "check_in.lat", ProblemOutOfRange},
		{"check-in accuracy negative", with(validVisit(), func(v *Visit) { v.CheckIn.Accuracy = -1 }), "check_in.accuracy", ProblemOutOfRange},
		{"check-out lng missing", with(validVisit(), func(v *Visit) { v.CheckOut.Lng = nil }), "check_out.lng", ProblemRequired},
		{"check-out lng out of range", with(validVisit(), func(v *Visit) { v.CheckOut.Lng = new(200.0) }), "check_out.lng", ProblemOutOfRange},
		{"check-out before check-in", with(validVisit(), func(v *Visit) { v.CheckOut.At = v.CheckIn.At.Add(-time.Second) }), "check_out.at", ProblemOutOfRange},
		{"notes too long", with(validVisit(), func(v *Visit) { v.Notes = strings.Repeat("n", 4001) }), "notes", ProblemTooLong},
		{"outcome too long", with(validVisit(), func(v *Visit) { v.Outcome = strings.Repeat("o", 65) }), "outcome", ProblemTooLong},
	})
}

func TestOrderValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validOrder(), "", ""},
		{"server-owned fields not checked", with(validOrder(), func(o *Order) { o.Total, o.PlacedBy = -5, "who?" }), "", ""},
		{"500 lines", with(validOrder(), func(o *Order) { o.Lines = many(500, OrderLine{ProductID: "p", Quantity: 1}) }), "", ""},
		{"customer missing", with(validOrder(), func(o *Order) { o.CustomerID = "" }), "customer_id", ProblemRequired},
		{"visit id bad", with(validOrder(), func(o *Order) { o.VisitID = "v?" }), "visit_id", ProblemBadFormat},
		{"no lines", with(validOrder(), func(o *Order) { o.Lines = nil }), "lines", ProblemRequired},
		{"too many lines", with(validOrder(), func(o *Order) { o.Lines = many(501, OrderLine{ProductID: "p", Quantity: 1}) }), "lines", ProblemTooMany},
		{"line product missing", with(validOrder(), func(o *Order) { o.Lines[0].ProductID = "" }), "lines[0].product_id", ProblemRequired},
		{"line quantity zero", with(validOrder(), func(o *Order) { o.Lines[2].Quantity = 0 }), "lines[2].quantity", ProblemOutOfRange},
		{"line unit price negative", with(validOrder(), func(o *Order) { o.Lines[1].UnitPrice = -1 }), "lines[1].unit_price", ProblemOutOfRange},
		{"line discount negative", with(validOrder(), func(o *Order) { o.Lines[1].Discount = -1 }), "lines[1].discount", ProblemOutOfRange},
		{"line discount over the amount", with(validOrder(), func(o *Order) { o.Lines[2].Discount = 1001 }), "lines[2].discount", ProblemOutOfRange},
		{"line amount overflows", with(validOrder(), func(o *Order) { o.Lines[0].UnitPrice = math.MaxInt64 / 2 }), "lines[0].quantity", ProblemOutOfRange},
		{"total overflows", with(validOrder(), func(o *Order) {
			o.Lines = many(2, OrderLine{ProductID: "p", Quantity: 1, UnitPrice: math.MaxInt64/2 + 1})
		}), "lines", ProblemOutOfRange},
		{"status missing", with(validOrder(), func(o *Order) { o.Status = "" }), "status", ProblemRequired},
		{"status unknown", with(validOrder(), func(o *Order) { o.Status = "lost" }), "status", ProblemInvalidValue},
		{"delivery date bad", with(validOrder(), func(o *Order) { o.RequestedDeliveryDate = "25.11.2026" }), "requested_delivery_date", ProblemBadFormat},
		{"payment due date bad", with(validOrder(), func(o *Order) { o.PaymentDueDate = "2026-11-31" }), "payment_due_date", ProblemBadFormat},
		{"notes too long", with(validOrder(), func(o *Order) { o.Notes = strings.Repeat("n", 4001) }), "notes", ProblemTooLong},
	})
}

func TestPhotoValidate(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"valid", validPhoto(), "", ""},
		{"largest", with(validPhoto(), func(p *Photo) { p.Size = MaxPhotoSize }), "", ""},
		{"no time or place", with(validPhoto(), func(p *Photo) { p.TakenAt, p.Lat, p.Lng = nil, nil, nil }), "", ""},
		{"visit missing", with(validPhoto(), func(p *Photo) { p.VisitID = "" }), "visit_id", ProblemRequired},
		{"hash missing", with(validPhoto(), func(p *Photo) { p.SHA256 = "" }), "sha256", ProblemRequired},
		{"hash upper case", with(validPhoto(), func(p *Photo) { p.SHA256 = strings.Repeat("AB", 32) }), "sha256", ProblemBadFormat},
		{"hash short", with(validPhoto(), func(p *Photo) { p.SHA256 = strings.Repeat("a", 63) }), "sha256", ProblemBadFormat},
		{"content type missing", with(validPhoto(), func(p *Photo) { p.ContentType = "" }), "content_type", ProblemRequired},
		{"content type unknown", with(validPhoto(), func(p *Photo) { p.ContentType = "image/gif" }), "content_type", ProblemInvalidValue},
		{"size zero", with(validPhoto(), func(p *Photo) { p.Size = 0 }), "size", ProblemOutOfRange},
		{"size too large", with(validPhoto(), func(p *Photo) { p.Size = MaxPhotoSize + 1 }), "size", ProblemOutOfRange},
		{"lat without lng", with(validPhoto(), func(p *Photo) { p.Lng = nil }), "lng", ProblemRequired},
		{"lng out of range", with(validPhoto(), func(p *Photo) { p.Lng = new(181.0) }), "lng", ProblemOutOfRange},
	})
}

func TestPartsValidateAlone(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"contact", &Contact{Name: "Ann"}, "", ""},
		{"contact without name", &Contact{}, "name", ProblemRequired},
		{"price item", &PriceItem{ProductID: "p"}, "", ""},
		{"price item without product", &PriceItem{}, "product_id", ProblemRequired},
		{"stop", &Stop{CustomerID: "c", Status: StopDone}, "", ""},
		{"stop without status", &Stop{CustomerID: "c"}, "status", ProblemRequired},
		{"geo point", &GeoPoint{At: checkInTime, Lat: new(0.0), Lng: new(0.0)}, "", ""},
		{"geo point without time", &GeoPoint{Lat: new(0.0), Lng: new(0.0)}, "at", ProblemRequired},
		{"order line", &OrderLine{ProductID: "p", Quantity: 1}, "", ""},
		{"order line without quantity", &OrderLine{ProductID: "p"}, "quantity", ProblemOutOfRange},
	})
}

func TestValidateListsEveryProblem(t *testing.T) {
	err := (&Order{Lines: []OrderLine{{Quantity: 1}, {ProductID: "p"}}}).Validate()
	assertProblems(t, err,
		Problem{Field: "customer_id", Code: ProblemRequired, Message: "customer_id is required"},
		Problem{Field: "lines[0].product_id", Code: ProblemRequired, Message: "lines[0].product_id is required"},
		Problem{Field: "lines[1].quantity", Code: ProblemOutOfRange, Message: "lines[1].quantity must be at least 1"},
		Problem{Field: "status", Code: ProblemRequired, Message: "status is required"},
	)
	assert.Equal(t, "customer_id is required (and 3 more problems)", AsError(err).Message)
}

func TestValidateListsAtMostMaxProblems(t *testing.T) {
	c := with(validCustomer(), func(c *Customer) { c.Tags = many(1000, "") })
	got := problemsOf(t, c.Validate())
	assert.Len(t, got, maxProblems)
	assert.Equal(t, Problem{Field: "tags", Code: ProblemTooMany, Message: "tags must have at most 50 items"}, got[0])
}

func TestFormatChecks(t *testing.T) {
	checks := map[string]func(string) bool{"ValidDate": ValidDate, "validClock": validClock, "ValidSHA256": ValidSHA256}
	tests := []struct {
		check string
		in    string
		want  bool
	}{
		{"ValidDate", "2026-11-23", true},
		{"ValidDate", "2024-02-29", true},
		{"ValidDate", "2026-12-31", true},
		{"ValidDate", "2026-02-29", false},
		{"ValidDate", "2026-02-30", false},
		{"ValidDate", "2026-04-31", false},
		{"ValidDate", "2026-13-01", false},
		{"ValidDate", "2026-00-10", false},
		{"ValidDate", "2026-1-5", false},
		{"ValidDate", "2026-01-5", false},
		{"ValidDate", "20261123", false},
		{"ValidDate", "2026/11/23", false},
		{"ValidDate", "2026-11-23T00:00:00Z", false},
		{"ValidDate", "+026-11-23", false},
		{"ValidDate", "", false},
		{"validClock", "00:00", true},
		{"validClock", "09:30", true},
		{"validClock", "23:59", true},
		{"validClock", "24:00", false},
		{"validClock", "12:60", false},
		{"validClock", "9:30", false},
		{"validClock", "09:3", false},
		{"validClock", "0930", false},
		{"validClock", "09-30", false},
		{"validClock", "+9:30", false},
		{"validClock", "09:30:00", false},
		{"validClock", "", false},
		{"ValidSHA256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", true},
		{"ValidSHA256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", false},
		{"ValidSHA256", strings.Repeat("a", 63), false},
		{"ValidSHA256", strings.Repeat("a", 65), false},
		{"ValidSHA256", strings.Repeat("g", 64), false},
		{"ValidSHA256", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.check+"/"+tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, checks[tt.check](tt.in), "%s(%q)", tt.check, tt.in)
		})
	}
}

func TestOrderLineAmount(t *testing.T) {
	tests := []struct {
		name   string
		line   OrderLine
		want   int64
		wantOK bool
	}{
		{"plain", OrderLine{Quantity: 3, UnitPrice: 1299}, 3897, true},
		{"discounted", OrderLine{Quantity: 3, UnitPrice: 1299, Discount: 97}, 3800, true},
		{"discount over the amount", OrderLine{Quantity: 1, UnitPrice: 10, Discount: 11}, -1, true},
		{"largest", OrderLine{Quantity: 1, UnitPrice: math.MaxInt64}, math.MaxInt64, true},
		{"overflow", OrderLine{Quantity: 2, UnitPrice: math.MaxInt64/2 + 1}, 0, false},
		{"negative quantity", OrderLine{Quantity: -1, UnitPrice: 10}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.line.Amount()
			assert.Equal(t, tt.wantOK, ok, "ok")
			assert.Equal(t, tt.want, got, "amount")
		})
	}
}

func TestOrderLinesTotal(t *testing.T) {
	got, ok := validOrder().LinesTotal()
	assert.True(t, ok)
	assert.Equal(t, int64(3*1299-100+0+2*500-1000), got)

	_, ok = (&Order{Lines: many(2, OrderLine{Quantity: 1, UnitPrice: math.MaxInt64})}).LinesTotal()
	assert.False(t, ok, "sum past int64")
}

func TestValueListsAreCopies(t *testing.T) {
	c := Collections()
	c[0] = "spoiled"
	assert.Equal(t, Territories, Collections()[0], "collections")
	assert.True(t, Territories.Valid())
	r := Roles()
	r[0] = "spoiled"
	assert.Equal(t, RoleRep, Roles()[0], "roles")
	assert.True(t, RoleRep.Valid())
	for name, list := range map[string]func() []string{
		"grades": Grades, "stop statuses": StopStatuses, "order statuses": OrderStatuses, "photo content types": PhotoContentTypes,
	} {
		l := list()
		want := l[0]
		l[0] = "spoiled"
		assert.Equal(t, want, list()[0], name)
	}
}
