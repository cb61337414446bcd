package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

//go:embed templates assets locales
var files embed.FS

// DefaultTiles is the map tile URL used when none is configured:
// OpenStreetMap's standard tiles.
const DefaultTiles = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

// sessionTTL is the longest a console session lives, however active.
const sessionTTL = 12 * time.Hour

// Accounts is what the console needs of the server's users and logins:
// the same sign-in (failure limits, login records) and the same user
// changes (ending logins on deactivation or a new password) as the API.
type Accounts interface {
	// SignIn checks a username and password from a client address and
	// opens a login on a device; a *schema.Error when refused.
	SignIn(ctx context.Context, addr, username, password, deviceID string) (*schema.User, *sync.Login, error)
	// Session returns the user of a login that is good and whose user is
	// active; a *schema.Error (unauthorized) otherwise.
	Session(ctx context.Context, loginID string) (*schema.User, *sync.Login, error)
	// SignOut revokes a login.
	SignOut(ctx context.Context, loginID string) error
	// Users lists every user.
	Users(ctx context.Context) ([]*schema.User, error)
	// CreateUser adds a user on behalf of an admin.
	CreateUser(ctx context.Context, by schema.Principal, in UserInput) (*schema.User, error)
	// UpdateUser changes what in names of a user on behalf of an admin.
	UpdateUser(ctx context.Context, by schema.Principal, id string, in UserChange) (*schema.User, error)
}

// UserInput is a new user.
type UserInput struct {
	Username, Password string
	Role               schema.Role
	Territories        []string
	DistributorID      string
}

// UserChange changes the fields that are not nil.
type UserChange struct {
	Role        *schema.Role
	Territories *[]string
	Password    *string
	Active      *bool
}

// Records is what the console reads of the record store beyond the
// engine's reports: facts by kind, territory and time, and records.
type Records interface {
	Facts(ctx context.Context, kind string, territories []string, from, to time.Time) ([]sync.Fact, error)
	View(ctx context.Context, fn func(tx sync.RecordTx) error) error
}

// PhotoOpener opens stored photo bytes by their hash.
type PhotoOpener interface {
	Open(ctx context.Context, sha256 string) (io.ReadCloser, media.BlobInfo, error)
}

// Config is what a Console is built from.
type Config struct {
	// Accounts signs users in and changes them. Required.
	Accounts Accounts
	// Engine runs the reports and writes through push. Required.
	Engine *sync.Engine
	// Reports reads coverage, unvisited outlets and devices. Required.
	Reports *report.Reports
	// Records reads facts and records. Required.
	Records Records
	// Photos opens photo bytes for thumbnails; without it photos show as
	// file icons.
	Photos PhotoOpener
	// Secret keys session cookies and form tokens; at least 32 bytes.
	Secret []byte
	// Tiles is the map tile URL template ({z}/{x}/{y}); DefaultTiles when
	// empty, no tiles at all when "none".
	Tiles string
	// Zone is the time zone of dates and times shown; default UTC.
	Zone *time.Location
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Console serves the console's pages and assets.
type Console struct {
	accounts  Accounts
	engine    *sync.Engine
	reports   *report.Reports
	records   Records
	photos    PhotoOpener
	sign      signer
	tiles     string
	tileHost  string
	zone      *time.Location
	log       *slog.Logger
	now       func() time.Time
	catalogs  *catalogs
	pages     map[string]*template.Template
	svg       *template.Template
	assets    fs.FS
	csp       string
	thumbnail *thumbnailer
}

// New builds a Console.
func New(cfg Config) (*Console, error) {
	if cfg.Accounts == nil || cfg.Engine == nil || cfg.Reports == nil || cfg.Records == nil {
		return nil, errors.New("console.New: accounts, engine, reports and records are required")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("console.New: secret shorter than 32 bytes")
	}
	if cfg.Zone == nil {
		cfg.Zone = time.UTC
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{
		accounts: cfg.Accounts, engine: cfg.Engine, reports: cfg.Reports, records: cfg.Records, photos: cfg.Photos,
		sign: newSigner(cfg.Secret), zone: cfg.Zone, log: cfg.Logger, now: cfg.Now,
		thumbnail: newThumbnailer(),
	}
	switch cfg.Tiles {
	case "":
		c.tiles = DefaultTiles
	case "none":
	default:
		c.tiles = cfg.Tiles
	}
	if c.tiles != "" {
		origin, err := tileOrigin(c.tiles)
		if err != nil {
			return nil, err
		}
		c.tileHost = origin
	}
	var err error
	if c.catalogs, err = loadCatalogs(files); err != nil {
		return nil, err
	}
	if c.pages, err = parsePages(files); err != nil {
		return nil, err
	}
	if c.svg, err = template.ParseFS(files, "templates/chart.svg"); err != nil {
		return nil, err
	}
	if c.assets, err = fs.Sub(files, "assets"); err != nil {
		return nil, err
	}
	img := "'self' data:"
	if c.tileHost != "" {
		img += " " + c.tileHost
	}
	c.csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src " + img +
		"; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	return c, nil
}

// Mount adds the console's routes under /console on r, and the redirect
// from /.
func (c *Console) Mount(r fiber.Router) {
	r.Get("/", func(ctx *fiber.Ctx) error { return ctx.Redirect("/console/", fiber.StatusFound) })
	g := r.Group("/console", c.headers)
	g.Use("/assets", filesystem.New(filesystem.Config{Root: httpFS(c.assets), MaxAge: 3600}))
	g.Get("/login", c.loginPage)
	g.Post("/login", c.loginSubmit)
	g.Get("/lang/:lang", c.switchLanguage)

	in := g.Group("", c.session)
	in.Post("/logout", c.logout)
	staff := in.Group("", c.staffOnly)
	staff.Get("/", func(ctx *fiber.Ctx) error { return ctx.Redirect("/console/coverage", fiber.StatusFound) })
	staff.Get("/coverage", c.coveragePage)
	staff.Get("/coverage.csv", c.coverageCSV)
	staff.Get("/coverage/chart.svg", c.coverageChartSVG)
	staff.Get("/reps/:id/day", c.dayPage)
	staff.Get("/unvisited", c.unvisitedPage)
	staff.Get("/devices", c.devicesPage)
	staff.Get("/orders", c.ordersPage)
	staff.Post("/orders/:id", c.orderAction)
	staff.Get("/photos", c.photosPage)
	staff.Get("/photos/:sha256/thumb", c.photoThumb)
	staff.Get("/targets", c.targetsPage)
	staff.Post("/targets/split", c.targetsSplit)
	admin := staff.Group("/admin", c.adminOnly)
	admin.Get("/users", c.usersPage)
	admin.Post("/users", c.userCreate)
	admin.Post("/users/:id", c.userUpdate)
	admin.Get("/territories", c.territoriesPage)
	admin.Post("/territories", c.territorySave)
	admin.Get("/export/:collection", c.exportCSV)
	admin.Get("/import", c.importPage)
	admin.Post("/import", c.importSubmit)
}

// headers sets the security headers of every console answer.
func (c *Console) headers(ctx *fiber.Ctx) error {
	ctx.Set("Content-Security-Policy", c.csp)
	ctx.Set("X-Content-Type-Options", "nosniff")
	ctx.Set("Referrer-Policy", "same-origin")
	ctx.Set("X-Frame-Options", "DENY")
	return ctx.Next()
}

// viewer is the signed-in user of a console request.
type viewer struct {
	User    *schema.User
	LoginID string
}

const viewerKey = "fieldsync.console.viewer"

// session lets a request through only with a sealed cookie naming a good
// login of an active user, younger than sessionTTL; a POST must also carry
// the session's form token.
func (c *Console) session(ctx *fiber.Ctx) error {
	loginID, ok := c.sign.open("session", ctx.Cookies(sessionCookie))
	if !ok {
		return c.toLogin(ctx)
	}
	u, l, err := c.accounts.Session(ctx.UserContext(), loginID)
	if err != nil {
		var se *schema.Error
		if errors.As(err, &se) && se.Code == schema.CodeUnauthorized {
			return c.toLogin(ctx)
		}
		return err
	}
	if c.now().Sub(l.CreatedAt) > sessionTTL {
		_ = c.accounts.SignOut(ctx.UserContext(), loginID)
		return c.toLogin(ctx)
	}
	if ctx.Method() == fiber.MethodPost && !c.sign.checkFormToken(loginID, ctx.FormValue("csrf")) {
		return c.refuseForm(ctx)
	}
	ctx.Locals(viewerKey, &viewer{User: u, LoginID: loginID})
	return ctx.Next()
}

func (c *Console) toLogin(ctx *fiber.Ctx) error {
	c.setCookie(ctx, sessionCookie, "", -1)
	if ctx.Method() != fiber.MethodGet {
		return c.refuseForm(ctx)
	}
	return ctx.Redirect("/console/login?next="+url.QueryEscape(ctx.OriginalURL()), fiber.StatusSeeOther)
}

// refuseForm answers a POST without a good session or form token.
func (c *Console) refuseForm(ctx *fiber.Ctx) error {
	return c.renderError(ctx, fiber.StatusForbidden, "error.form")
}

func viewerOf(ctx *fiber.Ctx) *viewer {
	v, _ := ctx.Locals(viewerKey).(*viewer)
	if v == nil {
		panic("console: viewer asked for outside session")
	}
	return v
}

// principal is the viewer as the engine sees a caller.
func (v *viewer) principal() schema.Principal {
	return v.User.Principal("console", v.LoginID)
}

// staffOnly refuses reps and distributors with a page that says whom the
// console is for.
func (c *Console) staffOnly(ctx *fiber.Ctx) error {
	switch viewerOf(ctx).User.Role {
	case schema.RoleManager, schema.RoleAdmin:
		return ctx.Next()
	}
	return c.renderError(ctx, fiber.StatusForbidden, "error.staff_only")
}

func (c *Console) adminOnly(ctx *fiber.Ctx) error {
	if viewerOf(ctx).User.Role == schema.RoleAdmin {
		return ctx.Next()
	}
	return c.renderError(ctx, fiber.StatusForbidden, "error.admin_only")
}

// switchLanguage remembers the chosen language and goes back.
func (c *Console) switchLanguage(ctx *fiber.Ctx) error {
	lang := ctx.Params("lang")
	if lang != "en" && lang != "zh-Hans" {
		return c.renderError(ctx, fiber.StatusNotFound, "error.not_found")
	}
	ctx.Cookie(&fiber.Cookie{Name: langCookie, Value: lang, Path: "/console", MaxAge: 365 * 24 * 3600,
		HTTPOnly: true, Secure: ctx.Protocol() == "https", SameSite: fiber.CookieSameSiteStrictMode})
	back := "/console/"
	if ref, err := url.Parse(ctx.Get(fiber.HeaderReferer)); err == nil && strings.HasPrefix(ref.Path, "/console/") && ref.Host == ctx.Hostname() {
		back = ref.RequestURI()
	}
	return ctx.Redirect(back, fiber.StatusSeeOther)
}

// localeOf is the request's language.
func (c *Console) localeOf(ctx *fiber.Ctx) *locale {
	return c.catalogs.locale(ctx.Cookies(langCookie), ctx.Get(fiber.HeaderAcceptLanguage), c.zone)
}

// tileOrigin is the origin the Content-Security-Policy must allow images
// from for a tile URL template; a {s} subdomain becomes a wildcard.
func tileOrigin(tiles string) (string, error) {
	u, err := url.Parse(strings.NewReplacer("{s}", "a", "{z}", "0", "{x}", "0", "{y}", "0", "{r}", "").Replace(tiles))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("console.New: map tile URL %q must be an http(s) URL with {z}, {x} and {y}", tiles)
	}
	host := u.Host
	if strings.Contains(tiles, "{s}.") {
		_, rest, _ := strings.Cut(host, ".")
		host = "*." + rest
	}
	return u.Scheme + "://" + host, nil
}
