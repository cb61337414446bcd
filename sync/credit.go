package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/fieldsync/fieldsync/schema"
)

// openStatuses are the statuses of the orders that count in a customer's
// exposure: submitted, on hold, confirmed or shipped, not yet delivered.
var openStatuses = []string{schema.OrderSubmitted, schema.OrderCreditHold, schema.OrderConfirmed, schema.OrderShipped}

// holdOverCredit puts an order being submitted on credit hold when the
// customer's exposure with it would pass its credit limit: the customer's
// open balance, plus its other open orders, plus this one. A credit limit
// of 0 means none is set. The order is never refused for it: the rep took
// it in the field, where the limit could not be checked.
func (w *writer) holdOverCredit(ctx context.Context, id string, o *schema.Order, cust *schema.Customer) error {
	if cust.CreditLimit <= 0 {
		return nil
	}
	open, err := w.openOrders(ctx, o.CustomerID, id)
	if err != nil {
		return err
	}
	exposure := cust.OpenBalance + open + o.Total
	if exposure <= cust.CreditLimit {
		return nil
	}
	o.Status = schema.OrderCreditHold
	o.HoldReason = &schema.HoldReason{
		Code: schema.CodeCreditLimitExceeded,
		Message: fmt.Sprintf("open balance %d + open orders %d + this order %d = %d is above the credit limit %d by %d (minor units)",
			cust.OpenBalance, open, o.Total, exposure, cust.CreditLimit, exposure-cust.CreditLimit),
		CreditLimit: cust.CreditLimit, OpenBalance: cust.OpenBalance, OpenOrders: open,
		OrderTotal: o.Total, Exposure: exposure, Over: exposure - cust.CreditLimit,
	}
	return nil
}

// openOrders returns the total of a customer's open orders but the one
// with id except.
func (w *writer) openOrders(ctx context.Context, customerID, except string) (int64, error) {
	book, err := w.openBook(ctx, customerID)
	if err != nil {
		return 0, err
	}
	return book.sum - book.orders[except], nil
}

// creditBook is a customer's open orders, by id, with their totals, and
// the sum of those totals, kept as the orders change: a push of many
// orders for one customer adds them up once.
type creditBook struct {
	orders map[string]int64
	sum    int64
}

// set makes an order's open total amount (0: not open).
func (b *creditBook) set(id string, amount int64) {
	b.sum += amount - b.orders[id]
	if amount == 0 {
		delete(b.orders, id)
	} else {
		b.orders[id] = amount
	}
}

// openBook returns a customer's open orders. It reads them from the store
// once per writer, from what reports count of them (FactOpenOrder) where
// the unit of work can (see openOrderReader), else from the orders
// themselves; the writer's own writes of orders keep the book current
// after that (see noteOrder), so that a push of many orders for one
// customer does not read them all again for each.
func (w *writer) openBook(ctx context.Context, customerID string) (*creditBook, error) {
	if book, ok := w.books[customerID]; ok {
		return book, nil
	}
	var (
		orders map[string]int64
		err    error
	)
	if r, ok := w.tx.(openOrderReader); ok {
		orders, err = r.OpenOrders(ctx, customerID)
	} else {
		orders, err = w.readOpenOrders(ctx, customerID)
	}
	if err != nil {
		return nil, err
	}
	book := &creditBook{orders: map[string]int64{}}
	for id, amount := range orders {
		book.set(id, amount)
	}
	if w.books == nil {
		w.books = map[string]*creditBook{}
	}
	w.books[customerID] = book
	return book, nil
}

// openOrderReader is what a unit of work may offer to read a customer's
// open orders from their FactOpenOrder facts, through an index, instead of
// reading and decoding every order of the customer.
type openOrderReader interface {
	// OpenOrders returns, by order id, the Amount of the FactOpenOrder
	// facts of a customer's orders.
	OpenOrders(ctx context.Context, customerID string) (map[string]int64, error)
}

// readOpenOrders reads a customer's open orders from the orders.
func (w *writer) readOpenOrders(ctx context.Context, customerID string) (map[string]int64, error) {
	book := map[string]int64{}
	for after := ""; ; {
		page, err := w.tx.RecordsByRef(ctx, schema.Orders, "customer:"+customerID, after, 200)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if _, total, open, err := openOrder(r); err != nil {
				return nil, err
			} else if open {
				book[r.ID] = total
			}
		}
		if len(page) < 200 {
			break
		}
		after = page[len(page)-1].ID
	}
	return book, nil
}

// noteOrder keeps the writer's open books current with an order it has
// just written, from the order's facts: an open order has a FactOpenOrder
// with its customer and total.
func (w *writer) noteOrder(r *Record) {
	for _, book := range w.books {
		book.set(r.ID, 0) // the order may have moved to another customer
	}
	for _, f := range r.Facts {
		if book, ok := w.books[f.Customer]; ok && f.Kind == FactOpenOrder {
			book.set(r.ID, f.Amount)
		}
	}
}

// openOrder tells whether a stored order is open, and for whom and how much.
func openOrder(r *Record) (customer string, total int64, open bool, err error) {
	if r.Deleted {
		return "", 0, false, nil
	}
	var o struct {
		CustomerID string `json:"customer_id"`
		Status     string `json:"status"`
		Total      int64  `json:"total"`
	}
	if err := json.Unmarshal(r.Data, &o); err != nil {
		return "", 0, false, fmt.Errorf("stored order %s: %w", r.ID, err)
	}
	return o.CustomerID, o.Total, slices.Contains(openStatuses, o.Status), nil
}

// saleFacts returns what reports count of a submitted order: a sale at its
// submission, and while it is open, its part of the customer's exposure.
func saleFacts(o *schema.Order, territory string) []Fact {
	if o.SubmittedAt == nil {
		return nil
	}
	facts := []Fact{{Kind: FactSale, Rep: o.PlacedBy, Customer: o.CustomerID, Territory: territory,
		Visit: o.VisitID, At: o.SubmittedAt.UTC(), Amount: o.Total, Status: o.Status}}
	if slices.Contains(openStatuses, o.Status) {
		facts = append(facts, Fact{Kind: FactOpenOrder, Rep: o.PlacedBy, Customer: o.CustomerID, Territory: territory,
			At: Epoch, Amount: o.Total, Status: o.Status})
	}
	return facts
}
