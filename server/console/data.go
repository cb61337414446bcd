package console

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/schema"
)

// dataCollections are the collections admins import and export.
var dataCollections = []schema.Collection{schema.Territories, schema.Customers, schema.Products, schema.PriceLists}

// current reads, through the engine's pull as the viewer, the current
// records of one collection that the viewer may read.
func (c *Console) current(ctx context.Context, p schema.Principal, coll schema.Collection) ([]*schema.Envelope, error) {
	latest := map[string]*schema.Envelope{}
	req := &schema.PullRequest{Limit: 500}
	for {
		page, err := c.engine.Pull(ctx, p, req)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Changes {
			if e.Collection == coll {
				latest[e.ID] = e
			}
		}
		if !page.HasMore {
			break
		}
		req.Checkpoint = page.Checkpoint
	}
	out := make([]*schema.Envelope, 0, len(latest))
	for _, e := range latest {
		if !e.Deleted {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *schema.Envelope) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

type territoryRow struct {
	ID, Name, Region string
	Version          int64
}

type territoriesData struct {
	Territories []territoryRow
	Exports     []schema.Collection
	Notice      string
}

func (c *Console) territoriesPage(ctx *fiber.Ctx) error {
	envs, err := c.current(ctx.UserContext(), viewerOf(ctx).principal(), schema.Territories)
	if err != nil {
		return c.fail(ctx, err)
	}
	d := &territoriesData{Exports: dataCollections}
	if ctx.Query("done") == "saved" {
		d.Notice = "territories.saved"
	}
	for _, e := range envs {
		var t schema.Territory
		if err := json.Unmarshal(e.Data, &t); err != nil {
			return c.fail(ctx, err)
		}
		d.Territories = append(d.Territories, territoryRow{ID: e.ID, Name: t.Name, Region: t.Region, Version: e.Version})
	}
	return c.render(ctx, fiber.StatusOK, "territories", &view{Title: "territories.title", Nav: "territories", Data: d})
}

// territorySave creates or renames a territory through the engine's push,
// as the admin: the same validation and history as any other write.
func (c *Console) territorySave(ctx *fiber.Ctx) error {
	id := strings.TrimSpace(ctx.FormValue("id"))
	var base int64
	if v := ctx.FormValue("version"); v != "" {
		if _, err := fmt.Sscan(v, &base); err != nil {
			return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "version", "version must be a number"))
		}
	}
	data, err := json.Marshal(schema.Territory{Name: strings.TrimSpace(ctx.FormValue("name")), Region: strings.TrimSpace(ctx.FormValue("region"))})
	if err != nil {
		return err
	}
	if err := c.pushOne(ctx.UserContext(), viewerOf(ctx).principal(), schema.Territories, id, base, data); err != nil {
		return c.fail(ctx, err)
	}
	return ctx.Redirect("/console/admin/territories?done=saved", fiber.StatusSeeOther)
}

// pushOne writes one record through the engine's push as p and turns
// anything but applied or merged into an error.
func (c *Console) pushOne(ctx context.Context, p schema.Principal, coll schema.Collection, id string, base int64, data json.RawMessage) error {
	m, err := json.Marshal(schema.Mutation{MutationID: uuid.NewString(), Collection: coll, ID: id, Op: schema.MutationUpsert, BaseVersion: base, Data: data})
	if err != nil {
		return err
	}
	res, err := c.engine.Push(ctx, p, &schema.PushRequest{DeviceID: consoleDevice, Mutations: []json.RawMessage{m}})
	if err != nil {
		return err
	}
	switch r := res.Results[0]; r.Status {
	case schema.PushApplied, schema.PushMerged:
		return nil
	case schema.PushConflict:
		return schema.Errorf(schema.CodeConflict, "the record changed meanwhile; reload and try again")
	default:
		return r.Error
	}
}

// exportCSV downloads the current records of a collection as CSV: a
// column per top-level field, nested values as JSON in their cell, the
// form the import reads.
func (c *Console) exportCSV(ctx *fiber.Ctx) error {
	coll := schema.Collection(ctx.Params("collection"))
	if !slices.Contains(dataCollections, coll) {
		return c.renderError(ctx, fiber.StatusNotFound, "error.not_found")
	}
	envs, err := c.current(ctx.UserContext(), viewerOf(ctx).principal(), coll)
	if err != nil {
		return c.fail(ctx, err)
	}
	rows := make([]map[string]json.RawMessage, len(envs))
	fields := map[string]bool{}
	for i, e := range envs {
		if err := json.Unmarshal(e.Data, &rows[i]); err != nil {
			return c.fail(ctx, err)
		}
		for k := range rows[i] {
			fields[k] = true
		}
	}
	head := []string{"id"}
	for k := range fields {
		head = append(head, k)
	}
	slices.Sort(head[1:])
	t := &table{}
	for _, h := range head {
		t.Head = append(t.Head, column{Label: h})
	}
	for i, e := range envs {
		cells := []cell{{Text: e.ID}}
		for _, h := range head[1:] {
			cells = append(cells, cell{Text: csvValue(rows[i][h])})
		}
		t.Rows = append(t.Rows, row{Cells: cells})
	}
	return sendCSV(ctx, string(coll)+".csv", t)
}

// csvValue is a JSON value as a CSV cell: strings bare, null empty,
// anything else as JSON.
func csvValue(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}
