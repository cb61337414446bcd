package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// photoRef is the ref by which photo records are found from their bytes.
func photoRef(sha256 string) string { return "sha256:" + sha256 }

// photoCreator is the ref that names the user who created a photo record,
// whose proof of holding the bytes the record counts on.
func photoCreator(userID string) string { return "by:" + userID }

// creatorOf returns the user who created a stored photo record.
func creatorOf(r *Record) string {
	for _, ref := range r.Refs {
		if id, ok := strings.CutPrefix(ref, "by:"); ok {
			return id
		}
	}
	return ""
}

// PhotoArrived records that user by proved it holds a photo's bytes (it
// uploaded them, and they are stored) and brings that user's photo records
// that name the hash up to date: `uploaded` turns true and the EXIF fields
// are filled, each as a new version that reaches pullers. The photo store
// is read before the store's write lock is taken.
func (e *Engine) PhotoArrived(ctx context.Context, sha256, by string) error {
	if e.photos == nil {
		return errors.New("sync.PhotoArrived: no photo store")
	}
	facts, err := e.photos.PhotoFacts(ctx, sha256)
	if err != nil {
		return fmt.Errorf("sync.PhotoArrived: %w", err)
	}
	if !facts.Stored {
		return fmt.Errorf("sync.PhotoArrived: %s is not stored", sha256)
	}
	proof := &PhotoProof{UserID: by, SHA256: sha256, Size: facts.Size, TakenAt: facts.TakenAt, Lat: facts.Lat, Lng: facts.Lng, At: e.now().UTC()}
	err = e.store.Update(ctx, func(tx RecordTx) error {
		if err := tx.SaveProof(ctx, proof); err != nil {
			return err
		}
		w := &writer{e: e, tx: tx, p: schema.Principal{UserID: by}}
		return w.eachPhoto(ctx, sha256, func(r *Record) error {
			if !slices.Contains(r.Refs, photoCreator(by)) {
				return nil // another user's record: its creator proves its own
			}
			return w.refreshPhoto(ctx, r)
		})
	})
	if err != nil {
		return fmt.Errorf("sync.PhotoArrived: %w", err)
	}
	return nil
}

// eachPhoto calls fn for every photo record that names a hash.
func (w *writer) eachPhoto(ctx context.Context, sha256 string, fn func(*Record) error) error {
	for after := ""; ; {
		page, err := w.tx.RecordsByRef(ctx, schema.Photos, photoRef(sha256), after, 100)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < 100 {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// refreshPhoto re-derives a stored photo record's server-owned fields and
// writes a new version when they changed.
func (w *writer) refreshPhoto(ctx context.Context, r *Record) error {
	for try := 0; ; try++ {
		err := w.refreshPhotoOnce(ctx, r)
		if !errors.Is(err, ErrStale) || try == maxStaleRetries {
			return err
		}
		if r, err = w.tx.Record(ctx, r.Collection, r.ID); err != nil {
			return err
		}
	}
}

func (w *writer) refreshPhotoOnce(ctx context.Context, r *Record) error {
	if r.Deleted {
		return nil
	}
	rec, err := schema.Decode(schema.Photos, r.Data)
	if err != nil {
		return fmt.Errorf("stored photo %s does not decode: %w", r.ID, err)
	}
	d, err := w.rederiver().derive(ctx, schema.Photos, r.ID, rec, rec)
	if err != nil {
		return err
	}
	if bytes.Equal(d.data, r.Data) {
		return nil
	}
	next := *r
	next.Version, next.Data, next.Refs = r.Version+1, d.data, d.refs
	next.UpdatedAt, next.UpdatedBy = w.e.now().UTC(), w.p.UserID
	next.Tokens, next.Facts = schema.RecordTokens(schema.Photos, d.facts), d.report
	next.History = w.history(schema.Photos, r, Revision{Version: next.Version, UserID: w.p.UserID}, nil)
	if err := w.audit(AuditUpdate, r, &next); err != nil {
		return err
	}
	return w.put(ctx, &next, r.Version)
}

// recheckPhoto closes the race between a photo record written as not
// uploaded and its creator's upload recorded meanwhile: where the store has
// no transactions, the upload may have looked for the record before it was
// written, so the writer looks for the proof once more after writing.
func (w *writer) recheckPhoto(ctx context.Context, written *Record) (*Record, error) {
	if written.Collection != schema.Photos || written.Deleted || !slices.Contains(written.Refs, pendingUpload) {
		return written, nil
	}
	var p schema.Photo
	if err := json.Unmarshal(written.Data, &p); err != nil {
		return nil, err
	}
	proof, err := w.tx.PhotoProof(ctx, creatorOf(written), p.SHA256)
	if errors.Is(err, ErrNotFound) || (err == nil && proof.Size != p.Size) {
		return written, nil
	}
	if err != nil {
		return nil, err
	}
	if err := w.refreshPhoto(ctx, written); err != nil {
		return nil, err
	}
	return w.tx.Record(ctx, written.Collection, written.ID)
}

// CanReadPhoto reports whether p may read some photo record that names a
// hash and counts as uploaded — its creator proved it holds the bytes —,
// and so the bytes. A hash alone is no key: a record naming someone
// else's photo grants nothing.
func (e *Engine) CanReadPhoto(ctx context.Context, p schema.Principal, sha256 string) (bool, error) {
	tokens := schema.ReadTokens(p)
	found := false
	err := e.store.View(ctx, func(tx RecordTx) error {
		w := &writer{e: e, tx: tx, p: p}
		return w.eachPhoto(ctx, sha256, func(r *Record) error {
			found = found || (!r.Deleted && !slices.Contains(r.Refs, pendingUpload) && schema.Intersects(r.Tokens, tokens))
			return nil
		})
	})
	if err != nil {
		return false, fmt.Errorf("sync.CanReadPhoto: %w", err)
	}
	return found, nil
}

// PhotoReferenced reports whether any photo record names a hash, so that
// bytes nobody refers to can be swept.
func (e *Engine) PhotoReferenced(ctx context.Context, sha256 string) (bool, error) {
	found := false
	err := e.store.View(ctx, func(tx RecordTx) error {
		w := &writer{e: e, tx: tx}
		return w.eachPhoto(ctx, sha256, func(r *Record) error {
			found = found || !r.Deleted
			return nil
		})
	})
	if err != nil {
		return false, fmt.Errorf("sync.PhotoReferenced: %w", err)
	}
	return found, nil
}

// MissingPhoto is a photo record whose bytes have not arrived.
type MissingPhoto struct {
	ID        string     `json:"id"`
	VisitID   string     `json:"visit_id"`
	SHA256    string     `json:"sha256"`
	TakenAt   *time.Time `json:"taken_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// MissingPhotos is the photos one rep's device pushed without their bytes.
type MissingPhotos struct {
	RepID    string         `json:"rep_id"`
	DeviceID string         `json:"device_id"`
	Count    int            `json:"count"`
	Photos   []MissingPhoto `json:"photos"`
}

// MissingPhotos lists, by rep and device, the photo records p may read
// whose bytes never arrived.
func (e *Engine) MissingPhotos(ctx context.Context, p schema.Principal) ([]MissingPhotos, error) {
	tokens := schema.ReadTokens(p)
	groups := map[[2]string]*MissingPhotos{}
	err := e.store.View(ctx, func(tx RecordTx) error {
		for after := ""; ; {
			page, err := tx.RecordsByRef(ctx, schema.Photos, pendingUpload, after, 500)
			if err != nil {
				return err
			}
			for _, r := range page {
				if r.Deleted || !schema.Intersects(r.Tokens, tokens) {
					continue
				}
				var ph schema.Photo
				if err := json.Unmarshal(r.Data, &ph); err != nil {
					return err
				}
				key := [2]string{ph.RepID, ph.DeviceID}
				g := groups[key]
				if g == nil {
					g = &MissingPhotos{RepID: ph.RepID, DeviceID: ph.DeviceID}
					groups[key] = g
				}
				g.Count++
				g.Photos = append(g.Photos, MissingPhoto{ID: r.ID, VisitID: ph.VisitID, SHA256: ph.SHA256, TakenAt: ph.TakenAt, UpdatedAt: r.UpdatedAt})
			}
			if len(page) < 500 {
				return nil
			}
			after = page[len(page)-1].ID
		}
	})
	if err != nil {
		return nil, fmt.Errorf("sync.MissingPhotos: %w", err)
	}
	out := make([]MissingPhotos, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b MissingPhotos) int {
		if a.RepID != b.RepID {
			return strings.Compare(a.RepID, b.RepID)
		}
		return strings.Compare(a.DeviceID, b.DeviceID)
	})
	return out, nil
}
