package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// derived is what the engine works out about a record before writing it:
// its canonical data with the server-owned fields set, where it belongs
// and who owns it, and what it refers to.
type derived struct {
	data  json.RawMessage
	facts schema.Facts
	refs  []string
	// repriced is set when the server replaced prices the client sent.
	repriced bool
	// report is what reports count of the record.
	report []Fact
}

// writer is one principal writing within one unit of work.
type writer struct {
	e      *Engine
	tx     RecordTx
	p      schema.Principal
	tokens []string // the principal's read tokens
	// rederive is set when the writer works out again what it derived
	// before, for a record already stored (a re-stamp, a photo's bytes
	// arriving): references that have since gone are tolerated, and the
	// caller's scope is not asked.
	rederive bool
	// merging is set while a merge writes, for the audit trail.
	merging bool
	// decoded keeps the records references decoded, by collection/id, at
	// the version decoded, so that a push naming the same product on
	// every line decodes it once.
	decoded map[string]decodedRef
	// lists keeps the price lists that apply to a customer, by
	// customer/distributor, until the writer writes a price list.
	lists map[string][]*pricedList
	// products keeps the products that orders' lines named, by id, until
	// the writer writes that product (see product).
	products map[string]*schema.Product
	// books keeps each customer's open orders, by order id, once read
	// (see openBook).
	books map[string]*creditBook
	// open keeps each rep's visits that carry the open ref, by id, once
	// read (see openVisits).
	open map[string]map[string]*Record
	// answers holds the stored answers to the push's mutations, by
	// mutation id, and those given since.
	answers map[string]*Answer
	// answered is the record the mutation being decided wrote, when its
	// answer carries it (merged, or repriced): the answer may be stored as
	// a reference to it (see Answer.Record).
	answered *Record
	// ahead holds the records the push writes, by collection/id, as read
	// before the first of them was decided (nil: never written); each is
	// taken once, and dropped when the writer writes the record.
	ahead map[string]*Record
}

// put writes a record in the writer's unit of work, keeping what the
// writer has learnt of the store current.
func (w *writer) put(ctx context.Context, next *Record, prevVersion int64) error {
	if err := w.tx.Put(ctx, next, prevVersion); err != nil {
		return err
	}
	delete(w.ahead, string(next.Collection)+"/"+next.ID) // read ahead of this write: stale now
	switch next.Collection {
	case schema.Orders:
		w.noteOrder(next)
	case schema.Products:
		delete(w.products, next.ID)
	case schema.Visits:
		w.noteVisit(next)
	}
	return nil
}

// decodedRef is a referenced record decoded at one version.
type decodedRef struct {
	version int64
	rec     schema.Record
}

// rederiver returns a writer for re-deriving stored records in w's unit of
// work.
func (w *writer) rederiver() *writer {
	return &writer{e: w.e, tx: w.tx, p: w.p, rederive: true, books: w.books, open: w.open}
}

// rejection is a reason to refuse a mutation; the caller sees it.
func rejection(code, field, format string, args ...any) *schema.Error {
	return &schema.Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// reference loads a record that rec points at, which must exist, not be
// deleted and be readable by the writer; else the mutation is refused with
// validation_failed, the same answer whichever it is, so that nothing is
// learnt of records the writer cannot see. When re-deriving, a reference
// that has gone is no refusal: the stored record (a tombstone keeps its
// tokens) or nil comes back, with no decoded record.
func (w *writer) reference(ctx context.Context, c schema.Collection, id, field string) (*Record, schema.Record, error) {
	r, err := w.referenced(ctx, c, id, field)
	if err != nil || r == nil || r.Deleted {
		return r, nil, err
	}
	key := string(c) + "/" + id
	if d, ok := w.decoded[key]; ok && d.version == r.Version {
		return r, d.rec, nil
	}
	rec, err := schema.Decode(c, r.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("stored %s %s does not decode: %w", c, id, err)
	}
	w.keepDecoded(r, rec)
	return r, rec, nil
}

// referenced is reference without decoding the record: the stored record,
// which is deleted or nil only when re-deriving.
func (w *writer) referenced(ctx context.Context, c schema.Collection, id, field string) (*Record, error) {
	r, err := w.tx.Record(ctx, c, id)
	switch {
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, err
	case err != nil || r.Deleted:
		if w.rederive {
			return r, nil
		}
		return nil, noSuchReference(c, field)
	case !w.rederive && !schema.Intersects(r.Tokens, w.tokens):
		return nil, noSuchReference(c, field)
	}
	return r, nil
}

// keepDecoded keeps rec as the decoded data of r at its version, for
// reference and the writer's own later writes to take instead of decoding
// the data again. rec is read, never changed, by those who take it.
func (w *writer) keepDecoded(r *Record, rec schema.Record) {
	if w.decoded == nil {
		w.decoded = map[string]decodedRef{}
	}
	w.decoded[string(r.Collection)+"/"+r.ID] = decodedRef{version: r.Version, rec: rec}
}

// noSuchReference refuses a reference to a record that does not exist or
// that the writer cannot see.
func noSuchReference(c schema.Collection, field string) *schema.Error {
	return rejection(schema.CodeValidationFailed, field, "%s refers to no %s the caller can see", field, singular(c))
}

// singular names one record of a collection.
func singular(c schema.Collection) string {
	switch c {
	case schema.Territories:
		return "territory"
	case schema.PriceLists:
		return "price list"
	case schema.RoutePlans:
		return "route plan"
	}
	return strings.TrimSuffix(string(c), "s")
}

// derive sets the server-owned fields of rec, a record of collection c
// with the given id about to replace prev (nil when created), and works
// out its facts and refs. A *schema.Error means the mutation is refused.
func (w *writer) derive(ctx context.Context, c schema.Collection, id string, rec schema.Record, prev schema.Record) (*derived, error) {
	d := &derived{}
	switch r := rec.(type) {
	case *schema.Territory:
		d.facts.Territories = []string{id}
		d.refs = []string{naturalRef(c, r.Name)}
	case *schema.Customer:
		if _, _, err := w.reference(ctx, schema.Territories, r.TerritoryID, "territory_id"); err != nil {
			return nil, err
		}
		d.facts = schema.Facts{Territories: []string{r.TerritoryID}, Distributor: r.DistributorID}
		d.refs = []string{naturalRef(c, r.Code)}
		d.report = []Fact{{Kind: FactCustomer, Customer: id, Territory: r.TerritoryID, Label: r.Name, Grade: r.Grade, At: Epoch,
			Amount: r.CreditLimit, Balance: r.OpenBalance}}
	case *schema.Product:
		d.refs = []string{naturalRef(c, r.SKU)}
	case *schema.PriceList:
		for i, cid := range r.CustomerIDs {
			cust, _, err := w.reference(ctx, schema.Customers, cid, fmt.Sprintf("customer_ids[%d]", i))
			if err != nil {
				return nil, err
			}
			d.facts.Territories = append(d.facts.Territories, territoriesOf(cust)...)
			d.refs = append(d.refs, "customer:"+cid)
		}
		d.facts.Distributor = r.DistributorID
		d.refs = append(d.refs, naturalRef(c, r.Name))
		if r.DistributorID != "" {
			d.refs = append(d.refs, "distributor:"+r.DistributorID)
		}
	case *schema.RoutePlan:
		rep, err := w.e.store.User(ctx, r.RepID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err != nil || rep.Role != schema.RoleRep || !w.seesUser(rep) {
			return nil, rejection(schema.CodeValidationFailed, "rep_id", "rep_id refers to no rep the caller can see")
		}
		d.facts = schema.Facts{Owner: r.RepID, Territories: rep.Territories}
		d.refs = []string{"rep:" + r.RepID, "rep-date:" + r.RepID + ":" + r.Date}
		if d.report, err = w.stopFacts(ctx, r, prev); err != nil {
			return nil, err
		}
	case *schema.Visit:
		if err := w.deriveVisit(ctx, id, r, prev, d); err != nil {
			return nil, err
		}
	case *schema.Order:
		if err := w.deriveOrder(ctx, id, r, prev, d); err != nil {
			return nil, err
		}
	case *schema.Photo:
		if err := w.derivePhoto(ctx, id, r, prev, d); err != nil {
			return nil, err
		}
	case *schema.Target:
		if err := w.deriveTarget(ctx, r, prev, d); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("derive: unexpected record %T", rec)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	d.data = data
	return d, nil
}

// territoriesOf reads the territories a stored record belongs to back from
// its read tokens; none for nil.
func territoriesOf(r *Record) []string {
	if r == nil {
		return nil
	}
	return factsOf(r).Territories
}

func (w *writer) deriveVisit(ctx context.Context, id string, v *schema.Visit, prev schema.Record, d *derived) error {
	custRec, c, err := w.reference(ctx, schema.Customers, v.CustomerID, "customer_id")
	if err != nil {
		return err
	}
	cust, _ := c.(*schema.Customer)
	if cust == nil {
		cust = &schema.Customer{} // gone since: no location to measure from
	}
	switch {
	case prev != nil:
		v.RepID = prev.(*schema.Visit).RepID
	case w.p.Role != schema.RoleAdmin || v.RepID == "":
		v.RepID = w.p.UserID
	}
	v.DistanceM, v.WithinGeofence, v.DurationS = nil, nil, nil
	if cust.Lat != nil && cust.Lng != nil && v.CheckIn.Lat != nil && v.CheckIn.Lng != nil {
		dist := math.Round(schema.DistanceM(*cust.Lat, *cust.Lng, *v.CheckIn.Lat, *v.CheckIn.Lng)*10) / 10
		radius := w.e.geofenceM
		if cust.GeofenceM > 0 {
			radius = float64(cust.GeofenceM)
		}
		within := dist <= radius
		v.DistanceM, v.WithinGeofence = &dist, &within
	}
	if v.CheckOut != nil {
		secs := int64(v.CheckOut.At.Sub(v.CheckIn.At).Seconds())
		v.DurationS = &secs
	}
	d.facts = schema.Facts{Owner: v.RepID, Territories: territoriesOf(custRec)}
	d.refs = []string{"customer:" + v.CustomerID, "rep:" + v.RepID}
	flag := -1
	if v.WithinGeofence != nil {
		flag = map[bool]int{false: 0, true: 1}[*v.WithinGeofence]
	}
	d.report = []Fact{{Kind: FactVisit, Rep: v.RepID, Customer: v.CustomerID, Territory: first(territoriesOf(custRec)),
		Visit: id, At: v.CheckIn.At.UTC(), Flag: flag}}
	switch {
	case v.CheckOut != nil:
		v.CheckOutMissing = false
	case !w.rederive: // re-deriving keeps the flag as stored
		later, err := w.tx.RepFactAfter(ctx, FactVisit, v.RepID, v.CheckIn.At, id)
		if err != nil {
			return err
		}
		v.CheckOutMissing = later
	}
	if v.CheckOut == nil {
		open := d.report[0]
		open.Kind = FactOpen
		d.report = append(d.report, open)
		if !v.CheckOutMissing {
			d.refs = append(d.refs, openVisit(v.RepID))
		}
	}
	return nil
}

func (w *writer) deriveOrder(ctx context.Context, id string, o *schema.Order, prev schema.Record, d *derived) error {
	custRec, c, err := w.reference(ctx, schema.Customers, o.CustomerID, "customer_id")
	if err != nil {
		return err
	}
	at := w.e.now().UTC()
	if o.VisitID != "" {
		_, v, err := w.reference(ctx, schema.Visits, o.VisitID, "visit_id")
		if err != nil {
			return err
		}
		if v != nil {
			at = v.(*schema.Visit).CheckIn.At.UTC()
		} else if prev != nil {
			at = Epoch // the visit has gone since
		}
	}
	var was *schema.Order
	if prev != nil {
		was = prev.(*schema.Order)
		o.PlacedBy, o.DistributorID = was.PlacedBy, was.DistributorID
		o.SubmittedAt, o.HoldReason = was.SubmittedAt, was.HoldReason
	} else {
		o.SubmittedAt, o.HoldReason = nil, nil
		o.PlacedBy, o.DistributorID = w.p.UserID, ""
		if w.p.Role == schema.RoleDistributor {
			o.DistributorID = w.p.DistributorID
		}
	}
	if !w.rederive {
		if err := w.checkOrderMove(was, o); err != nil {
			return err
		}
		cust := c.(*schema.Customer)
		if was == nil || was.Status == schema.OrderDraft { // prices hold from submission on
			if d.repriced, err = w.priceOrder(ctx, o, cust); err != nil {
				return err
			}
		}
	}
	total, ok := o.LinesTotal()
	if !ok {
		return rejection(schema.CodeValidationFailed, "lines", "the order total does not fit in 64 bits")
	}
	o.Total = total
	submitting := o.Status == schema.OrderSubmitted && (was == nil || was.Status == schema.OrderDraft)
	if !w.rederive && submitting {
		now := w.e.now().UTC()
		o.SubmittedAt = &now
		if err := w.holdOverCredit(ctx, id, o, c.(*schema.Customer)); err != nil {
			return err
		}
	}
	d.facts = schema.Facts{Owner: o.PlacedBy, Territories: territoriesOf(custRec), Distributor: o.DistributorID}
	counted := 1
	if o.Status == schema.OrderCancelled {
		counted = 0
	}
	d.report = []Fact{{Kind: FactOrder, Rep: o.PlacedBy, Customer: o.CustomerID, Territory: first(territoriesOf(custRec)),
		Visit: o.VisitID, At: at, Flag: counted}}
	d.report = append(d.report, saleFacts(o, first(territoriesOf(custRec)))...)
	d.refs = []string{"customer:" + o.CustomerID}
	if o.VisitID != "" {
		d.refs = append(d.refs, "visit:"+o.VisitID)
	}
	return nil
}

// pendingUpload is the ref of photo records whose bytes have not arrived.
const pendingUpload = "upload:pending"

func (w *writer) derivePhoto(ctx context.Context, id string, r *schema.Photo, prev schema.Record, d *derived) error {
	visit, err := w.referenced(ctx, schema.Visits, r.VisitID, "visit_id")
	if err != nil {
		return err
	}
	switch {
	case visit != nil && !visit.Deleted:
		// A visit's rep owns it: its read tokens say who, without
		// decoding its data.
		r.RepID = factsOf(visit).Owner
	case prev != nil:
		r.RepID = prev.(*schema.Photo).RepID // the visit has gone since
	}
	creator := w.p.UserID
	if prev != nil {
		r.DeviceID = prev.(*schema.Photo).DeviceID
		stored, err := w.tx.Record(ctx, schema.Photos, id)
		if err != nil {
			return err
		}
		creator = creatorOf(stored)
	} else {
		r.DeviceID = w.p.DeviceID
	}
	// The record counts as uploaded only when its creator proved it holds
	// the bytes, and they are as many as it says.
	proof, err := w.tx.PhotoProof(ctx, creator, r.SHA256)
	switch {
	case errors.Is(err, ErrNotFound):
		proof = nil
	case err != nil:
		return err
	}
	r.Uploaded = proof != nil && proof.Size == r.Size
	r.ExifTakenAt, r.ExifLat, r.ExifLng = nil, nil, nil
	if r.Uploaded {
		r.ExifTakenAt, r.ExifLat, r.ExifLng = proof.TakenAt, proof.Lat, proof.Lng
	}
	r.ExifDisagrees = r.Disagrees()
	d.facts = schema.Facts{Owner: r.RepID, Territories: territoriesOf(visit)}
	d.refs = []string{"visit:" + r.VisitID, photoRef(r.SHA256), photoCreator(creator)}
	if !r.Uploaded {
		d.refs = append(d.refs, pendingUpload)
	}
	return nil
}

// seesUser reports whether the writer's scope reaches a user: an admin
// every user, anyone else users who share one of its territories. Asked
// only on fresh writes; re-deriving keeps what was written.
func (w *writer) seesUser(u *schema.User) bool {
	return w.rederive || w.p.Role == schema.RoleAdmin || slices.ContainsFunc(u.Territories, w.p.HasTerritory)
}

// stopFacts returns a fact for each stop of a route plan, in the territory
// of the stop's customer. A stop whose customer was not on the plan before
// (prev, nil for a new plan) must name a customer the writer can see.
func (w *writer) stopFacts(ctx context.Context, plan *schema.RoutePlan, prev schema.Record) ([]Fact, error) {
	day, err := time.Parse("2006-01-02", plan.Date)
	if err != nil {
		return nil, err
	}
	var before []schema.Stop
	if p, ok := prev.(*schema.RoutePlan); ok {
		before = p.Stops
	}
	facts := make([]Fact, 0, len(plan.Stops))
	for i, stop := range plan.Stops {
		known := slices.ContainsFunc(before, func(s schema.Stop) bool { return s.CustomerID == stop.CustomerID })
		// A role that may not change the stops (a rep) hears so from the
		// field rules instead.
		if !known && !w.rederive && schema.AccessRule(w.p.Role, schema.RoutePlans).UpdateFields == nil {
			if _, _, err := w.reference(ctx, schema.Customers, stop.CustomerID, fmt.Sprintf("stops[%d].customer_id", i)); err != nil {
				return nil, err
			}
		}
		cust, err := w.tx.Record(ctx, schema.Customers, stop.CustomerID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		facts = append(facts, Fact{Kind: FactStop, Rep: plan.RepID, Customer: stop.CustomerID,
			Territory: first(territoriesOf(cust)), Day: plan.Date, At: day})
	}
	return facts, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
