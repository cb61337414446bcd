package console

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// consoleDevice is the device id of console logins.
const consoleDevice = "console"

type loginData struct {
	Next     string
	Username string
	Problem  string // message id
}

// preSession returns the pre-session id of the browser, setting a new
// sealed cookie when there is none, so that the sign-in form's token is
// bound to this browser.
func (c *Console) preSession(ctx *fiber.Ctx) string {
	if id, ok := c.sign.open("pre", ctx.Cookies(preCookie)); ok {
		return id
	}
	id := randomID()
	c.setCookie(ctx, preCookie, c.sign.seal("pre", id), 0)
	return id
}

func (c *Console) setCookie(ctx *fiber.Ctx, name, value string, maxAge int) {
	ctx.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/console", MaxAge: maxAge,
		HTTPOnly: true, Secure: ctx.Protocol() == "https", SameSite: fiber.CookieSameSiteStrictMode})
}

// safeNext keeps a redirect target only when it is a console path.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/console/") || strings.HasPrefix(next, "//") {
		return "/console/"
	}
	return u.RequestURI()
}

func (c *Console) loginPage(ctx *fiber.Ctx) error {
	return c.showLogin(ctx, fiber.StatusOK, loginData{Next: safeNext(ctx.Query("next"))})
}

func (c *Console) showLogin(ctx *fiber.Ctx, status int, d loginData) error {
	pre := c.preSession(ctx)
	return c.render(ctx, status, "login", &view{Title: "login.title", CSRF: c.sign.formToken(pre), Data: d})
}

// loginSubmit signs in through the server's own sign-in and starts a
// session on the login it opens.
func (c *Console) loginSubmit(ctx *fiber.Ctx) error {
	pre, ok := c.sign.open("pre", ctx.Cookies(preCookie))
	if !ok || !c.sign.checkFormToken(pre, ctx.FormValue("csrf")) {
		return c.refuseForm(ctx)
	}
	d := loginData{Next: safeNext(ctx.FormValue("next")), Username: ctx.FormValue("username")}
	password := ctx.FormValue("password")
	if d.Username == "" || password == "" || len(d.Username) > schema.MaxUsernameLength || len(password) > 1024 {
		d.Problem = "login.bad"
		return c.showLogin(ctx, fiber.StatusUnauthorized, d)
	}
	u, l, err := c.accounts.SignIn(ctx.UserContext(), ctx.IP(), d.Username, password, consoleDevice)
	var se *schema.Error
	switch {
	case errors.As(err, &se) && se.Code == schema.CodeRateLimited:
		d.Problem = "login.locked"
		return c.showLogin(ctx, fiber.StatusTooManyRequests, d)
	case errors.As(err, &se) && se.Code == schema.CodeUnauthorized:
		d.Problem = "login.bad"
		return c.showLogin(ctx, fiber.StatusUnauthorized, d)
	case err != nil:
		return c.fail(ctx, err)
	}
	c.log.Info("console sign-in", "user_id", u.ID, "login_id", l.ID)
	c.setCookie(ctx, sessionCookie, c.sign.seal("session", l.ID), int(sessionTTL.Seconds()))
	c.setCookie(ctx, preCookie, "", -1)
	return ctx.Redirect(d.Next, fiber.StatusSeeOther)
}

// logout ends the session's login, as an API logout would.
func (c *Console) logout(ctx *fiber.Ctx) error {
	if err := c.accounts.SignOut(ctx.UserContext(), viewerOf(ctx).LoginID); err != nil {
		return c.fail(ctx, err)
	}
	c.setCookie(ctx, sessionCookie, "", -1)
	return ctx.Redirect("/console/login", fiber.StatusSeeOther)
}
