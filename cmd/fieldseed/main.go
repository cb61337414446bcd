// Command fieldseed loads a realistic data set into a fieldsync server
// through the push API, as an ERP integration would: territories, rep and
// manager users, customers around a city centre per territory, products,
// price lists and each rep's route plans from today.
//
// Usage:
//
//	fieldseed -url http://127.0.0.1:8080 -admin admin -password change-me-please \
//	    [-territories 5 -reps-per-territory 4 -customers 2000 -products 200 \
//	     -price-lists 10 -days 30 -seed 1 -user-password secret]
//
// Reps are named rep1, rep2, … (RepsPerTerritory to a territory, in
// territory order) and managers manager-<region>; each gets the password
// "<username>-password" unless -user-password is given. The passwords are
// printed. Every choice is derived from -seed, and every mutation id from
// the record it writes, so running the same command again writes nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
	"github.com/fieldsync/fieldsync/cmd/internal/usage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(usage.ExitCode("fieldseed", err, os.Stderr))
}

// run parses the flags and loads the data set.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := seed.Defaults()
	fs := flag.NewFlagSet("fieldseed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage.Set(fs, "fieldseed loads a realistic data set (territories, users, customers, products, price lists, route plans) into a fieldsync server.",
		"fieldseed -password ADMIN_PASSWORD [-url http://127.0.0.1:8080] [-admin admin] [flags]")
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of the fieldsync server")
	fs.StringVar(&cfg.Admin, "admin", "admin", "admin username")
	fs.StringVar(&cfg.Password, "password", "", "admin password (required)")
	fs.StringVar(&cfg.UserPassword, "user-password", "", "password of every user created (default <username>-password)")
	fs.IntVar(&cfg.Territories, "territories", cfg.Territories, "territories")
	fs.IntVar(&cfg.RepsPerTerritory, "reps-per-territory", cfg.RepsPerTerritory, "reps per territory")
	fs.IntVar(&cfg.Customers, "customers", cfg.Customers, "customers, spread over the territories")
	fs.IntVar(&cfg.Products, "products", cfg.Products, "products")
	fs.IntVar(&cfg.PriceLists, "price-lists", cfg.PriceLists, "price lists")
	fs.IntVar(&cfg.Days, "days", cfg.Days, "days of route plans per rep, from today")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every pseudo-random choice")
	if err := usage.Parse(fs, args); err != nil {
		return err
	}
	if cfg.Password == "" {
		return fmt.Errorf("-password is required")
	}
	_, err := seed.Run(ctx, stdout, cfg)
	return err
}
