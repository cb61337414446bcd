package schema

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxProblems bounds how many problems one error lists, so that a large bad
// record cannot make a larger answer.
const maxProblems = 100

// validator collects problems for the fields below path. The validators
// that in returns share the list, so nested records add to their parent's.
type validator struct {
	path     string
	problems *[]Problem
}

func newValidator() validator { return validator{problems: new([]Problem)} }

// err returns the problems found as one validation error, or nil.
func (v validator) err() error { return validationError(*v.problems) }

// in returns a validator for the fields of the record at field.
func (v validator) in(field string) validator {
	return validator{path: joinPath(v.path, field), problems: v.problems}
}

// add records a problem with field; the message is the field's full path
// followed by the formatted text.
func (v validator) add(field, code, format string, args ...any) {
	if v.full() {
		return
	}
	path := joinPath(v.path, field)
	v.append(Problem{Field: path, Code: code, Message: path + " " + fmt.Sprintf(format, args...)})
}

// append records p as it is, unless the list is full.
func (v validator) append(p Problem) {
	if !v.full() {
		*v.problems = append(*v.problems, p)
	}
}

// full reports whether the list holds maxProblems problems already.
func (v validator) full() bool { return len(*v.problems) >= maxProblems }

// index returns the path of item i of the list at field.
func index(field string, i int) string { return joinPath(field, "["+strconv.Itoa(i)+"]") }

// required reports s at field when it is blank, and returns whether it is not.
func (v validator) required(field, s string) bool {
	if strings.TrimSpace(s) == "" {
		v.missing(field)
		return false
	}
	return true
}

// missing reports field as required.
func (v validator) missing(field string) { v.add(field, ProblemRequired, "is required") }

// text checks that s is valid UTF-8 of at most limit characters.
func (v validator) text(field, s string, limit int) {
	switch {
	case !utf8.ValidString(s):
		v.add(field, ProblemBadFormat, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > limit:
		v.add(field, ProblemTooLong, "must be at most %d characters", limit)
	}
}

// requiredText checks that s is present, valid UTF-8 and at most limit characters.
func (v validator) requiredText(field, s string, limit int) {
	if v.required(field, s) {
		v.text(field, s, limit)
	}
}

// format checks that s, when set, passes valid; want describes the format.
func (v validator) format(field, s string, valid func(string) bool, want string) {
	if s != "" && !valid(s) {
		v.add(field, ProblemBadFormat, "must be %s", want)
	}
}

// optionalID checks that s, when set, is a usable record id.
func (v validator) optionalID(field, s string) {
	if s != "" && !CheckID(s) {
		v.add(field, ProblemBadFormat, "must be an id of 1 to %d letters, digits and . _ : -", MaxIDLength)
	}
}

// id checks that s is a usable record id.
func (v validator) id(field, s string) {
	if v.required(field, s) {
		v.optionalID(field, s)
	}
}

// date checks that s, when set, is a date.
func (v validator) date(field, s string) { v.format(field, s, ValidDate, "a date YYYY-MM-DD") }

// clock checks that s, when set, is a time of day.
func (v validator) clock(field, s string) { v.format(field, s, validClock, "a time of day HH:MM") }

// oneOf checks that s is present and one of allowed.
func (v validator) oneOf(field, s string, allowed []string) {
	if v.required(field, s) && !slices.Contains(allowed, s) {
		v.add(field, ProblemInvalidValue, "must be one of %s", strings.Join(allowed, ", "))
	}
}

// ordered checks that late is not before early when both are valid;
// valid tells which strings compare correctly as text.
func (v validator) ordered(earlyField, early, lateField, late string, valid func(string) bool) {
	if valid(early) && valid(late) && late < early {
		v.add(lateField, ProblemOutOfRange, "must not be before %s", joinPath(v.path, earlyField))
	}
}

// atLeast checks that n ≥ lo.
func (v validator) atLeast(field string, n, lo int64) {
	if n < lo {
		v.add(field, ProblemOutOfRange, "must be at least %d", lo)
	}
}

// between checks that lo ≤ n ≤ hi.
func (v validator) between(field string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.add(field, ProblemOutOfRange, "must be between %d and %d", lo, hi)
	}
}

// maxItems checks that a list at field has at most limit items.
func (v validator) maxItems(field string, n, limit int) {
	if n > limit {
		v.add(field, ProblemTooMany, "must have at most %d items", limit)
	}
}

// unique checks that key was not seen before in the list it belongs to.
// Empty keys are left to the required check.
func (v validator) unique(field, key string, seen map[string]bool) {
	if key == "" {
		return
	}
	if seen[key] {
		v.add(field, ProblemInvalidValue, "repeats an earlier item")
	}
	seen[key] = true
}

// coordinates checks that lat and lng are both set or both unset, and in range.
func (v validator) coordinates(lat, lng *float64) {
	if lat == nil && lng != nil {
		v.missing("lat")
	}
	if lng == nil && lat != nil {
		v.missing("lng")
	}
	v.degrees("lat", lat, 90)
	v.degrees("lng", lng, 180)
}

// degrees checks that x, when set, is within ±limit.
func (v validator) degrees(field string, x *float64, limit float64) {
	if x != nil && !(*x >= -limit && *x <= limit) {
		v.add(field, ProblemOutOfRange, "must be between -%g and %g", limit, limit)
	}
}

// ValidDate reports whether s is a real calendar date written YYYY-MM-DD.
func ValidDate(s string) bool {
	if len(s) != len("2006-01-02") || s[4] != '-' || s[7] != '-' || !digits(s[:4], s[5:7], s[8:]) {
		return false
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// validClock reports whether s is a time of day written HH:MM, 00:00 to 23:59.
func validClock(s string) bool {
	return len(s) == len("15:04") && s[2] == ':' && digits(s[:2], s[3:]) && s[:2] <= "23" && s[3:] <= "59"
}

// ValidSHA256 reports whether s is a SHA-256 hash written as 64 lowercase
// hex characters.
func ValidSHA256(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// digits reports whether every part is made of ASCII digits only.
func digits(parts ...string) bool {
	for _, p := range parts {
		if strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// checker is a record, or a part of one, that can check itself.
type checker interface{ check(v validator) }

// validate checks c as a whole record.
func validate(c checker) error {
	v := newValidator()
	c.check(v)
	return v.err()
}

// Validate returns nil or a validation error listing every problem.
func (t *Territory) Validate() error { return validate(t) }

func (t *Territory) check(v validator) {
	v.requiredText("name", t.Name, 200)
	v.requiredText("region", t.Region, 200)
}

// Validate returns nil or a validation error listing every problem.
func (c *Contact) Validate() error { return validate(c) }

func (c *Contact) check(v validator) {
	v.requiredText("name", c.Name, 200)
	v.text("role", c.Role, 100)
	v.text("phone", c.Phone, 40)
}

// Validate returns nil or a validation error listing every problem.
func (c *Customer) Validate() error { return validate(c) }

func (c *Customer) check(v validator) {
	v.requiredText("code", c.Code, 64)
	v.requiredText("name", c.Name, 200)
	v.text("address", c.Address, 500)
	v.id("territory_id", c.TerritoryID)
	v.coordinates(c.Lat, c.Lng)
	v.oneOf("grade", c.Grade, grades)
	v.maxItems("contacts", len(c.Contacts), 20)
	for i := range c.Contacts {
		c.Contacts[i].check(v.in(index("contacts", i)))
	}
	v.atLeast("credit_limit", c.CreditLimit, 0)
	v.between("payment_terms_days", int64(c.PaymentTermsDays), 0, 365)
	v.maxItems("tags", len(c.Tags), 50)
	for i, tag := range c.Tags {
		v.requiredText(index("tags", i), tag, 64)
	}
	v.text("notes", c.Notes, 4000)
	v.optionalID("distributor_id", c.DistributorID)
	v.between("geofence_m", int64(c.GeofenceM), 0, 100000)
}

// Validate returns nil or a validation error listing every problem.
func (p *Product) Validate() error { return validate(p) }

func (p *Product) check(v validator) {
	v.requiredText("sku", p.SKU, 64)
	v.requiredText("name", p.Name, 200)
	v.requiredText("unit", p.Unit, 32)
	v.atLeast("price", p.Price, 0)
}

// Validate returns nil or a validation error listing every problem.
func (p *PriceItem) Validate() error { return validate(p) }

func (p *PriceItem) check(v validator) {
	v.id("product_id", p.ProductID)
	v.atLeast("price", p.Price, 0)
	v.atLeast("min_quantity", p.MinQuantity, 0)
}

// Validate returns nil or a validation error listing every problem.
func (p *PriceList) Validate() error { return validate(p) }

func (p *PriceList) check(v validator) {
	v.requiredText("name", p.Name, 200)
	v.maxItems("customer_ids", len(p.CustomerIDs), 10000)
	seen := make(map[string]bool, len(p.CustomerIDs))
	for i, id := range p.CustomerIDs {
		v.id(index("customer_ids", i), id)
		v.unique(index("customer_ids", i), id, seen)
	}
	v.optionalID("distributor_id", p.DistributorID)
	v.date("valid_from", p.ValidFrom)
	v.date("valid_to", p.ValidTo)
	v.ordered("valid_from", p.ValidFrom, "valid_to", p.ValidTo, ValidDate)
	v.maxItems("items", len(p.Items), 5000)
	for i := range p.Items {
		p.Items[i].check(v.in(index("items", i)))
	}
}

// Validate returns nil or a validation error listing every problem.
func (s *Stop) Validate() error { return validate(s) }

func (s *Stop) check(v validator) {
	v.id("customer_id", s.CustomerID)
	v.atLeast("position", int64(s.Position), 0)
	v.oneOf("status", s.Status, stopStatuses)
	v.clock("window_start", s.WindowStart)
	v.clock("window_end", s.WindowEnd)
	v.ordered("window_start", s.WindowStart, "window_end", s.WindowEnd, validClock)
}

// Validate returns nil or a validation error listing every problem.
func (r *RoutePlan) Validate() error { return validate(r) }

func (r *RoutePlan) check(v validator) {
	v.id("rep_id", r.RepID)
	if v.required("date", r.Date) {
		v.date("date", r.Date)
	}
	v.maxItems("stops", len(r.Stops), 200)
	seen := make(map[string]bool, len(r.Stops))
	for i := range r.Stops {
		stop := v.in(index("stops", i))
		r.Stops[i].check(stop)
		stop.unique("customer_id", r.Stops[i].CustomerID, seen)
	}
}

// Validate returns nil or a validation error listing every problem.
func (p *GeoPoint) Validate() error { return validate(p) }

func (p *GeoPoint) check(v validator) {
	if p.At.IsZero() {
		v.missing("at")
	}
	if p.Lat == nil && p.Lng == nil {
		v.missing("lat")
		v.missing("lng")
	}
	v.coordinates(p.Lat, p.Lng)
	if !(p.Accuracy >= 0) {
		v.add("accuracy", ProblemOutOfRange, "must be at least 0")
	}
}

// Validate returns nil or a validation error listing every problem.
// Server-owned fields are not checked.
func (r *Visit) Validate() error { return validate(r) }

func (r *Visit) check(v validator) {
	v.id("customer_id", r.CustomerID)
	v.optionalID("route_plan_id", r.RoutePlanID)
	if r.CheckIn == (GeoPoint{}) {
		v.missing("check_in")
	} else {
		r.CheckIn.check(v.in("check_in"))
	}
	if r.CheckOut != nil {
		r.CheckOut.check(v.in("check_out"))
		in, out := r.CheckIn.At, r.CheckOut.At
		if !in.IsZero() && !out.IsZero() && out.Before(in) {
			v.add("check_out.at", ProblemOutOfRange, "must not be before check_in.at")
		}
	}
	v.text("notes", r.Notes, 4000)
	v.text("outcome", r.Outcome, 64)
}

// Amount returns the line's amount, Quantity × UnitPrice − Discount, and
// false when the product does not fit in an int64 or a part is negative.
func (l OrderLine) Amount() (int64, bool) {
	if l.Quantity < 0 || l.UnitPrice < 0 || l.Discount < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(l.Quantity), uint64(l.UnitPrice))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo) - l.Discount, true
}

// LinesTotal returns the sum of the lines' amounts, and false when a line
// is not valid money or the sum does not fit in an int64.
func (o *Order) LinesTotal() (int64, bool) {
	var total int64
	for _, l := range o.Lines {
		amount, ok := l.Amount()
		if !ok || amount < 0 || total > math.MaxInt64-amount {
			return 0, false
		}
		total += amount
	}
	return total, true
}

// badAmount reports whether l has no valid amount of its own.
func badAmount(l OrderLine) bool {
	amount, ok := l.Amount()
	return !ok || amount < 0
}

// Validate returns nil or a validation error listing every problem.
func (l *OrderLine) Validate() error { return validate(l) }

func (l *OrderLine) check(v validator) {
	v.id("product_id", l.ProductID)
	v.atLeast("quantity", l.Quantity, 1)
	v.atLeast("unit_price", l.UnitPrice, 0)
	v.atLeast("discount", l.Discount, 0)
	if l.Quantity < 1 || l.UnitPrice < 0 || l.Discount < 0 {
		return
	}
	switch amount, ok := l.Amount(); {
	case !ok:
		v.add("quantity", ProblemOutOfRange, "is too large: quantity × unit_price does not fit in 64 bits")
	case amount < 0:
		v.add("discount", ProblemOutOfRange, "must not exceed quantity × unit_price")
	}
}

// Validate returns nil or a validation error listing every problem.
// Server-owned fields are not checked.
func (o *Order) Validate() error { return validate(o) }

func (o *Order) check(v validator) {
	v.id("customer_id", o.CustomerID)
	v.optionalID("visit_id", o.VisitID)
	if len(o.Lines) == 0 {
		v.missing("lines")
	}
	v.maxItems("lines", len(o.Lines), 500)
	for i := range o.Lines {
		o.Lines[i].check(v.in(index("lines", i)))
	}
	if _, ok := o.LinesTotal(); !ok && !slices.ContainsFunc(o.Lines, badAmount) {
		v.add("lines", ProblemOutOfRange, "add up to more than the largest amount")
	}
	v.oneOf("status", o.Status, orderStatuses)
	v.date("requested_delivery_date", o.RequestedDeliveryDate)
	v.date("payment_due_date", o.PaymentDueDate)
	v.text("notes", o.Notes, 4000)
}

// Validate returns nil or a validation error listing every problem.
func (t *Target) Validate() error { return validate(t) }

func (t *Target) check(v validator) {
	v.id("rep_id", t.RepID)
	if v.required("month", t.Month) {
		v.format("month", t.Month, ValidMonth, "a month YYYY-MM")
	}
	v.atLeast("order_amount", t.OrderAmount, 0)
	v.atLeast("visits", t.Visits, 0)
}

// ValidMonth reports whether s is a month, YYYY-MM.
func ValidMonth(s string) bool {
	_, err := time.Parse("2006-01", s)
	return err == nil && len(s) == 7
}

// Validate returns nil or a validation error listing every problem.
// Server-owned fields are not checked.
func (p *Photo) Validate() error { return validate(p) }

func (p *Photo) check(v validator) {
	v.id("visit_id", p.VisitID)
	if v.required("sha256", p.SHA256) {
		v.format("sha256", p.SHA256, ValidSHA256, "64 lowercase hex characters")
	}
	v.oneOf("content_type", p.ContentType, photoContentTypes)
	v.between("size", p.Size, 1, MaxPhotoSize)
	v.coordinates(p.Lat, p.Lng)
}
