package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fieldsync/fieldsync/sync"
)

// sizer is a record store that can say how many bytes each of its tables
// and indexes takes.
type sizer interface {
	Sizes(ctx context.Context) ([]sync.TableSize, error)
}

// newStoreSizeCommand reports where the record store's bytes go.
func newStoreSizeCommand(con console) *cobra.Command {
	var cfg config
	cmd := &cobra.Command{
		Use:   "store-size",
		Short: "Show the bytes each table and index of the record store takes, per record",
		Long: `fieldsync store-size shows, for each table (collection) and index of the
record store (the same --data-dir or --mongo-uri as the server), its rows, its
bytes, its bytes per record (divided by the rows of the records table, so that
the column adds up to what one record costs) and its share of the whole,
largest first. On the embedded store the bytes are whole pages as SQLite's
dbstat counts them, and free pages are shown as their own line; on MongoDB
they are what collStats reports. It reads every page: on a large store it
takes as long as reading the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, con, &cfg, func(ctx context.Context, store recordStore) error {
				s, ok := store.(sizer)
				if !ok {
					return fmt.Errorf("the %T record store cannot report its sizes", store)
				}
				sizes, err := s.Sizes(ctx)
				if err != nil {
					return err
				}
				writeSizes(con, sizes)
				return nil
			})
		},
	}
	addStoreFlags(cmd.Flags(), &cfg)
	return cmd
}

// writeSizes prints sizes as a table, largest first, with a total line.
func writeSizes(con console, sizes []sync.TableSize) {
	var records, total int64
	for _, s := range sizes {
		if s.Name == "records" && s.Kind == sync.SizeTable {
			records = s.Rows
		}
		total += s.Bytes
	}
	slices.SortStableFunc(sizes, func(a, b sync.TableSize) int { return cmp.Compare(b.Bytes, a.Bytes) })
	perRecord := func(b int64) string {
		if records == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(b)/float64(records))
	}
	share := func(b int64) string {
		if total == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(b)/float64(total))
	}
	w := tabwriter.NewWriter(con.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tROWS\tBYTES\tBYTES/RECORD\tSHARE\t")
	for _, s := range sizes {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t\n", s.Name, s.Kind, s.Rows, s.Bytes, perRecord(s.Bytes), share(s.Bytes))
	}
	fmt.Fprintf(w, "total\t\t%d\t%d\t%s\t%s\t\n", records, total, perRecord(total), share(total))
	w.Flush()
}
