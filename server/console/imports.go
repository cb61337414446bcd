package console

import (
	"bytes"
	"encoding/base64"
	"io"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// importData is the import page: the form, and after a preview or an
// import what the engine answered.
type importData struct {
	Collections []schema.Collection
	Collection  schema.Collection
	// File is the previewed file, base64, carried by the import form so
	// that what is written is exactly what was previewed.
	File        string
	FileName    string
	SkipInvalid bool
	Result      *sync.ImportResult
}

func (c *Console) importPage(ctx *fiber.Ctx) error {
	d := &importData{Collections: dataCollections, Collection: schema.Customers}
	return c.render(ctx, fiber.StatusOK, "import", &view{Title: "import.title", Nav: "import", Data: d})
}

// importSubmit checks a CSV file through the engine's import as a dry run
// (action "preview", the file uploaded) or imports it (action "import",
// the file as previewed). Files are bounded by the server's body limit,
// which the import step's base64 copy must fit too; larger ones go
// through POST /v1/admin/import, which streams.
func (c *Console) importSubmit(ctx *fiber.Ctx) error {
	d := &importData{Collections: dataCollections, Collection: schema.Collection(ctx.FormValue("collection")),
		SkipInvalid: ctx.FormValue("skip_invalid") == "true"}
	if !slices.Contains(dataCollections, d.Collection) {
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "collection", "import one of territories, customers, products or price_lists"))
	}
	var file []byte
	action := ctx.FormValue("action")
	switch action {
	case "preview":
		fh, err := ctx.FormFile("file")
		if err != nil {
			return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "file", "choose a CSV file"))
		}
		f, err := fh.Open()
		if err != nil {
			return c.fail(ctx, err)
		}
		defer f.Close()
		if file, err = io.ReadAll(f); err != nil {
			return c.fail(ctx, err)
		}
		d.FileName = fh.Filename
	case "import":
		var err error
		if file, err = base64.StdEncoding.DecodeString(ctx.FormValue("file")); err != nil || len(file) == 0 {
			return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "file", "preview the file before importing it"))
		}
		d.FileName = ctx.FormValue("file_name")
	default:
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "action", "unknown action"))
	}
	res, err := c.engine.Import(ctx.UserContext(), viewerOf(ctx).principal(), d.Collection, bytes.NewReader(file),
		sync.ImportOptions{DryRun: action == "preview", SkipInvalid: d.SkipInvalid})
	if err != nil {
		return c.fail(ctx, err)
	}
	d.Result = res
	if action == "preview" {
		d.File = base64.StdEncoding.EncodeToString(file)
	}
	return c.render(ctx, fiber.StatusOK, "import", &view{Title: "import.title", Nav: "import", Data: d})
}
