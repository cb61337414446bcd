package console

import (
	"errors"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// galleryPhoto is one photo of the gallery with who took it where.
type galleryPhoto struct {
	Photo         dayPhoto
	Rep, Customer string
	TakenAt       *time.Time
}

type photosData struct {
	From, To, Rep, Customer string
	Reps                    []*schema.User
	Photos                  []galleryPhoto
	Truncated               bool
}

// photosPage is the gallery: the photos of visits checked in between two
// dates, of one rep or customer when asked.
func (c *Console) photosPage(ctx *fiber.Ctx) error {
	d := &photosData{Rep: ctx.Query("rep_id"), Customer: ctx.Query("customer_id")}
	var start, end time.Time
	var err error
	if d.From, d.To, start, end, err = c.dateRange(ctx, 1); err != nil {
		return c.fail(ctx, err)
	}
	p := viewerOf(ctx).principal()
	scope, err := scopeOf(p)
	if err != nil {
		return c.fail(ctx, err)
	}
	facts, err := c.records.Facts(ctx.UserContext(), sync.FactVisit, scope, start, end)
	if err != nil {
		return c.fail(ctx, err)
	}
	slices.SortFunc(facts, func(a, b sync.Fact) int { return b.At.Compare(a.At) })
	users, err := c.accounts.Users(ctx.UserContext())
	if err != nil {
		return c.fail(ctx, err)
	}
	names := map[string]string{}
	for _, u := range users {
		names[u.ID] = u.Username
		if isRepIn(u, scope) {
			d.Reps = append(d.Reps, u)
		}
	}
	err = c.records.View(ctx.UserContext(), func(tx sync.RecordTx) error {
		customers := customerCache{tx: tx, seen: map[string]*schema.Customer{}}
		for _, f := range facts {
			if (d.Rep != "" && f.Rep != d.Rep) || (d.Customer != "" && f.Customer != d.Customer) {
				continue
			}
			photos, err := byRef[schema.Photo](ctx.UserContext(), tx, schema.Photos, "visit:"+f.Visit)
			if err != nil {
				return err
			}
			cust, err := customers.customer(ctx.UserContext(), f.Customer)
			if err != nil {
				return err
			}
			for _, ph := range photos {
				if len(d.Photos) == maxListed {
					d.Truncated = true
					return nil
				}
				g := galleryPhoto{Photo: photoOf(ph.Data), Rep: names[f.Rep], Customer: f.Customer, TakenAt: ph.Data.TakenAt}
				if cust != nil {
					g.Customer = cust.Name
				}
				d.Photos = append(d.Photos, g)
			}
		}
		return nil
	})
	if err != nil {
		return c.fail(ctx, err)
	}
	return c.render(ctx, fiber.StatusOK, "photos", &view{Title: "photos.title", Nav: "photos", Data: d})
}

func photoOf(ph schema.Photo) dayPhoto {
	return dayPhoto{SHA256: ph.SHA256, ContentType: ph.ContentType, Thumb: thumbnailable(ph.ContentType),
		Uploaded: ph.Uploaded, ExifDisagrees: ph.ExifDisagrees}
}

// photoThumb answers a thumbnail of a photo (or, with size=full, its
// bytes) to a viewer who may read a photo record with that hash.
func (c *Console) photoThumb(ctx *fiber.Ctx) error {
	sum := ctx.Params("sha256")
	if !schema.ValidSHA256(sum) || c.photos == nil {
		return c.renderError(ctx, fiber.StatusNotFound, "error.not_found")
	}
	ok, err := c.engine.CanReadPhoto(ctx.UserContext(), viewerOf(ctx).principal(), sum)
	if err != nil {
		return c.fail(ctx, err)
	}
	if !ok {
		return c.renderError(ctx, fiber.StatusNotFound, "error.not_found")
	}
	ctx.Set(fiber.HeaderCacheControl, "private, max-age=86400, immutable")
	if ctx.Query("size") == "full" {
		body, info, err := c.photos.Open(ctx.UserContext(), sum)
		if err != nil {
			return c.fail(ctx, err)
		}
		ctx.Set(fiber.HeaderContentType, info.ContentType)
		ctx.Set(fiber.HeaderContentDisposition, "inline")
		ctx.Response().SetBodyStream(body, int(info.Size)) // closed once sent
		return nil
	}
	thumb, err := c.thumbnail.make(ctx.UserContext(), c.photos, sum)
	if errors.Is(err, errNoThumbnail) {
		return ctx.Redirect("/console/assets/file.svg", fiber.StatusFound)
	}
	if err != nil {
		return c.fail(ctx, err)
	}
	ctx.Set(fiber.HeaderContentType, "image/jpeg")
	return ctx.Send(thumb)
}
