package report

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// CreditRow is one customer's line of the credit report. Amounts in minor
// units.
type CreditRow struct {
	CustomerID   string  `json:"customer_id"`
	Name         string  `json:"name"`
	TerritoryID  string  `json:"territory_id"`
	CreditLimit  int64   `json:"credit_limit"`
	OpenBalance  int64   `json:"open_balance"`
	OpenOrders   int64   `json:"open_orders"`
	Exposure     int64   `json:"exposure"`
	Ratio        float64 `json:"ratio"`
	OrdersOnHold int     `json:"orders_on_hold"`
}

// CreditReport lists the customers whose exposure is at or above a ratio
// of their credit limit.
type CreditReport struct {
	MinRatio  float64      `json:"min_ratio"`
	Customers []*CreditRow `json:"customers"`
}

// Credit reports, for the customers in p's territories (or one of them)
// that have a credit limit, their exposure — open balance plus the orders
// submitted, on hold, confirmed or shipped and not yet delivered — when it
// is at least minRatio of the limit, highest ratio first.
func (rs *Reports) Credit(ctx context.Context, p schema.Principal, minRatio float64, territory string) (*CreditReport, error) {
	const op = "report.Credit"
	if math.IsNaN(minRatio) || minRatio < 0 {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "min_ratio", "min_ratio must be a number of at least 0")
	}
	scope, err := schema.ReportScope(p, territory)
	if err != nil {
		return nil, err
	}
	customers, err := rs.store.Facts(ctx, sync.FactCustomer, scope, sync.Epoch, sync.Epoch.Add(time.Nanosecond))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	open, err := rs.store.Facts(ctx, sync.FactOpenOrder, scope, sync.Epoch, sync.Epoch.Add(time.Nanosecond))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	rows := map[string]*CreditRow{}
	for _, f := range customers {
		if f.Amount > 0 {
			rows[f.Customer] = &CreditRow{CustomerID: f.Customer, Name: f.Label, TerritoryID: f.Territory,
				CreditLimit: f.Amount, OpenBalance: f.Balance}
		}
	}
	for _, f := range open {
		if r := rows[f.Customer]; r != nil {
			r.OpenOrders += f.Amount
			if f.Status == schema.OrderCreditHold {
				r.OrdersOnHold++
			}
		}
	}
	report := &CreditReport{MinRatio: minRatio, Customers: []*CreditRow{}}
	for _, r := range rows {
		r.Exposure = r.OpenBalance + r.OpenOrders
		r.Ratio = math.Round(float64(r.Exposure)/float64(r.CreditLimit)*10000) / 10000
		if float64(r.Exposure) >= minRatio*float64(r.CreditLimit) {
			report.Customers = append(report.Customers, r)
		}
	}
	slices.SortFunc(report.Customers, func(a, b *CreditRow) int {
		return cmp.Or(cmp.Compare(b.Ratio, a.Ratio), strings.Compare(a.CustomerID, b.CustomerID))
	})
	return report, nil
}
