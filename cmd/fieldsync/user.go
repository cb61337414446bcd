package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
)

// newUserCommand manages users straight in the record store, so that a
// first admin can be made, and a lost password reset, from the shell.
func newUserCommand(con console) *cobra.Command {
	var cfg config
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create users, reset passwords and list users in the record store",
		Long: `fieldsync user creates users, resets passwords and lists users, working on
the record store directly (the same --data-dir or --mongo-uri as the server;
a running server may keep running). Passwords are read from the first line
of standard input, so that they stay out of the shell history.`,
	}
	addStoreFlags(cmd.PersistentFlags(), &cfg)
	addPasswordFlags(cmd.PersistentFlags(), &cfg)
	cmd.AddCommand(newUserCreateCommand(con, &cfg), newUserSetPasswordCommand(con, &cfg), newUserListCommand(con, &cfg))
	return cmd
}

func newUserCreateCommand(con console, cfg *config) *cobra.Command {
	var (
		role          string
		territories   []string
		distributorID string
	)
	cmd := &cobra.Command{
		Use:   "create USERNAME",
		Short: "Create a user; its password is read from standard input",
		Example: `  fieldsync user create admin --role admin
  echo 'rita-password' | fieldsync user create rita --role rep --territories t-north`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, con, cfg, func(ctx context.Context, store recordStore) error {
				password, err := readPassword(con, args[0])
				if err != nil {
					return err
				}
				u, err := server.NewUser(args[0], password, schema.Role(role), territories, distributorID, time.Now(), cfg.passwordCost)
				if err != nil {
					return err
				}
				err = store.CreateUser(ctx, u)
				if errors.Is(err, sync.ErrExists) {
					return fmt.Errorf("user %q exists; to change its password run: fieldsync user set-password %s", u.Username, u.Username)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(con.stdout, "created %s %q (id %s)\n", u.Role, u.Username, u.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", string(schema.RoleRep), "rep, manager, distributor or admin")
	cmd.Flags().StringSliceVar(&territories, "territories", nil, "territory ids the user works in or oversees, comma-separated")
	cmd.Flags().StringVar(&distributorID, "distributor-id", "", "the distributor a distributor user acts for")
	return cmd
}

func newUserSetPasswordCommand(con console, cfg *config) *cobra.Command {
	return &cobra.Command{
		Use:   "set-password USERNAME",
		Short: "Set a user's password (read from standard input); ends its logins and lifts a sign-in lock",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, con, cfg, func(ctx context.Context, store recordStore) error {
				u, err := store.UserByName(ctx, args[0])
				if errors.Is(err, sync.ErrNotFound) {
					return fmt.Errorf("no user %q; to create one run: fieldsync user create %s --role ROLE", args[0], args[0])
				}
				if err != nil {
					return err
				}
				password, err := readPassword(con, u.Username)
				if err != nil {
					return err
				}
				if err := schema.CheckUser(u, password); err != nil {
					return err
				}
				if u.PasswordHash, err = server.HashPassword(password, cfg.passwordCost); err != nil {
					return err
				}
				now := time.Now().UTC()
				u.UpdatedAt = now
				if err := store.UpdateUser(ctx, u); err != nil {
					return err
				}
				if err := store.RevokeUserLogins(ctx, u.ID, now); err != nil {
					return err
				}
				if err := store.ClearLoginFailures(ctx, u.Username); err != nil {
					return err
				}
				fmt.Fprintf(con.stdout, "password of %q set; its earlier logins are ended\n", u.Username)
				return nil
			})
		},
	}
}

func newUserListCommand(con console, cfg *config) *cobra.Command {
	var (
		f      sync.UserFilter
		role   string
		active string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users, optionally by role, territory or active flag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.Role = schema.Role(role)
			if role != "" && !f.Role.Valid() {
				return fmt.Errorf("--role must be one of rep, manager, distributor, admin")
			}
			switch active {
			case "":
			case "true", "false":
				a := active == "true"
				f.Active = &a
			default:
				return fmt.Errorf("--active must be true or false")
			}
			return withStore(cmd, con, cfg, func(ctx context.Context, store recordStore) error {
				users, err := store.ListUsers(ctx, f)
				if err != nil {
					return err
				}
				if len(users) == 0 {
					fmt.Fprintln(con.stdout, "no users")
					return nil
				}
				tw := tabwriter.NewWriter(con.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tROLE\tACTIVE\tTERRITORIES\tID")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", u.Username, u.Role, u.Active, strings.Join(u.Territories, ","), u.ID)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "only users of this role")
	cmd.Flags().StringVar(&f.Territory, "territory", "", "only users with this territory")
	cmd.Flags().StringVar(&active, "active", "", "only active (true) or deactivated (false) users")
	return cmd
}

// withStore fills cfg's store flags from the environment and opens the
// record store they name for fn: the way into the store for any
// subcommand that works on it directly.
func withStore(cmd *cobra.Command, con console, cfg *config, fn func(context.Context, recordStore) error) error {
	if err := applyEnv(cmd.Flags(), con.getenv); err != nil {
		return err
	}
	ctx := cmd.Context()
	store, err := openStore(ctx, *cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(ctx, store)
}

// readPassword reads a password from the first line of standard input,
// asking for it on standard error when that is a terminal.
func readPassword(con console, username string) (string, error) {
	if isTerminal(con.stdin) {
		fmt.Fprintf(con.stderr, "password for %s: ", username)
	}
	line, err := bufio.NewReader(con.stdin).ReadString('\n')
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		return "", errors.New("the password is empty")
	}
	return password, nil
}
