package backup

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// exportPage and exportPageBytes bound a page of the feed Export reads:
// its entries and its records' bytes.
const (
	exportPage      = 1000
	exportPageBytes = 4 << 20
)

// Export writes every collection's current records, deleted ones left
// out, as dir/<collection>.jsonl (one object a line: id, version,
// updated_at, updated_by, data) or dir/<collection>.csv (id, version,
// updated_at, updated_by, then one column per field of the record, nested
// values as JSON), reading the change feed of either store up to its
// watermark. It returns how many records it wrote per collection.
func Export(ctx context.Context, store sync.RecordStore, dir, format string) (map[schema.Collection]int, error) {
	const op = "backup.Export"
	if format != FormatJSONL && format != FormatCSV {
		return nil, fmt.Errorf("%s: format must be jsonl or csv", op)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	outs := map[schema.Collection]*exportFile{}
	defer func() {
		for _, o := range outs {
			o.f.Close()
		}
	}()
	for _, c := range schema.Collections() {
		o, err := newExportFile(filepath.Join(dir, string(c)+"."+format), c, format)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		outs[c] = o
	}
	wm, err := store.Watermark(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var tokens []string
	for _, c := range schema.Collections() {
		tokens = append(tokens, string(c)+"|all")
	}
	// A record may show more than once in the feed (a re-stamp); each is
	// its current state, so the first is kept.
	seen := map[string]bool{}
	counts := map[schema.Collection]int{}
	for after := int64(0); after < wm; {
		chs, err := store.Changes(ctx, tokens, after, wm, exportPage, exportPageBytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for _, ch := range chs {
			r := ch.Record
			key := string(r.Collection) + "/" + r.ID
			if r.Deleted || seen[key] {
				continue
			}
			seen[key] = true
			o := outs[r.Collection]
			if o == nil {
				continue
			}
			if err := o.write(r); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			counts[r.Collection]++
		}
		if len(chs) == 0 {
			break
		}
		after = chs[len(chs)-1].Seq
	}
	for _, o := range outs {
		if err := o.close(); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return counts, nil
}

// exportFile is one collection's output.
type exportFile struct {
	f      *os.File
	w      *bufio.Writer
	csv    *csv.Writer
	fields []string
}

func newExportFile(name string, c schema.Collection, format string) (*exportFile, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	o := &exportFile{f: f, w: bufio.NewWriter(f)}
	if format == FormatCSV {
		o.csv = csv.NewWriter(o.w)
		o.fields = recordFields(c)
		if err := o.csv.Write(append([]string{"id", "version", "updated_at", "updated_by"}, o.fields...)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// recordFields lists the JSON names of a collection's record fields.
func recordFields(c schema.Collection) []string {
	zero, _ := schema.New(c)
	t := reflect.TypeOf(zero).Elem()
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

type exportLine struct {
	ID        string          `json:"id"`
	Version   int64           `json:"version"`
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by"`
	Data      json.RawMessage `json:"data"`
}

func (o *exportFile) write(r *sync.Record) error {
	if o.csv == nil {
		line, err := json.Marshal(exportLine{ID: r.ID, Version: r.Version, UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy, Data: r.Data})
		if err != nil {
			return err
		}
		o.w.Write(line)
		return o.w.WriteByte('\n')
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Data, &fields); err != nil {
		return err
	}
	row := []string{r.ID, strconv.FormatInt(r.Version, 10), r.UpdatedAt.UTC().Format(time.RFC3339Nano), r.UpdatedBy}
	for _, name := range o.fields {
		v := fields[name]
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			row = append(row, s)
		} else if len(v) == 0 || string(v) == "null" {
			row = append(row, "")
		} else {
			row = append(row, string(v))
		}
	}
	return o.csv.Write(row)
}

func (o *exportFile) close() error {
	if o.csv != nil {
		o.csv.Flush()
		if err := o.csv.Error(); err != nil {
			return err
		}
	}
	return errors.Join(o.w.Flush(), o.f.Sync(), o.f.Close())
}
