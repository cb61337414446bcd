package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// parsePages parses each page template together with the layout.
func parsePages(fsys fs.FS) (map[string]*template.Template, error) {
	names, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" || strings.HasPrefix(base, "part_") {
			continue
		}
		t, err := template.New(base).Funcs(template.FuncMap{"join": func(s []string) string { return strings.Join(s, ", ") }}).ParseFS(fsys, "templates/layout.html", "templates/part_*.html", name)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", base, err)
		}
		pages[base[:len(base)-len(".html")]] = t
	}
	return pages, nil
}

// view is what every page template gets: the locale's messages and
// formats, the viewer, the form token and the page's own data.
type view struct {
	*locale
	Title  string // message id of the page title
	Nav    string // which navigation entry is current
	Viewer *schema.User
	CSRF   string
	Tiles  string
	Map    bool // the page loads Leaflet
	Data   any
	// Detail is text shown as it is, such as a refused input's message.
	Detail string
}

// IsAdmin reports whether the viewer is an admin.
func (v *view) IsAdmin() bool { return v.Viewer != nil && v.Viewer.Role == schema.RoleAdmin }

// render writes a page with status.
func (c *Console) render(ctx *fiber.Ctx, status int, page string, v *view) error {
	t := c.pages[page]
	if t == nil {
		return fmt.Errorf("console: no page %q", page)
	}
	if v.locale == nil {
		v.locale = c.localeOf(ctx)
	}
	if vw, ok := ctx.Locals(viewerKey).(*viewer); ok && vw != nil {
		v.Viewer = vw.User
		v.CSRF = c.sign.formToken(vw.LoginID)
	}
	v.Tiles = c.tiles
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("console: render %s: %w", page, err)
	}
	ctx.Set(fiber.HeaderCacheControl, "no-store")
	ctx.Type("html", "utf-8")
	return ctx.Status(status).Send(buf.Bytes())
}

// renderError writes the error page with a message id.
func (c *Console) renderError(ctx *fiber.Ctx, status int, msg string) error {
	return c.render(ctx, status, "error", &view{Title: "error.title", Data: msg})
}

// fail shows err: a *schema.Error's message with its status, anything
// else as an internal error (logged, not shown).
func (c *Console) fail(ctx *fiber.Ctx, err error) error {
	pe := schema.AsError(err)
	status := map[string]int{
		schema.CodeValidationFailed: http.StatusUnprocessableEntity, schema.CodeForbidden: http.StatusForbidden,
		schema.CodeNotFound: http.StatusNotFound, schema.CodeBadRequest: http.StatusBadRequest,
		schema.CodeConflict: http.StatusConflict, schema.CodeRateLimited: http.StatusTooManyRequests,
		schema.CodeUnauthorized: http.StatusUnauthorized,
	}[pe.Code]
	if status == 0 {
		c.log.Error("console request failed", "path", ctx.Path(), "err", err)
		return c.renderError(ctx, http.StatusInternalServerError, "error.internal")
	}
	return c.render(ctx, status, "error", &view{Title: "error.title", Data: "error.input", Detail: pe.Message})
}

// httpFS serves an fs.FS through Fiber's filesystem middleware.
func httpFS(fsys fs.FS) http.FileSystem { return http.FS(fsys) }
