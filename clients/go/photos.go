package fieldsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// PhotoInfo is what the device knows of a photo besides its bytes.
type PhotoInfo struct {
	// TakenAt is when the photo was taken, if known.
	TakenAt time.Time
	// Lat and Lng are where it was taken, if known (both or neither).
	Lat, Lng *float64
	// ContentType is one of schema.PhotoContentTypes(); default sniffed
	// from the bytes (JPEG, PNG and WebP are recognised).
	ContentType string
}

// AddPhoto keeps a photo's bytes in the photo folder and queues their
// upload and the photo's record (a photos record on visitID). Sync uploads
// the bytes first and pushes the record only once the server has them.
func (c *Client) AddPhoto(ctx context.Context, photoID, visitID string, body []byte, info PhotoInfo) error {
	return c.addPhoto(ctx, photoID, visitID, bytes.NewReader(body), info)
}

// AddPhotoFile is AddPhoto with the bytes read from a file, which is
// copied into the photo folder (the original may go afterwards).
func (c *Client) AddPhotoFile(ctx context.Context, photoID, visitID, path string, info PhotoInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fieldsync.AddPhoto: %w", err)
	}
	defer f.Close()
	return c.addPhoto(ctx, photoID, visitID, f, info)
}

func (c *Client) addPhoto(ctx context.Context, photoID, visitID string, body io.Reader, info PhotoInfo) error {
	const op = "fieldsync.AddPhoto"
	if !schema.CheckID(visitID) {
		return fmt.Errorf("%s: %w", op, schema.FieldErrorf(schema.CodeValidationFailed, "visit_id", "visit_id must be a record id"))
	}
	tmp, sum, size, head, err := c.keepBytes(body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer os.Remove(tmp) // once renamed, nothing
	contentType := info.ContentType
	if contentType == "" {
		contentType = http.DetectContentType(head)
	}
	if !slices.Contains(schema.PhotoContentTypes(), contentType) {
		return fmt.Errorf("%s: %w", op, schema.FieldErrorf(schema.CodeValidationFailed, "content_type",
			"content type %q is not one of %v", contentType, schema.PhotoContentTypes()))
	}
	photo := schema.Photo{VisitID: visitID, SHA256: sum, ContentType: contentType, Size: size, Lat: info.Lat, Lng: info.Lng}
	if !info.TakenAt.IsZero() {
		t := info.TakenAt.UTC()
		photo.TakenAt = &t
	}
	data, err := recordData(schema.Photos, photoID, photo)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}

	c.photoMu.Lock()
	defer c.photoMu.Unlock()
	if err := os.Rename(tmp, c.photoPath(sum)); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var released []string
	err = c.db.write(ctx, func(tx *wtx) error {
		now := c.db.stamp()
		if _, err := tx.ExecContext(ctx, `INSERT INTO photo_queue (sha256, content_type, size, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (sha256) DO NOTHING`, sum, contentType, size, now); err != nil {
			return err
		}
		released, err = queue(ctx, tx, now, schema.Photos, photoID, schema.MutationUpsert, data, sum)
		return err
	})
	if err != nil {
		c.dropPhotoFiles(ctx, []string{sum}) // unless queued before
		return fmt.Errorf("%s: %w", op, err)
	}
	c.dropPhotoFiles(ctx, released)
	return nil
}

// keepBytes writes a photo's bytes to a temporary file in the photo
// folder, synced to disk, and returns its name, their SHA-256, size and
// first bytes.
func (c *Client) keepBytes(body io.Reader) (tmp, sum string, size int64, head []byte, err error) {
	if err := os.MkdirAll(c.photoDir, 0o700); err != nil {
		return "", "", 0, nil, err
	}
	f, err := os.CreateTemp(c.photoDir, ".incoming-*")
	if err != nil {
		return "", "", 0, nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	sniff := &headWriter{max: 512}
	if size, err = io.Copy(io.MultiWriter(f, h, sniff), body); err != nil {
		return "", "", 0, nil, err
	}
	if size == 0 {
		return "", "", 0, nil, schema.Errorf(schema.CodeValidationFailed, "a photo has no bytes")
	}
	if err = f.Sync(); err != nil {
		return "", "", 0, nil, err
	}
	if err = f.Close(); err != nil {
		return "", "", 0, nil, err
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil)), size, sniff.buf, nil
}

// headWriter keeps the first max bytes written to it.
type headWriter struct {
	buf []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if n := w.max - len(w.buf); n > 0 {
		w.buf = append(w.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (c *Client) photoPath(sum string) string { return filepath.Join(c.photoDir, sum) }

// removePhotoFiles removes the files of photos that are no longer queued.
func (c *Client) removePhotoFiles(ctx context.Context, sums []string) {
	if len(sums) == 0 {
		return
	}
	c.photoMu.Lock()
	defer c.photoMu.Unlock()
	c.dropPhotoFiles(ctx, sums)
}

// dropPhotoFiles is removePhotoFiles with photoMu held: a photo added
// again meanwhile is queued again and keeps its file.
func (c *Client) dropPhotoFiles(ctx context.Context, sums []string) {
	for _, sum := range sums {
		var queued bool
		err := c.db.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM photo_queue WHERE sha256 = ?)`, sum).Scan(&queued)
		if err == nil && !queued {
			err = os.Remove(c.photoPath(sum))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.WarnContext(ctx, "cannot remove a photo's file", slog.String("sha256", sum), slog.String("error", err.Error()))
		}
	}
}

// queuedPhoto is one entry of the photo queue.
type queuedPhoto struct {
	sum, contentType string
	size             int64
}

// uploadPhotos sends the queued photo bytes the server does not have yet.
func (c *Client) uploadPhotos(ctx context.Context, rep *SyncReport) error {
	queued, err := collect(ctx, c.db.r, func(rs *sql.Rows, p *queuedPhoto) error {
		return rs.Scan(&p.sum, &p.contentType, &p.size)
	}, `SELECT sha256, content_type, size FROM photo_queue ORDER BY created_at, sha256`)
	if err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	for _, p := range queued {
		refusal, err := c.uploadPhoto(ctx, p, rep)
		if err != nil {
			return err
		}
		if err := c.photoDone(ctx, p.sum, refusal); err != nil {
			return err
		}
	}
	return nil
}

// uploadPhoto makes sure the server has a photo's bytes. It returns the
// server's refusal when the bytes will never be accepted.
func (c *Client) uploadPhoto(ctx context.Context, p queuedPhoto, rep *SyncReport) (*schema.Error, error) {
	path := "/v1/media/" + p.sum
	ans, err := c.api.do(ctx, request{op: "media.head", method: http.MethodHead, path: path, accept: []int{http.StatusNotFound}}, rep)
	if err != nil {
		return nil, err
	}
	if ans.status == http.StatusOK {
		rep.PhotosSkipped++
		return nil, nil
	}
	file := c.photoPath(p.sum)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return schema.Errorf(schema.CodeNotFound, "the photo's bytes are gone from the device"), nil
	}
	if c.cfg.ResumableAbove >= 0 && p.size > c.cfg.ResumableAbove {
		refusal, err := c.resumeUpload(ctx, p, file, rep)
		if !errors.Is(err, errNoResumable) {
			if err == nil && refusal == nil {
				rep.PhotosUploaded++
			}
			return refusal, err
		}
	}
	_, err = c.api.do(ctx, request{
		op: "media.put", method: http.MethodPut, path: path, size: p.size, contentType: p.contentType,
		body: func() (io.ReadCloser, error) { return os.Open(file) },
	}, rep)
	var re *ResponseError
	if errors.As(err, &re) && !retryable(re.Status) && re.Status != http.StatusUnauthorized {
		return re.Err, nil
	}
	if err != nil {
		return nil, err
	}
	rep.PhotosUploaded++
	return nil, nil
}

// photoDone takes a photo off the queue, which lets its records go; when
// the server refused the bytes, their records are refused too.
func (c *Client) photoDone(ctx context.Context, sum string, refusal *schema.Error) error {
	c.photoMu.Lock()
	defer c.photoMu.Unlock()
	err := c.db.write(ctx, func(tx *wtx) error {
		if refusal != nil {
			if err := refuseHeld(ctx, tx, c.db.stamp(), sum, refusal); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM photo_queue WHERE sha256 = ?`, sum); err != nil {
			return err
		}
		return dropUpload(ctx, tx, sum)
	})
	if err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	c.dropPhotoFiles(ctx, []string{sum})
	return nil
}

// refuseHeld moves the outbox rows waiting for photo bytes to the
// rejections.
func refuseHeld(ctx context.Context, tx *wtx, now, sum string, refusal *schema.Error) error {
	held, err := collect(ctx, tx, scanMutation, `SELECT `+mutationColumns+` FROM outbox WHERE hold = ?`, sum)
	if err != nil {
		return err
	}
	for i := range held {
		if err := dropMutation(ctx, tx, &held[i]); err != nil {
			return err
		}
		if err := keepRejection(ctx, tx, now, &held[i], refusal); err != nil {
			return err
		}
	}
	return nil
}
