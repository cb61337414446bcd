package fieldsync

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// errNoResumable says the server does not take resumable uploads.
var errNoResumable = errors.New("the server takes no resumable uploads")

// tusHeaders are the headers of a tus request, with more.
func tusHeaders(kv ...string) map[string]string {
	h := map[string]string{"Tus-Resumable": "1.0.0"}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

// resumeUpload sends a photo's bytes through a resumable upload (tus
// 1.0): it opens the upload once, and after a cut asks the server how
// many bytes it holds and goes on from there. The upload's address is
// kept for the next Sync, so that a photo cut off in one goes on in the
// next, in the local store, so that it goes on after a restart too. It
// returns the server's refusal when the bytes will never be
// accepted, and errNoResumable when the server has no such uploads.
func (c *Client) resumeUpload(ctx context.Context, p queuedPhoto, file string, rep *SyncReport) (*schema.Error, error) {
	stalled, best := 0, int64(-1)
	for {
		path, offset, err := c.uploadOffset(ctx, p, rep)
		if err != nil {
			return refusalOf(err)
		}
		if offset == p.size {
			return nil, c.db.forgetUpload(ctx, p.sum)
		}
		if offset > best {
			best, stalled = offset, 0
		}
		ans, err := c.patchUpload(ctx, path, offset, p, file, rep)
		switch {
		case err == nil && ans.status == http.StatusNoContent:
			if ans.header.Get("Upload-Offset") == strconv.FormatInt(p.size, 10) {
				return nil, c.db.forgetUpload(ctx, p.sum)
			}
			continue
		case err == nil && ans.status == http.StatusNotFound:
			if err := c.db.forgetUpload(ctx, p.sum); err != nil { // swept: start again
				return nil, err
			}
			continue
		case err == nil && !retryable(ans.status) && ans.status != http.StatusConflict && ans.status != http.StatusLocked:
			return responseError("upload.patch", ans).(*ResponseError).Err, c.db.forgetUpload(ctx, p.sum)
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("upload.patch: %w", ctx.Err())
		}
		if err == nil {
			err = responseError("upload.patch", ans)
		}
		stalled++
		if stalled >= c.api.retry.MaxAttempts {
			return nil, fmt.Errorf("upload.patch: gave up after %d attempts without progress: %w", stalled, err)
		}
		rep.Resumes++
		wait, giveUp := c.api.backoff(stalled, ans)
		if giveUp {
			return nil, fmt.Errorf("upload.patch: the server asks for a pause of %s, longer than the policy's MaxRetryAfter: %w", wait, err)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("upload.patch: %w", err)
		}
	}
}

// refusalOf splits a failed request into a refusal for good (a 4xx other
// than 401) and an error to try again later.
func refusalOf(err error) (*schema.Error, error) {
	var re *ResponseError
	if errors.As(err, &re) && !retryable(re.Status) && re.Status != http.StatusUnauthorized {
		return re.Err, nil
	}
	return nil, err
}

// uploadOffset returns the address of the photo's upload and how many of
// its bytes the server holds, opening the upload when there is none.
func (c *Client) uploadOffset(ctx context.Context, p queuedPhoto, rep *SyncReport) (string, int64, error) {
	path, err := c.db.uploadPath(ctx, p.sum)
	if err != nil {
		return "", 0, err
	}
	if path != "" {
		ans, err := c.api.do(ctx, request{op: "upload.head", method: http.MethodHead, path: path,
			header: tusHeaders(), accept: []int{http.StatusNotFound}}, rep)
		if err != nil {
			return "", 0, err
		}
		if ans.status != http.StatusNotFound {
			offset, err := strconv.ParseInt(ans.header.Get("Upload-Offset"), 10, 64)
			if err != nil || offset < 0 || offset > p.size {
				return "", 0, fmt.Errorf("upload.head: Upload-Offset %q is not an offset of the photo", ans.header.Get("Upload-Offset"))
			}
			return path, offset, nil
		}
		if err := c.db.forgetUpload(ctx, p.sum); err != nil { // finished elsewhere, or swept: open it again
			return "", 0, err
		}
	}
	enc := base64.StdEncoding.EncodeToString
	ans, err := c.api.do(ctx, request{op: "upload.create", method: http.MethodPost, path: "/v1/uploads/",
		header: tusHeaders("Upload-Length", strconv.FormatInt(p.size, 10),
			"Upload-Metadata", "sha256 "+enc([]byte(p.sum))+",content_type "+enc([]byte(p.contentType))),
		accept: []int{http.StatusNotFound}}, rep)
	if err != nil {
		return "", 0, err
	}
	if ans.status == http.StatusNotFound {
		return "", 0, errNoResumable
	}
	loc, err := url.Parse(ans.header.Get("Location"))
	if err != nil || loc.Path == "" {
		return "", 0, fmt.Errorf("upload.create: no upload address in Location %q", ans.header.Get("Location"))
	}
	// Only the path: the token goes to the server the client was given,
	// never to a host named in an answer.
	if err := c.db.keepUpload(ctx, p.sum, loc.Path); err != nil {
		return "", 0, err
	}
	return loc.Path, 0, nil
}

// uploadPath returns the address of the resumable upload of the photo
// with hash sum, "" when none was opened.
func (s *store) uploadPath(ctx context.Context, sum string) (string, error) {
	var path string
	err := s.r.QueryRowContext(ctx, `SELECT path FROM photo_uploads WHERE sha256 = ?`, sum).Scan(&path)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("local store: %w", err)
	}
	return path, nil
}

// keepUpload keeps the address of the photo's resumable upload.
func (s *store) keepUpload(ctx context.Context, sum, path string) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO photo_uploads (sha256, path) VALUES (?, ?)
			ON CONFLICT (sha256) DO UPDATE SET path = excluded.path`, sum, path)
		if err != nil {
			return fmt.Errorf("local store: %w", err)
		}
		return nil
	})
}

// forgetUpload drops the address of the photo's resumable upload: it is
// finished, refused or gone from the server.
func (s *store) forgetUpload(ctx context.Context, sum string) error {
	return s.write(ctx, func(tx *wtx) error {
		return dropUpload(ctx, tx, sum)
	})
}

// patchUpload sends the photo's bytes from offset in one request, once.
func (c *Client) patchUpload(ctx context.Context, path string, offset int64, p queuedPhoto, file string, rep *SyncReport) (*answer, error) {
	r := request{
		op: "upload.patch", method: http.MethodPatch, path: path, size: p.size - offset,
		contentType: "application/offset+octet-stream", header: tusHeaders("Upload-Offset", strconv.FormatInt(offset, 10)),
		body: func() (io.ReadCloser, error) {
			f, err := os.Open(file)
			if err != nil {
				return nil, err
			}
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		},
	}
	for renewed := false; ; renewed = true {
		token, err := c.api.token(ctx, rep)
		if err != nil {
			return nil, err
		}
		ans, err := c.api.once(ctx, r, token)
		if err != nil || ans.status != http.StatusUnauthorized || renewed {
			return ans, err
		}
		if err := c.api.renew(ctx, token, rep); err != nil {
			return nil, err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dropUpload forgets the address of a photo's resumable upload in tx.
func dropUpload(ctx context.Context, tx *wtx, sum string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM photo_uploads WHERE sha256 = ?`, sum); err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	return nil
}
