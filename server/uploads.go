package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/tus/tusd/v2/pkg/filelocker"
	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	expslog "golang.org/x/exp/slog"

	"github.com/fieldsync/fieldsync/schema"
)

// Resumable photo uploads speak tus 1.0 (creation, termination), so that
// the tus clients of browsers, iOS and Android can resume a photo after a
// cut from the last byte the server holds. tusd does the protocol and
// keeps partial uploads in a folder; this file puts the photo rules
// around it: who may upload, what an upload must announce, and, once its
// last byte is in, the same hash-checked, sniffed, content-addressed store
// as PUT /v1/media/{sha256}.

// Upload-Metadata keys. A client announces sha256 and content_type; the
// server adds the uploader, and keeps nothing else.
const (
	uploadMetaSHA256      = "sha256"
	uploadMetaContentType = "content_type"
	uploadMetaUser        = "user_id"
)

// uploadsPath is where resumable uploads are mounted.
const uploadsPath = "/v1/uploads/"

// uploads serves resumable photo uploads.
type uploads struct {
	s      *Server
	store  filestore.FileStore
	locker filelocker.FileLocker
	tus    *tusd.UnroutedHandler
	ttl    time.Duration
	every  time.Duration // how often the sweeper runs
}

// uploadCall is what the hooks of one request tell the bridge: the caller,
// and the error to answer with when a hook refused.
type uploadCall struct {
	p   *schema.Principal
	err error
}

type uploadCallKey struct{}

func callOf(ctx context.Context) *uploadCall {
	c, _ := ctx.Value(uploadCallKey{}).(*uploadCall)
	return c
}

// newUploads keeps partial uploads in dir, forgetting those untouched for
// ttl, as a sweep every so often finds them.
func newUploads(s *Server, dir string, ttl, every time.Duration) (*uploads, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("server.newUploads: %w", err)
	}
	u := &uploads{s: s, store: filestore.New(dir), locker: filelocker.New(dir), ttl: ttl, every: every}
	composer := tusd.NewStoreComposer()
	u.store.UseIn(composer)
	u.locker.UseIn(composer)
	h, err := tusd.NewUnroutedHandler(tusd.Config{
		StoreComposer:        composer,
		BasePath:             uploadsPath,
		MaxSize:              s.photos.MaxSize(),
		DisableDownload:      true,
		DisableConcatenation: true,
		// Behind the proxy of deploy/, Location names the address clients
		// reach, from X-Forwarded-Host and X-Forwarded-Proto.
		RespectForwardedHeaders:   true,
		Cors:                      &tusd.CorsConfig{Disable: true}, // the server's own CORS answers
		PreUploadCreateCallback:   u.creating,
		PreFinishResponseCallback: u.finishing,
		Logger:                    expslog.New(expslog.NewTextHandler(io.Discard, nil)), // failures are logged here
	})
	if err != nil {
		return nil, fmt.Errorf("server.newUploads: %w", err)
	}
	u.tus = h
	return u, nil
}

// refuse makes a hook's refusal: tusd answers with its status, and the
// bridge with the error itself, in the contract's shape.
func refuse(call *uploadCall, err error) error {
	call.err = err
	return tusd.NewError("ERR_FIELDSYNC", "refused", statusOf(publicError(err).Code))
}

// creating checks what a new upload announces and keeps, as its metadata,
// the photo's hash and type and who uploads it.
func (u *uploads) creating(hook tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
	call := callOf(hook.Context)
	info := hook.Upload
	sum, contentType := info.MetaData[uploadMetaSHA256], info.MetaData[uploadMetaContentType]
	var err error
	switch {
	case info.SizeIsDeferred:
		err = schema.FieldErrorf(schema.CodeBadRequest, "Upload-Length", "an upload announces its size in Upload-Length")
	case !schema.ValidSHA256(sum):
		err = schema.FieldErrorf(schema.CodeBadRequest, "Upload-Metadata.sha256", "Upload-Metadata must carry sha256, the photo's SHA-256 as 64 lowercase hex digits")
	case !slices.Contains(schema.PhotoContentTypes(), contentType):
		err = schema.FieldErrorf(schema.CodeUnsupportedMedia, "Upload-Metadata.content_type", "content_type must be one of image/jpeg, image/png, image/webp, image/heic")
	case info.Size == 0:
		err = schema.FieldErrorf(schema.CodeValidationFailed, "Upload-Length", "a photo has at least one byte")
	}
	if err != nil {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse(call, err)
	}
	meta := map[string]string{uploadMetaSHA256: sum, uploadMetaContentType: contentType, uploadMetaUser: call.p.UserID}
	return tusd.HTTPResponse{}, tusd.FileInfoChanges{MetaData: meta}, nil
}

// finishing stores an upload whose last byte has arrived.
func (u *uploads) finishing(hook tusd.HookEvent) (tusd.HTTPResponse, error) {
	call := callOf(hook.Context)
	if err := u.finish(hook.Context, hook.Upload.ID); err != nil {
		return tusd.HTTPResponse{}, refuse(call, err)
	}
	return tusd.HTTPResponse{}, nil
}

// finish stores a complete upload in the photo store as PUT does and
// forgets it. Bytes that are not the photo they announced are refused and
// the upload forgotten, so that nothing is kept; when a store does not
// answer the upload stays, and the next HEAD or PATCH tries again.
func (u *uploads) finish(ctx context.Context, id string) error {
	upload, err := u.store.GetUpload(ctx, id)
	if err != nil {
		return err
	}
	info, err := upload.GetInfo(ctx)
	if err != nil {
		return err
	}
	r, err := upload.GetReader(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	meta := info.MetaData
	_, err = u.s.storePhoto(ctx, meta[uploadMetaUser], meta[uploadMetaSHA256], meta[uploadMetaContentType], info.Size, r)
	var se *schema.Error
	if err != nil && !errors.As(err, &se) {
		return err // the upload stays for a retry
	}
	if terr := u.store.AsTerminatableUpload(upload).Terminate(ctx); terr != nil {
		u.s.log.Error("forgetting a finished upload", slog.String("upload", id), slog.Any("err", terr))
	}
	return err
}

// upload answers the tus endpoints, or 404 when resumable uploads are off.
func (s *Server) upload(c *fiber.Ctx) error {
	if s.uploads == nil {
		return schema.Errorf(schema.CodeNotFound, "resumable uploads are not configured on this server; use PUT /v1/media/{sha256}")
	}
	return s.uploads.handle(c)
}

// handle runs a tus request through tusd: the caller's own uploads only,
// and an upload whose bytes are all in but not yet stored is stored first.
func (u *uploads) handle(c *fiber.Ctx) error {
	call := &uploadCall{p: principal(c)}
	ctx := context.WithValue(c.UserContext(), uploadCallKey{}, call)
	if id := c.Params("id"); id != "" {
		done, err := u.finishPending(ctx, c, id, call.p)
		if err != nil || done {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, c.Method(), c.OriginalURL(), io.NopCloser(requestBody(c)))
	if err != nil {
		return badRequest("request line is not a URL")
	}
	req.URL.Path = c.Params("id") // tusd's handlers take the path below their base
	req.Host = string(c.Request().Host())
	req.RemoteAddr = c.Context().RemoteAddr().String()
	req.ContentLength = max(int64(c.Request().Header.ContentLength()), -1)
	c.Request().Header.VisitAll(func(k, v []byte) { req.Header.Add(string(k), string(v)) })
	w := &tusAnswer{header: http.Header{}}
	u.tus.Middleware(http.HandlerFunc(u.route)).ServeHTTP(w, req)
	for k, vs := range w.header {
		if k != fiber.HeaderContentType && k != fiber.HeaderContentLength {
			c.Set(k, strings.Join(vs, ", "))
		}
	}
	if w.status < http.StatusBadRequest {
		return c.Status(w.status).Send(w.body)
	}
	if call.err != nil {
		return call.err
	}
	return tusFailure(w.status, string(w.body))
}

// route sends a tus request to tusd's handler for its method.
func (u *uploads) route(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		u.tus.PostFile(w, r)
	case http.MethodHead:
		u.tus.HeadFile(w, r)
	case http.MethodPatch:
		u.tus.PatchFile(w, r)
	case http.MethodDelete:
		u.tus.DelFile(w, r)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// finishPending answers a request about an upload that is not the
// caller's as not found, and stores an upload whose bytes are all in but
// that the photo store could not take when its last byte came: then done
// is true and the answer is written.
func (u *uploads) finishPending(ctx context.Context, c *fiber.Ctx, id string, p *schema.Principal) (done bool, err error) {
	errNone := schema.Errorf(schema.CodeNotFound, "no such upload")
	upload, err := u.store.GetUpload(ctx, id)
	if errors.Is(err, tusd.ErrNotFound) {
		return false, errNone
	}
	if err != nil {
		return false, err
	}
	info, err := upload.GetInfo(ctx)
	if err != nil {
		return false, err
	}
	if info.MetaData[uploadMetaUser] != p.UserID {
		return false, errNone
	}
	if info.SizeIsDeferred || info.Offset < info.Size || c.Method() == fiber.MethodDelete {
		return false, nil
	}
	lock, err := u.locker.NewLock(id)
	if err != nil {
		return false, err
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := lock.Lock(lctx, func() {}); err != nil {
		return false, schema.Errorf(schema.CodeConflict, "the upload is busy with another request; try again")
	}
	defer lock.Unlock()
	if _, err := u.store.GetUpload(ctx, id); errors.Is(err, tusd.ErrNotFound) {
		return false, errNone // stored meanwhile by the request that held the lock
	}
	if err := u.finish(ctx, id); err != nil {
		return false, err
	}
	c.Set("Tus-Resumable", "1.0.0")
	c.Set("Upload-Offset", strconv.FormatInt(info.Size, 10))
	c.Set(fiber.HeaderCacheControl, "no-store")
	if c.Method() == fiber.MethodHead {
		c.Set("Upload-Length", strconv.FormatInt(info.Size, 10))
		return true, c.SendStatus(fiber.StatusOK)
	}
	return true, c.SendStatus(fiber.StatusNoContent)
}

// tusFailure turns one of tusd's own refusals ("ERR_CODE: message") into
// the contract's error shape, keeping the status tus clients act on.
func tusFailure(status int, body string) error {
	msg := strings.TrimSpace(body)
	if _, after, ok := strings.Cut(msg, ": "); ok {
		msg = after
	}
	switch {
	case status == http.StatusNotFound:
		return schema.Errorf(schema.CodeNotFound, "no such upload")
	case status == http.StatusConflict || status == http.StatusLocked:
		return schema.Errorf(schema.CodeConflict, "%s", msg)
	case status == http.StatusRequestEntityTooLarge:
		return schema.Errorf(schema.CodePayloadTooLarge, "%s", msg)
	case status < http.StatusInternalServerError:
		return schema.Errorf(schema.CodeBadRequest, "%s", msg)
	}
	return fmt.Errorf("server.uploads: tusd answered %d: %s", status, body)
}

// tusAnswer is the http.ResponseWriter tusd writes to: its answers are
// headers and a short body, handed on to Fiber.
type tusAnswer struct {
	header http.Header
	status int
	body   []byte
}

func (w *tusAnswer) Header() http.Header { return w.header }

func (w *tusAnswer) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *tusAnswer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// sweep forgets the partial uploads that received no byte for the
// upload TTL and returns how many went.
func (u *uploads) sweep(ctx context.Context) (int, error) {
	const op = "server.uploads.sweep"
	entries, err := os.ReadDir(string(u.store.Path))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	cutoff := u.s.now().Add(-u.ttl)
	removed := 0
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".info")
		if !ok {
			continue
		}
		st, err := os.Stat(filepath.Join(string(u.store.Path), id))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("%s: %w", op, err)
		}
		if st.ModTime().After(cutoff) {
			continue
		}
		gone, err := u.forget(ctx, id)
		if err != nil {
			return removed, fmt.Errorf("%s: %w", op, err)
		}
		if gone {
			removed++
		}
	}
	return removed, nil
}

// forget removes an upload unless a request holds it.
func (u *uploads) forget(ctx context.Context, id string) (bool, error) {
	lock, err := u.locker.NewLock(id)
	if err != nil {
		return false, err
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if lock.Lock(lctx, func() {}) != nil {
		return false, nil // busy: it is being written to
	}
	defer lock.Unlock()
	upload, err := u.store.GetUpload(ctx, id)
	if errors.Is(err, tusd.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, u.store.AsTerminatableUpload(upload).Terminate(ctx)
}

// runSweeper sweeps expired partial uploads until ctx ends.
func (u *uploads) runSweeper(ctx context.Context) {
	t := time.NewTicker(u.every)
	defer t.Stop()
	for {
		n, err := u.sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			u.s.log.Error("sweeping expired uploads", slog.Any("err", err))
		case n > 0:
			u.s.log.Info("swept expired uploads", slog.Int("removed", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
