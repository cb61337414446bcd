package fieldsync_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// exampleServer is the URL of the real fieldsync server the examples sync
// with, and exampleDir a folder for their local stores; TestMain sets both.
var exampleServer, exampleDir string

// TestMain runs a fieldsync server for the examples, which have no test
// to start one with; the tests start their own.
func TestMain(m *testing.M) {
	flag.Parse() // the server's logger asks testing.Verbose
	os.Exit(runWithExampleServer(m))
}

func runWithExampleServer(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fieldsync-example-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, stop, err := servertest.Run(dir, servertest.Options{})
	if err != nil {
		log.Print(err)
		return 1
	}
	exampleServer, exampleDir = srv.URL, dir
	code := m.Run()
	if err := stop(); err != nil {
		log.Print(err)
		code = 1
	}
	return code
}

func Example() {
	ctx := context.Background()
	c, err := fieldsync.Open(ctx, fieldsync.Config{
		BaseURL:   exampleServer, // such as https://sync.example.com
		Username:  servertest.AdminName,
		Password:  servertest.AdminPassword,
		DeviceID:  "laptop-7",
		StorePath: filepath.Join(exampleDir, "laptop-7.db"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Offline: the territory and its first customer wait in the outbox.
	err = c.Put(ctx, schema.Territories, "t-north", schema.Territory{Name: "North", Region: "East"})
	if err != nil {
		log.Fatal(err)
	}
	lat, lng := 52.5201, 13.4049
	err = c.Put(ctx, schema.Customers, "c-17", schema.Customer{Code: "C017", Name: "Corner Shop", TerritoryID: "t-north",
		Lat: &lat, Lng: &lng, Grade: "A"})
	if err != nil {
		log.Fatal(err)
	}

	// Online: photos up, outbox out, changes in.
	report, err := c.Sync(ctx)
	if err != nil {
		log.Printf("sync: %v (the rest goes next time)", err)
	}
	fmt.Printf("pushed %d, applied %d\n", report.Pushed, report.Applied)

	customers, err := c.List(ctx, schema.Customers)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range customers {
		var cust schema.Customer
		if err := r.Decode(&cust); err == nil {
			fmt.Println(cust.Code, cust.Name, r.Version)
		}
	}
	// Output:
	// pushed 2, applied 2
	// C017 Corner Shop 1
}
