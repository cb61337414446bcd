package server

import (
	"context"
	"errors"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/console"
	"github.com/fieldsync/fieldsync/sync"
)

// consoleAccounts gives the console the server's own sign-in, sessions
// and user changes, so a console login is a login like any other.
type consoleAccounts struct{ s *Server }

func (a consoleAccounts) SignIn(ctx context.Context, addr, username, password, deviceID string) (*schema.User, *sync.Login, error) {
	return a.s.signIn(ctx, addr, username, password, deviceID)
}

// Session returns the login and its user when the login is good and the
// user active: what authenticate checks of a bearer token.
func (a consoleAccounts) Session(ctx context.Context, loginID string) (*schema.User, *sync.Login, error) {
	l, u, err := a.s.session(ctx, loginID)
	return u, l, err
}

func (a consoleAccounts) SignOut(ctx context.Context, loginID string) error {
	return a.s.store.RevokeLogin(ctx, loginID, a.s.now().UTC())
}

func (a consoleAccounts) Users(ctx context.Context) ([]*schema.User, error) {
	return a.s.store.Users(ctx)
}

func (a consoleAccounts) CreateUser(ctx context.Context, by schema.Principal, in console.UserInput) (*schema.User, error) {
	return a.s.addUser(ctx, by, createUserRequest{Username: in.Username, Password: in.Password, Role: in.Role,
		Territories: in.Territories, DistributorID: in.DistributorID})
}

func (a consoleAccounts) UpdateUser(ctx context.Context, by schema.Principal, id string, in console.UserChange) (*schema.User, error) {
	u, err := a.s.store.User(ctx, id)
	if errors.Is(err, sync.ErrNotFound) {
		return nil, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	if err != nil {
		return nil, err
	}
	return a.s.changeUser(ctx, by, u, updateUserRequest{Role: in.Role, Territories: in.Territories, Password: in.Password, Active: in.Active})
}

// newConsole builds the console over the server's accounts, engine, store
// and photos.
func (s *Server) newConsole(tiles string, zone *time.Location) (*console.Console, error) {
	return console.New(console.Config{Accounts: consoleAccounts{s}, Engine: s.engine, Reports: s.reports, Records: s.store, Photos: s.photos,
		Secret: s.cfg.Secret, Tiles: tiles, Zone: zone, Logger: s.log, Now: s.now})
}
