package schema

import (
	"slices"
	"time"
)

// Fields tagged `schema:"money"` hold an amount of money in minor units
// (cents); the decoder names the unit when such a field is not an integer.
// Fields documented as server-owned are computed by the server: clients may
// send them, but they are never required and never validated.

// Territory is an area that reps work in and managers oversee.
type Territory struct {
	// Name is the territory's display name; required, at most 200 characters.
	Name string `json:"name"`
	// Region groups territories for managers; required, at most 200 characters.
	Region string `json:"region"`
}

// Contact is a person to speak to at a customer.
type Contact struct {
	// Name is required, at most 200 characters.
	Name string `json:"name"`
	// Role is what the person does there, at most 100 characters.
	Role string `json:"role,omitempty"`
	// Phone is at most 40 characters.
	Phone string `json:"phone,omitempty"`
}

// grades lists the customer grades: A high value, B potential, C stable,
// D low value.
var grades = []string{"A", "B", "C", "D"}

// Grades lists every customer grade, A to D; a copy.
func Grades() []string { return slices.Clone(grades) }

// Customer is an outlet or account that reps visit and sell to.
type Customer struct {
	// Code is the customer's code in the back office; required, at most 64 characters.
	Code string `json:"code"`
	// Name is required, at most 200 characters.
	Name string `json:"name"`
	// Address is at most 500 characters.
	Address string `json:"address,omitempty"`
	// TerritoryID is the territory the customer belongs to; required.
	TerritoryID string `json:"territory_id"`
	// Lat is the outlet's latitude in decimal degrees; set together with Lng.
	Lat *float64 `json:"lat,omitempty"`
	// Lng is the outlet's longitude in decimal degrees; set together with Lat.
	Lng *float64 `json:"lng,omitempty"`
	// Grade is one of Grades; required.
	Grade string `json:"grade"`
	// Contacts lists at most 20 people to speak to.
	Contacts []Contact `json:"contacts,omitempty"`
	// CreditLimit is the most the customer may owe; at least 0.
	CreditLimit int64 `json:"credit_limit" schema:"money"`
	// PaymentTermsDays is how many days the customer has to pay, 0 to 365.
	PaymentTermsDays int `json:"payment_terms_days"`
	// OpenBalance is what the customer owes now.
	OpenBalance int64 `json:"open_balance" schema:"money"`
	// Tags are at most 50 labels of 1 to 64 characters each.
	Tags []string `json:"tags,omitempty"`
	// Notes are at most 4000 characters.
	Notes string `json:"notes,omitempty"`
	// DistributorID is the distributor that serves the customer, if any.
	DistributorID string `json:"distributor_id,omitempty"`
	// GeofenceM overrides the allowed check-in distance from the outlet, in
	// metres, 0 to 100000; 0 means the server's default.
	GeofenceM int `json:"geofence_m,omitempty"`
}

// Product is an item of the catalog.
type Product struct {
	// SKU is required, at most 64 characters.
	SKU string `json:"sku"`
	// Name is required, at most 200 characters.
	Name string `json:"name"`
	// Unit is what one is counted in (each, case, kg); required, at most 32 characters.
	Unit string `json:"unit"`
	// Price is the list price of one unit; at least 0.
	Price int64 `json:"price" schema:"money"`
	// Active is false for products that may no longer be ordered.
	Active bool `json:"active"`
}

// PriceItem is the price of one product on a price list.
type PriceItem struct {
	// ProductID is the product priced; required.
	ProductID string `json:"product_id"`
	// Price is the price of one unit; at least 0.
	Price int64 `json:"price" schema:"money"`
	// MinQuantity is the least quantity the price applies to; 0 means any.
	MinQuantity int64 `json:"min_quantity,omitempty"`
}

// PriceList holds the prices some customers or a distributor pay.
type PriceList struct {
	// Name is required, at most 200 characters.
	Name string `json:"name"`
	// CustomerIDs are at most 10000 distinct customers the list applies to.
	CustomerIDs []string `json:"customer_ids,omitempty"`
	// DistributorID is the distributor the list applies to, if any.
	DistributorID string `json:"distributor_id,omitempty"`
	// ValidFrom is the first day the list applies (YYYY-MM-DD), if limited.
	ValidFrom string `json:"valid_from,omitempty"`
	// ValidTo is the last day the list applies (YYYY-MM-DD), if limited; not before ValidFrom.
	ValidTo string `json:"valid_to,omitempty"`
	// Items are at most 5000 prices.
	Items []PriceItem `json:"items,omitempty"`
}

// The statuses of a planned stop.
const (
	StopPlanned = "planned"
	StopDone    = "done"
	StopSkipped = "skipped"
)

// stopStatuses lists every stop status.
var stopStatuses = []string{StopPlanned, StopDone, StopSkipped}

// StopStatuses lists every stop status; a copy.
func StopStatuses() []string { return slices.Clone(stopStatuses) }

// Stop is one customer to visit on a route plan.
type Stop struct {
	// CustomerID is the customer to visit; required.
	CustomerID string `json:"customer_id"`
	// Position orders the stops of a plan; at least 0.
	Position int `json:"position"`
	// Status is one of StopStatuses; required.
	Status string `json:"status"`
	// WindowStart is when the visit should start (HH:MM, 24 hours), if planned.
	WindowStart string `json:"window_start,omitempty"`
	// WindowEnd is when the visit should end (HH:MM, 24 hours), if planned; not before WindowStart.
	WindowEnd string `json:"window_end,omitempty"`
}

// RoutePlan is a rep's planned day.
type RoutePlan struct {
	// RepID is the rep whose day it is; required.
	RepID string `json:"rep_id"`
	// Date is the day planned (YYYY-MM-DD); required.
	Date string `json:"date"`
	// Stops are at most 200 stops, each at a different customer.
	Stops []Stop `json:"stops,omitempty"`
}

// GeoPoint is where and when a device was at a check-in or check-out, as
// the device reported it.
type GeoPoint struct {
	// At is the device's time of the event; required, RFC 3339.
	At time.Time `json:"at"`
	// Lat is the latitude in decimal degrees; required.
	Lat *float64 `json:"lat"`
	// Lng is the longitude in decimal degrees; required.
	Lng *float64 `json:"lng"`
	// Accuracy is the device's estimate of the position error in metres; at least 0.
	Accuracy float64 `json:"accuracy,omitempty"`
}

// Visit is a rep's visit to a customer.
type Visit struct {
	// CustomerID is the customer visited; required.
	CustomerID string `json:"customer_id"`
	// RoutePlanID is the route plan the visit was planned on, if any.
	RoutePlanID string `json:"route_plan_id,omitempty"`
	// CheckIn is where and when the rep arrived; required.
	CheckIn GeoPoint `json:"check_in"`
	// CheckOut is where and when the rep left, once known; not before CheckIn.
	CheckOut *GeoPoint `json:"check_out,omitempty"`
	// Notes are at most 4000 characters.
	Notes string `json:"notes,omitempty"`
	// Outcome says briefly how the visit went, at most 64 characters.
	Outcome string `json:"outcome,omitempty"`
	// RepID is the rep who made the visit; server-owned.
	RepID string `json:"rep_id,omitempty"`
	// DistanceM is the distance in metres from the check-in to the outlet,
	// when both are known; server-owned.
	DistanceM *float64 `json:"distance_m,omitempty"`
	// WithinGeofence reports whether the check-in was close enough to the
	// outlet, when known; server-owned.
	WithinGeofence *bool `json:"within_geofence,omitempty"`
	// DurationS is the time in store in seconds, once checked out; server-owned.
	DurationS *int64 `json:"duration_s,omitempty"`
	// CheckOutMissing is set on a visit with no check-out once a later
	// check-in of the same rep exists: the rep left without checking out;
	// server-owned.
	CheckOutMissing bool `json:"check_out_missing,omitempty"`
}

// The statuses of an order: draft → submitted → confirmed → shipped →
// delivered, or cancelled. A submission that takes the customer past its
// credit limit goes to credit_hold instead of submitted (the server's
// move), from where a manager confirms or cancels it.
const (
	OrderDraft      = "draft"
	OrderSubmitted  = "submitted"
	OrderConfirmed  = "confirmed"
	OrderShipped    = "shipped"
	OrderDelivered  = "delivered"
	OrderCancelled  = "cancelled"
	OrderCreditHold = "credit_hold"
)

// orderStatuses lists every order status.
var orderStatuses = []string{OrderDraft, OrderSubmitted, OrderCreditHold, OrderConfirmed, OrderShipped, OrderDelivered, OrderCancelled}

// OrderStatuses lists every order status; a copy.
func OrderStatuses() []string { return slices.Clone(orderStatuses) }

// OrderLine is one product on an order.
type OrderLine struct {
	// ProductID is the product ordered; required.
	ProductID string `json:"product_id"`
	// Quantity is how many units; at least 1.
	Quantity int64 `json:"quantity"`
	// UnitPrice is the price of one unit; at least 0.
	UnitPrice int64 `json:"unit_price" schema:"money"`
	// Discount is the amount taken off the line; 0 to Quantity × UnitPrice.
	Discount int64 `json:"discount,omitempty" schema:"money"`
}

// Order is an order placed by a rep or a distributor for a customer.
type Order struct {
	// CustomerID is the customer ordering; required.
	CustomerID string `json:"customer_id"`
	// VisitID is the visit the order was taken on, if any.
	VisitID string `json:"visit_id,omitempty"`
	// Lines are 1 to 500 products ordered.
	Lines []OrderLine `json:"lines"`
	// Status is one of OrderStatuses; required.
	Status string `json:"status"`
	// RequestedDeliveryDate is when the customer wants the goods (YYYY-MM-DD), if said.
	RequestedDeliveryDate string `json:"requested_delivery_date,omitempty"`
	// PaymentDueDate is when payment is due (YYYY-MM-DD), if set.
	PaymentDueDate string `json:"payment_due_date,omitempty"`
	// Notes are at most 4000 characters.
	Notes string `json:"notes,omitempty"`
	// PlacedBy is the user who placed the order; server-owned.
	PlacedBy string `json:"placed_by,omitempty"`
	// Total is the sum of the lines' amounts; server-owned.
	Total int64 `json:"total" schema:"money"`
	// DistributorID is the distributor the order goes to, if any; server-owned.
	DistributorID string `json:"distributor_id,omitempty"`
	// SubmittedAt is when the server accepted the order's submission;
	// server-owned.
	SubmittedAt *time.Time `json:"submitted_at,omitempty"`
	// HoldReason says why the order is on credit hold, with the numbers;
	// server-owned, kept after the hold is released.
	HoldReason *HoldReason `json:"hold_reason,omitempty"`
}

// HoldReason is why an order went on credit hold: the customer's exposure
// with the order would pass its credit limit. Amounts in minor units.
type HoldReason struct {
	// Code is CodeCreditLimitExceeded.
	Code string `json:"code"`
	// Message says the same in words.
	Message string `json:"message"`
	// CreditLimit is the customer's credit limit.
	CreditLimit int64 `json:"credit_limit" schema:"money"`
	// OpenBalance is what the customer owed.
	OpenBalance int64 `json:"open_balance" schema:"money"`
	// OpenOrders is the total of the customer's other orders submitted, on
	// hold, confirmed or shipped and not yet delivered.
	OpenOrders int64 `json:"open_orders" schema:"money"`
	// OrderTotal is this order's total.
	OrderTotal int64 `json:"order_total" schema:"money"`
	// Exposure is OpenBalance + OpenOrders + OrderTotal.
	Exposure int64 `json:"exposure" schema:"money"`
	// Over is by how much Exposure passes CreditLimit.
	Over int64 `json:"over" schema:"money"`
}

// Target is a rep's sales target for one month.
type Target struct {
	// RepID is the rep the target is for; required.
	RepID string `json:"rep_id"`
	// Month is the month, YYYY-MM; required.
	Month string `json:"month"`
	// OrderAmount is the order amount to reach, in minor units; at least 0.
	OrderAmount int64 `json:"order_amount" schema:"money"`
	// Visits is the number of visits to make; at least 0.
	Visits int64 `json:"visits"`
	// Locked targets change only by an admin.
	Locked bool `json:"locked"`
}

// photoContentTypes lists the content types a photo may have.
var photoContentTypes = []string{"image/jpeg", "image/png", "image/webp", "image/heic"}

// PhotoContentTypes lists the content types a photo may have; a copy.
func PhotoContentTypes() []string { return slices.Clone(photoContentTypes) }

// PhotoFacts is what the photo store knows of a photo's bytes: whether
// they are stored and, when they are, the time and place their EXIF
// metadata gives (nil when it gives none).
type PhotoFacts struct {
	Stored   bool
	Size     int64
	TakenAt  *time.Time
	Lat, Lng *float64
}

// MaxPhotoSize is the largest photo a record may describe, in bytes.
const MaxPhotoSize = 100 << 20

// Photo describes a photo taken on a visit; its bytes live in the photo
// store, addressed by SHA256.
type Photo struct {
	// VisitID is the visit the photo was taken on; required.
	VisitID string `json:"visit_id"`
	// SHA256 is the hash of the photo's bytes, 64 lowercase hex characters; required.
	SHA256 string `json:"sha256"`
	// ContentType is one of PhotoContentTypes; required.
	ContentType string `json:"content_type"`
	// Size is the number of bytes, 1 to MaxPhotoSize.
	Size int64 `json:"size"`
	// TakenAt is when the device took the photo, if known.
	TakenAt *time.Time `json:"taken_at,omitempty"`
	// Lat is the latitude in decimal degrees where it was taken; set together with Lng.
	Lat *float64 `json:"lat,omitempty"`
	// Lng is the longitude in decimal degrees where it was taken; set together with Lat.
	Lng *float64 `json:"lng,omitempty"`
	// Uploaded reports whether the photo store holds the bytes; server-owned.
	Uploaded bool `json:"uploaded"`
	// RepID is the rep who took the photo; server-owned.
	RepID string `json:"rep_id,omitempty"`
	// DeviceID is the device that pushed the record; server-owned.
	DeviceID string `json:"device_id,omitempty"`
	// ExifTakenAt, ExifLat and ExifLng are what the photo's own EXIF
	// metadata says, once the bytes are stored; server-owned. Neither they
	// nor the device's claims are taken as the truth.
	ExifTakenAt *time.Time `json:"exif_taken_at,omitempty"`
	ExifLat     *float64   `json:"exif_lat,omitempty"`
	ExifLng     *float64   `json:"exif_lng,omitempty"`
	// ExifDisagrees is set when the EXIF time or place is far from what
	// the device claims (see PhotoDisagreement); server-owned.
	ExifDisagrees bool `json:"exif_disagrees,omitempty"`
}

// Limits past which a photo's EXIF metadata and the device's claims are
// said to disagree.
const (
	PhotoDisagreementTime   = 2 * time.Hour
	PhotoDisagreementMetres = 1000
)

// Disagrees reports whether the photo's EXIF metadata and the device's
// claims are far apart in time or place. Either side missing is no
// disagreement.
func (p *Photo) Disagrees() bool {
	if p.TakenAt != nil && p.ExifTakenAt != nil {
		d := p.TakenAt.Sub(*p.ExifTakenAt)
		if d > PhotoDisagreementTime || d < -PhotoDisagreementTime {
			return true
		}
	}
	if p.Lat != nil && p.Lng != nil && p.ExifLat != nil && p.ExifLng != nil {
		return DistanceM(*p.Lat, *p.Lng, *p.ExifLat, *p.ExifLng) > PhotoDisagreementMetres
	}
	return false
}
