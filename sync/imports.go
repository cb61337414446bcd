package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/fieldsync/fieldsync/schema"
)

// importChunk is how many rows an import reads, checks and writes at a
// time: memory stays flat whatever the file's length.
const importChunk = 500

// maxImportErrors bounds the errors an import lists.
const maxImportErrors = 1000

// naturalKeys names the field by which imported rows match existing
// records, per importable collection.
var naturalKeys = map[schema.Collection]string{
	schema.Customers: "code", schema.Products: "sku", schema.Territories: "name", schema.PriceLists: "name",
}

// naturalRef is the ref by which a record is found from its natural key.
func naturalRef(c schema.Collection, key string) string { return "key:" + naturalKeys[c] + ":" + key }

// ImportOptions are the switches of an import.
type ImportOptions struct {
	// DryRun checks and counts without writing.
	DryRun bool
	// SkipInvalid writes the good rows of a file with bad ones; without
	// it a file with any bad row writes nothing.
	SkipInvalid bool
	// TempDir is where a file is kept between checking and writing;
	// default os.TempDir().
	TempDir string
}

// ImportError is what is wrong with one line of an import.
type ImportError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// ImportResult counts what an import wrote (or, for a dry run, would
// write) and lists the bad lines, at most maxImportErrors of them.
type ImportResult struct {
	Created     int           `json:"created"`
	Updated     int           `json:"updated"`
	Unchanged   int           `json:"unchanged"`
	Errors      []ImportError `json:"errors"`
	ErrorsTotal int           `json:"errors_total"`
	DryRun      bool          `json:"dry_run"`
	Written     bool          `json:"written"`
}

func (r *ImportResult) fail(line int, field, format string, args ...any) {
	r.ErrorsTotal++
	if len(r.Errors) < maxImportErrors {
		r.Errors = append(r.Errors, ImportError{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
	}
}

// Import loads records of a collection (customers, products, price_lists,
// territories) from CSV: a header row naming fields (nested ones as
// contacts.0.name, or JSON in the cell), one record per row. A row
// matches the existing record with the same natural key (code, sku or
// name) and changes the fields its file names; it creates one otherwise,
// with an id derived from the key. Every write goes through a push, so
// it is versioned, fed, audited and checked like any other. The file is
// read in chunks of importChunk rows; unless opt.SkipInvalid, it is
// checked whole first (kept in a temp file meanwhile) and written only if
// no row is bad. Importing the same file twice changes nothing the second
// time.
func (e *Engine) Import(ctx context.Context, p schema.Principal, c schema.Collection, body io.Reader, opt ImportOptions) (*ImportResult, error) {
	const op = "sync.Import"
	if p.Role != schema.RoleAdmin {
		return nil, schema.Errorf(schema.CodeForbidden, "imports are for admins")
	}
	if _, ok := naturalKeys[c]; !ok {
		return nil, schema.Errorf(schema.CodeNotFound, "%s cannot be imported; customers, products, price_lists and territories can", c)
	}
	res := &ImportResult{Errors: []ImportError{}, DryRun: opt.DryRun}
	write := !opt.DryRun && opt.SkipInvalid
	src := body
	var spill *os.File
	if !opt.DryRun && !opt.SkipInvalid {
		var err error
		if spill, err = os.CreateTemp(opt.TempDir, "fieldsync-import-*.csv"); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		defer os.Remove(spill.Name())
		defer spill.Close()
		src = io.TeeReader(body, spill)
	}
	run := func(r io.Reader, write bool) error {
		im := &importer{e: e, p: p, c: c, res: res, write: write, batch: "import-" + randomID()}
		err := im.run(ctx, r)
		slices.SortStableFunc(res.Errors, func(a, b ImportError) int { return a.Line - b.Line })
		return err
	}
	if err := run(src, write); err != nil {
		return nil, err
	}
	if spill == nil || res.ErrorsTotal > 0 {
		res.Written = write && res.Created+res.Updated > 0
		if !opt.SkipInvalid && res.ErrorsTotal > 0 {
			res.Created, res.Updated, res.Unchanged = 0, 0, 0
		}
		return res, nil
	}
	if _, err := spill.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	*res = ImportResult{Errors: []ImportError{}}
	if err := run(spill, true); err != nil {
		return nil, err
	}
	res.Written = res.Created+res.Updated > 0
	return res, nil
}

// importer reads one pass over an import file.
type importer struct {
	e      *Engine
	p      schema.Principal
	c      schema.Collection
	res    *ImportResult
	write  bool
	batch  string
	header []string
	seen   map[[8]byte]int // natural key hash → line, to catch repeats
}

// importRow is one line of the file.
type importRow struct {
	line   int
	fields []string
}

func (im *importer) run(ctx context.Context, r io.Reader) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return schema.Errorf(schema.CodeValidationFailed, "the file is empty; the first row names the fields")
	}
	if err != nil {
		return schema.Errorf(schema.CodeValidationFailed, "line 1: %s", csvProblem(err))
	}
	im.header = header
	if err := im.checkHeader(); err != nil {
		return err
	}
	im.seen = map[[8]byte]int{}
	chunk := make([]importRow, 0, importChunk)
read:
	for {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				im.res.fail(pe.Line, "", "%s", csvProblem(err))
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					continue
				}
				break read // the rest of the file cannot be read
			}
			return fmt.Errorf("sync.Import: %w", err)
		}
		line, _ := cr.FieldPos(0)
		chunk = append(chunk, importRow{line: line, fields: fields})
		if len(chunk) == importChunk {
			if err := im.chunk(ctx, chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
	}
	return im.chunk(ctx, chunk)
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return "not valid CSV: " + pe.Err.Error()
	}
	return "not valid CSV"
}

// checkHeader refuses a header that names no field of the collection or
// lacks the natural key.
func (im *importer) checkHeader() error {
	zero, _ := schema.New(im.c)
	typ := reflect.TypeOf(zero).Elem()
	hasKey := false
	for _, h := range im.header {
		if h == naturalKeys[im.c] {
			hasKey = true
		}
		if h == "id" {
			continue
		}
		if _, err := fieldType(typ, strings.Split(h, ".")); err != nil {
			return schema.FieldErrorf(schema.CodeValidationFailed, h, "column %q is not a field of %s", h, im.c)
		}
	}
	if !hasKey {
		return schema.FieldErrorf(schema.CodeValidationFailed, naturalKeys[im.c], "the file needs a %s column: rows match records by it", naturalKeys[im.c])
	}
	return nil
}

// fieldType follows a field path through a record type: struct fields by
// their JSON names, list items by index.
func fieldType(t reflect.Type, path []string) (reflect.Type, error) {
	for _, part := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			found := false
			for i := range t.NumField() {
				f := t.Field(i)
				if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == part {
					t, found = f.Type, true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("no field %s", part)
			}
		case reflect.Slice:
			if n, err := strconv.Atoi(part); err != nil || n < 0 || n > 10000 {
				return nil, fmt.Errorf("%s is not a list index", part)
			}
			t = t.Elem()
		default:
			return nil, fmt.Errorf("%s is inside a value", part)
		}
	}
	return t, nil
}

// cellValue turns a cell into the JSON value of a field of type t.
func cellValue(t reflect.Type, cell string) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return json.Marshal(cell)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(cell))
		if err != nil {
			return nil, errors.New("must be true or false")
		}
		return json.Marshal(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(strings.TrimSpace(cell), 10, 64)
		if err != nil {
			return nil, errors.New("must be a whole number (money in minor units)")
		}
		return json.Marshal(n)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
		if err != nil {
			return nil, errors.New("must be a number")
		}
		return json.Marshal(f)
	}
	if !json.Valid([]byte(cell)) {
		return nil, errors.New("must be JSON")
	}
	return json.RawMessage(cell), nil
}

// setPath puts v at path in m, making objects and lists on the way.
func setPath(m map[string]any, path []string, v any) {
	var cur any = m
	for i, part := range path {
		last := i == len(path)-1
		switch node := cur.(type) {
		case map[string]any:
			if last {
				node[part] = v
				return
			}
			if node[part] == nil {
				if _, err := strconv.Atoi(path[i+1]); err == nil {
					node[part] = &[]any{}
				} else {
					node[part] = map[string]any{}
				}
			}
			cur = node[part]
			if list, ok := cur.([]any); ok { // a list from the stored record
				p := &list
				node[part] = p
				cur = p
			}
		case *[]any:
			n, _ := strconv.Atoi(part)
			for len(*node) <= n {
				*node = append(*node, nil)
			}
			if last {
				(*node)[n] = v
				return
			}
			if (*node)[n] == nil {
				(*node)[n] = map[string]any{}
			}
			cur = (*node)[n]
		}
	}
}

// plannedRow is what one good row asks for.
type plannedRow struct {
	line int
	m    schema.Mutation
	kind string // "create", "update", "unchanged"
}

// chunk plans the rows of one chunk against the store, then, when
// writing, pushes the rows that change something.
func (im *importer) chunk(ctx context.Context, rows []importRow) error {
	if len(rows) == 0 {
		return nil
	}
	var plans []plannedRow
	err := im.e.store.View(ctx, func(tx RecordTx) error {
		for _, row := range rows {
			pr, err := im.plan(ctx, tx, row)
			if err != nil {
				return err
			}
			if pr != nil {
				plans = append(plans, *pr)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync.Import: %w", err)
	}
	var batch []json.RawMessage
	var pushed []plannedRow
	for _, pr := range plans {
		if pr.kind == "unchanged" || !im.write {
			im.count(pr.kind)
			continue
		}
		raw, err := json.Marshal(pr.m)
		if err != nil {
			return err
		}
		batch, pushed = append(batch, raw), append(pushed, pr)
	}
	if len(batch) == 0 {
		return nil
	}
	resp, err := im.e.Push(ctx, im.p, &schema.PushRequest{DeviceID: im.p.DeviceID, Mutations: batch})
	if err != nil {
		return fmt.Errorf("sync.Import: %w", err)
	}
	for i, r := range resp.Results {
		pr := pushed[i]
		switch {
		case r.Status == schema.PushRejected:
			im.res.fail(pr.line, r.Error.Field, "%s", r.Error.Message)
		case r.Status == schema.PushConflict:
			im.res.fail(pr.line, "", "the record changed while the file was imported; import again")
		case r.Version == pr.m.BaseVersion:
			im.count("unchanged")
		default:
			im.count(pr.kind)
		}
	}
	return nil
}

func (im *importer) count(kind string) {
	switch kind {
	case "create":
		im.res.Created++
	case "update":
		im.res.Updated++
	default:
		im.res.Unchanged++
	}
}

// plan works out one row's mutation, or records why the row is bad (and
// returns nil), in four steps: its key, the record it matches, its cells
// over that record's fields, and the checks of the result.
func (im *importer) plan(ctx context.Context, tx RecordTx, row importRow) (*plannedRow, error) {
	key, id, ok := im.key(row)
	if !ok {
		return nil, nil
	}
	cur, id, ok, err := im.match(ctx, tx, row.line, key, id)
	if err != nil || !ok {
		return nil, err
	}
	data := map[string]any{}
	var base int64
	if cur != nil {
		base = cur.Version
		if err := json.Unmarshal(cur.Data, &data); err != nil {
			return nil, err
		}
	}
	if !im.overlay(row, data) {
		return nil, nil
	}
	canonical, ok, err := im.check(ctx, tx, row.line, data)
	if err != nil || !ok {
		return nil, err
	}
	pr := &plannedRow{line: row.line, m: schema.Mutation{MutationID: im.batch + "-" + strconv.Itoa(row.line), Collection: im.c, ID: id,
		Op: schema.MutationUpsert, BaseVersion: base, Data: canonical}, kind: "create"}
	if cur != nil {
		pr.kind = "update"
		if bytes.Equal(canonical, cur.Data) {
			pr.kind = "unchanged"
		}
	}
	return pr, nil
}

// key reads a row's natural key and id (if the file has an id column),
// and refuses a key the file had on an earlier line.
func (im *importer) key(row importRow) (key, id string, ok bool) {
	keyField := naturalKeys[im.c]
	for i, h := range im.header {
		switch h {
		case keyField:
			key = strings.TrimSpace(row.fields[i])
		case "id":
			id = strings.TrimSpace(row.fields[i])
		}
	}
	if key == "" {
		im.res.fail(row.line, keyField, "%s is required", keyField)
		return "", "", false
	}
	sum := sha256.Sum256([]byte(key))
	var short [8]byte
	copy(short[:], sum[:])
	if first, seen := im.seen[short]; seen {
		im.res.fail(row.line, keyField, "%s %q is also on line %d", keyField, key, first)
		return "", "", false
	}
	im.seen[short] = row.line
	return key, id, true
}

// match finds the record with a row's natural key (nil when there is
// none) and the id the row writes: the record's, the file's, or one
// derived from the key.
func (im *importer) match(ctx context.Context, tx RecordTx, line int, key, id string) (*Record, string, bool, error) {
	keyField := naturalKeys[im.c]
	page, err := tx.RecordsByRef(ctx, im.c, naturalRef(im.c, key), "", 2)
	if err != nil {
		return nil, "", false, err
	}
	var cur *Record
	for _, r := range page {
		if !r.Deleted {
			cur = r
		}
	}
	switch {
	case cur != nil && id != "" && id != cur.ID:
		im.res.fail(line, "id", "%s %q belongs to record %s, not %s", keyField, key, cur.ID, id)
		return nil, "", false, nil
	case cur != nil:
		return cur, cur.ID, true, nil
	case id == "":
		sum := sha256.Sum256([]byte(key))
		id = string(im.c[:4]) + "-" + hex.EncodeToString(sum[:12])
	case !schema.CheckID(id):
		im.res.fail(line, "id", "id must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
		return nil, "", false, nil
	}
	r, err := tx.Record(ctx, im.c, id)
	switch {
	case err == nil && !r.Deleted:
		im.res.fail(line, "id", "id %s is taken by a record with another %s", id, keyField)
		return nil, "", false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, "", false, err
	}
	return nil, id, true, nil
}

// overlay sets the row's non-empty cells over data, and records the cells
// that are not values of their field.
func (im *importer) overlay(row importRow, data map[string]any) bool {
	zero, _ := schema.New(im.c)
	typ := reflect.TypeOf(zero).Elem()
	ok := true
	for i, h := range im.header {
		if h == "id" || row.fields[i] == "" {
			continue
		}
		path := strings.Split(h, ".")
		t, _ := fieldType(typ, path)
		v, err := cellValue(t, row.fields[i])
		if err != nil {
			im.res.fail(row.line, h, "%s %s", h, err)
			ok = false
			continue
		}
		setPath(data, path, v)
	}
	return ok
}

// check validates the record a row makes and the records it points at,
// and returns its canonical JSON.
func (im *importer) check(ctx context.Context, tx RecordTx, line int, data map[string]any) (json.RawMessage, bool, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, false, err
	}
	rec, err := schema.Decode(im.c, raw)
	if err != nil {
		se := schema.AsError(err)
		if se == nil {
			return nil, false, err
		}
		if len(se.Problems) == 0 {
			im.res.fail(line, se.Field, "%s", se.Message)
		}
		for _, pr := range se.Problems {
			im.res.fail(line, pr.Field, "%s", pr.Message)
		}
		return nil, false, nil
	}
	if !im.referencesExist(ctx, tx, line, rec) {
		return nil, false, nil
	}
	canonical, err := json.Marshal(rec)
	return canonical, err == nil, err
}

// referencesExist checks that the records a row points at exist, so that
// a file is refused whole before anything is written.
func (im *importer) referencesExist(ctx context.Context, tx RecordTx, line int, rec schema.Record) bool {
	type ref struct {
		c         schema.Collection
		id, field string
	}
	var refs []ref
	switch r := rec.(type) {
	case *schema.Customer:
		refs = append(refs, ref{schema.Territories, r.TerritoryID, "territory_id"})
	case *schema.PriceList:
		for i, id := range r.CustomerIDs {
			refs = append(refs, ref{schema.Customers, id, fmt.Sprintf("customer_ids[%d]", i)})
		}
		for i, it := range r.Items {
			refs = append(refs, ref{schema.Products, it.ProductID, fmt.Sprintf("items[%d].product_id", i)})
		}
	}
	ok := true
	for _, r := range refs {
		got, err := tx.Record(ctx, r.c, r.id)
		if err != nil || got.Deleted {
			im.res.fail(line, r.field, "%s refers to no %s", r.field, singular(r.c))
			ok = false
		}
	}
	return ok
}
