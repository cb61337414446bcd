package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/fieldsync/fieldsync/schema"
)

// orderMoves lists, per role, the statuses an order may go to from each
// status ("" for a new order). Reps and distributors act on their own
// orders (the access table sees to that), managers on those of the
// territories they oversee.
var orderMoves = map[schema.Role]map[string][]string{
	schema.RoleRep:         ownOrderMoves,
	schema.RoleDistributor: ownOrderMoves,
	schema.RoleManager: {
		schema.OrderSubmitted:  {schema.OrderConfirmed, schema.OrderCancelled},
		schema.OrderCreditHold: {schema.OrderConfirmed, schema.OrderCancelled},
		schema.OrderConfirmed:  {schema.OrderShipped, schema.OrderCancelled},
		schema.OrderShipped:    {schema.OrderDelivered},
	},
	schema.RoleAdmin: {
		"":                     {schema.OrderDraft, schema.OrderSubmitted},
		schema.OrderDraft:      {schema.OrderDraft, schema.OrderSubmitted, schema.OrderCancelled},
		schema.OrderSubmitted:  {schema.OrderConfirmed, schema.OrderCancelled},
		schema.OrderCreditHold: {schema.OrderConfirmed, schema.OrderCancelled},
		schema.OrderConfirmed:  {schema.OrderShipped, schema.OrderCancelled},
		schema.OrderShipped:    {schema.OrderDelivered},
	},
}

var ownOrderMoves = map[string][]string{
	"":                     {schema.OrderDraft, schema.OrderSubmitted},
	schema.OrderDraft:      {schema.OrderDraft, schema.OrderSubmitted, schema.OrderCancelled},
	schema.OrderSubmitted:  {schema.OrderCancelled},
	schema.OrderCreditHold: {schema.OrderCancelled},
}

// checkOrderMove refuses a status change the caller's role may not make,
// and any change but the status to an order that is no longer a draft.
func (w *writer) checkOrderMove(prev, next *schema.Order) error {
	from := ""
	if prev != nil {
		from = prev.Status
	}
	if from != "" && from != schema.OrderDraft && !bytes.Equal(orderTerms(prev), orderTerms(next)) {
		return rejection(schema.CodeInvalidTransition, "lines", "a %s order's lines, dates and notes no longer change", from)
	}
	if from == next.Status && from != "" && from != schema.OrderDraft {
		return nil // nothing moves; editing a draft is a move of its own
	}
	if !slices.Contains(orderMoves[w.p.Role][from], next.Status) {
		if from == "" {
			return rejection(schema.CodeInvalidTransition, "status", "an order is created as draft or submitted, not %s", next.Status)
		}
		return rejection(schema.CodeInvalidTransition, "status", "a %s may not take an order from %s to %s", w.p.Role, from, next.Status)
	}
	return nil
}

// orderTerms is what a client agreed in an order: everything but its
// status and the fields the server owns.
func orderTerms(o *schema.Order) []byte {
	terms := *o
	terms.Status, terms.Total, terms.PlacedBy, terms.DistributorID = "", 0, "", ""
	terms.SubmittedAt, terms.HoldReason = nil, nil
	b, _ := json.Marshal(terms)
	return b
}

// priceOrder sets each line's unit price from the customer's price lists
// valid today (the most specific list, then the best quantity tier that
// the line reaches) or else the product's list price, and reports whether
// a client's price was replaced.
func (w *writer) priceOrder(ctx context.Context, o *schema.Order, cust *schema.Customer) (replaced bool, err error) {
	lists, err := w.priceLists(ctx, o.CustomerID, cust.DistributorID)
	if err != nil {
		return false, err
	}
	for i := range o.Lines {
		line := &o.Lines[i]
		product, err := w.product(ctx, line.ProductID, i)
		if err != nil {
			return false, err
		}
		if !product.Active {
			field := fmt.Sprintf("lines[%d].product_id", i)
			return false, rejection(schema.CodeValidationFailed, field, "%s refers to a product no longer sold", field)
		}
		price := product.Price
		for _, l := range lists {
			if p, ok := l.tierPrice(line.ProductID, line.Quantity); ok {
				price = p
				break
			}
		}
		if line.UnitPrice != price {
			line.UnitPrice, replaced = price, true
		}
		switch amount, ok := line.Amount(); {
		case !ok:
			return false, rejection(schema.CodeValidationFailed, fmt.Sprintf("lines[%d].quantity", i),
				"lines[%d].quantity is too large at %d a unit: the amount does not fit in 64 bits", i, price)
		case amount < 0:
			return false, rejection(schema.CodeValidationFailed, fmt.Sprintf("lines[%d].discount", i),
				"lines[%d].discount is more than the line is worth at %d a unit", i, price)
		}
	}
	return replaced, nil
}

// product returns the product that line i of an order names, found as
// reference finds it, and keeps it until the writer writes that product:
// an order of a hundred lines looks each product up once per push.
func (w *writer) product(ctx context.Context, id string, i int) (*schema.Product, error) {
	if p, ok := w.products[id]; ok {
		return p, nil
	}
	_, rec, err := w.reference(ctx, schema.Products, id, fmt.Sprintf("lines[%d].product_id", i))
	if err != nil {
		return nil, err
	}
	p := rec.(*schema.Product)
	if w.products == nil {
		w.products = map[string]*schema.Product{}
	}
	w.products[id] = p
	return p, nil
}

// pricedList is a price list's items by product.
type pricedList struct {
	items map[string][]schema.PriceItem
}

// priceLists returns the price lists that apply to a customer today, the
// customer's own before its distributor's. They are read once per writer,
// until it writes a price list.
func (w *writer) priceLists(ctx context.Context, customerID, distributorID string) ([]*pricedList, error) {
	key := customerID + "/" + distributorID
	if lists, ok := w.lists[key]; ok {
		return lists, nil
	}
	lists, err := w.readPriceLists(ctx, customerID, distributorID)
	if err != nil {
		return nil, err
	}
	if w.lists == nil {
		w.lists = map[string][]*pricedList{}
	}
	w.lists[key] = lists
	return lists, nil
}

func (w *writer) readPriceLists(ctx context.Context, customerID, distributorID string) ([]*pricedList, error) {
	today := w.e.now().UTC().Format("2006-01-02")
	var out []*pricedList
	refs := []string{"customer:" + customerID}
	if distributorID != "" {
		refs = append(refs, "distributor:"+distributorID)
	}
	for _, ref := range refs {
		for after := ""; ; {
			page, err := w.tx.RecordsByRef(ctx, schema.PriceLists, ref, after, 100)
			if err != nil {
				return nil, err
			}
			for _, r := range page {
				if r.Deleted {
					continue
				}
				var l schema.PriceList
				if err := json.Unmarshal(r.Data, &l); err != nil {
					return nil, err
				}
				if (l.ValidFrom == "" || l.ValidFrom <= today) && (l.ValidTo == "" || today <= l.ValidTo) {
					pl := &pricedList{items: map[string][]schema.PriceItem{}}
					for _, it := range l.Items {
						pl.items[it.ProductID] = append(pl.items[it.ProductID], it)
					}
					out = append(out, pl)
				}
			}
			if len(page) < 100 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	return out, nil
}

// tierPrice finds a product's price in a list for a quantity: the item
// with the highest minimum quantity the line reaches.
func (l *pricedList) tierPrice(productID string, quantity int64) (int64, bool) {
	best, found := schema.PriceItem{MinQuantity: -1}, false
	for _, it := range l.items[productID] {
		if it.MinQuantity <= quantity && it.MinQuantity > best.MinQuantity {
			best, found = it, true
		}
	}
	return best.Price, found
}
