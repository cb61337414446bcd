package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newHealthCommand probes a running server's /healthz: a container health
// check for images that have no shell or curl.
func newHealthCommand(con console) *cobra.Command {
	var (
		addr    string
		path    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the server at --addr answers its health check",
		Long: `fieldsync health asks a running server for /healthz (or --path, such as
/readyz) and exits 0 on 200, 1 otherwise: a health check for container
images that have no shell or curl. A wildcard listen address (0.0.0.0, [::])
is probed on the loopback interface.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), con.getenv); err != nil {
				return err
			}
			url := "http://" + probeAddr(addr) + path
			client := &http.Client{Timeout: timeout}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("health: %s answered %s", url, resp.Status)
			}
			fmt.Fprintln(con.stdout, "ok")
			return nil
		},
	}
	envString(cmd.Flags(), &addr, "addr", "127.0.0.1:8080", "FIELDSYNC_ADDR", "the server's listen address")
	cmd.Flags().StringVar(&path, "path", "/healthz", "the endpoint to probe")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}

// probeAddr turns a listen address into one to connect to: a wildcard
// host becomes the loopback address.
func probeAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
