package fieldsync_test

import (
	"context"
	"fmt"
	"log"
	"time"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

func Example() {
	ctx := context.Background()
	c, err := fieldsync.Open(ctx, fieldsync.Config{
		BaseURL:   "https://sync.example.com",
		Username:  "rep-17",
		Password:  "secret-password",
		DeviceID:  "phone-7",
		StorePath: "/data/fieldsync.db",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Offline: the visit and its photo wait in the outbox.
	lat, lng := 52.5201, 13.4049
	at := time.Now()
	err = c.Put(ctx, schema.Visits, "v-1", schema.Visit{CustomerID: "c-17",
		CheckIn: schema.GeoPoint{At: at, Lat: &lat, Lng: &lng}})
	if err != nil {
		log.Fatal(err)
	}
	err = c.AddPhotoFile(ctx, "ph-1", "v-1", "/sdcard/DCIM/IMG_0001.jpg", fieldsync.PhotoInfo{TakenAt: at, Lat: &lat, Lng: &lng})
	if err != nil {
		log.Fatal(err)
	}

	// Online: photos up, outbox out, changes in.
	report, err := c.Sync(ctx)
	if err != nil {
		log.Printf("sync: %v (the rest goes next time)", err)
	}
	fmt.Printf("pushed %d, pulled %d, photos %d\n", report.Pushed, report.Pulled, report.PhotosUploaded)

	customers, err := c.List(ctx, schema.Customers)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range customers {
		var cust schema.Customer
		if err := r.Decode(&cust); err == nil {
			fmt.Println(cust.Code, cust.Name)
		}
	}
}
