package console

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

type usersData struct {
	Users  []*schema.User
	Roles  []schema.Role
	Notice string // message id of what was just done
}

func (c *Console) usersPage(ctx *fiber.Ctx) error {
	return c.showUsers(ctx, fiber.StatusOK, ctx.Query("done"), "")
}

func (c *Console) showUsers(ctx *fiber.Ctx, status int, notice, problem string) error {
	users, err := c.accounts.Users(ctx.UserContext())
	if err != nil {
		return c.fail(ctx, err)
	}
	slices.SortFunc(users, func(a, b *schema.User) int { return strings.Compare(a.Username, b.Username) })
	d := &usersData{Users: users, Roles: []schema.Role{schema.RoleRep, schema.RoleManager, schema.RoleDistributor, schema.RoleAdmin}}
	if notice == "created" || notice == "updated" {
		d.Notice = "users." + notice
	}
	return c.render(ctx, status, "users", &view{Title: "users.title", Nav: "users", Data: d, Detail: problem})
}

// territoryList reads a comma- or space-separated list of territory ids.
func territoryList(s string) []string {
	out := []string{}
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// userCreate adds a user through the server's own user creation.
func (c *Console) userCreate(ctx *fiber.Ctx) error {
	in := UserInput{Username: strings.TrimSpace(ctx.FormValue("username")), Password: ctx.FormValue("password"),
		Role: schema.Role(ctx.FormValue("role")), Territories: territoryList(ctx.FormValue("territories")),
		DistributorID: strings.TrimSpace(ctx.FormValue("distributor_id"))}
	if _, err := c.accounts.CreateUser(ctx.UserContext(), viewerOf(ctx).principal(), in); err != nil {
		return c.userProblem(ctx, err)
	}
	return ctx.Redirect("/console/admin/users?done=created", fiber.StatusSeeOther)
}

// userUpdate changes a user's role and territories, deactivates or
// reactivates it, or resets its password; the server ends its logins
// where the API would.
func (c *Console) userUpdate(ctx *fiber.Ctx) error {
	var ch UserChange
	switch ctx.FormValue("action") {
	case "save":
		role := schema.Role(ctx.FormValue("role"))
		territories := territoryList(ctx.FormValue("territories"))
		ch.Role, ch.Territories = &role, &territories
	case "deactivate", "activate":
		active := ctx.FormValue("action") == "activate"
		ch.Active = &active
	case "password":
		pw := ctx.FormValue("password")
		ch.Password = &pw
	default:
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "action", "unknown action"))
	}
	if _, err := c.accounts.UpdateUser(ctx.UserContext(), viewerOf(ctx).principal(), ctx.Params("id"), ch); err != nil {
		return c.userProblem(ctx, err)
	}
	return ctx.Redirect("/console/admin/users?done=updated", fiber.StatusSeeOther)
}

// userProblem shows the users page again with what was refused.
func (c *Console) userProblem(ctx *fiber.Ctx, err error) error {
	pe := schema.AsError(err)
	if pe.Code == schema.CodeInternal {
		return c.fail(ctx, err)
	}
	msg := pe.Message
	for _, p := range pe.Problems {
		if p.Message != pe.Message {
			msg += "; " + p.Message
		}
	}
	return c.showUsers(ctx, fiber.StatusUnprocessableEntity, "", msg)
}
