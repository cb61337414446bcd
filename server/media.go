package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/schema"
)

// photoHash reads and checks the {sha256} path parameter.
func photoHash(c *fiber.Ctx) (string, error) {
	sum := c.Params("sha256")
	if !schema.ValidSHA256(sum) {
		return "", schema.FieldErrorf(schema.CodeBadRequest, "sha256", "the path must end in the photo's SHA-256 as 64 lowercase hex digits")
	}
	return sum, nil
}

// putPhoto stores a photo's bytes, streamed while they are hashed.
func (s *Server) putPhoto(c *fiber.Ctx) error {
	p := principal(c)
	sum, err := photoHash(c)
	if err != nil {
		return err
	}
	contentType := c.Get(fiber.HeaderContentType)
	if !slices.Contains(schema.PhotoContentTypes(), contentType) {
		return schema.Errorf(schema.CodeUnsupportedMedia, "Content-Type must be one of image/jpeg, image/png, image/webp, image/heic")
	}
	size := int64(c.Request().Header.ContentLength())
	if size > s.photos.MaxSize() {
		return schema.Errorf(schema.CodePayloadTooLarge, "a photo is at most %d bytes", s.photos.MaxSize())
	}
	if size < 0 {
		size = -1
	}
	created, err := s.storePhoto(c.UserContext(), p.UserID, sum, contentType, size, requestBody(c))
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(fiber.Map{"sha256": sum, "created": created})
}

// storePhoto streams size bytes of a photo (-1: unknown) into the photo
// store as they are hashed and sniffed, and records that user proved it
// holds them. A photo the rules refuse comes back as a *schema.Error with
// nothing kept; a store that does not answer as an error wrapping
// schema.ErrUnavailable. Both PUT and a finished resumable upload store
// photos through it.
func (s *Server) storePhoto(ctx context.Context, user, sum, contentType string, size int64, r io.Reader) (created bool, err error) {
	created, err = s.photos.Put(ctx, sum, contentType, size, r)
	switch {
	case errors.Is(err, media.ErrBadHash):
		return false, schema.FieldErrorf(schema.CodeBadRequest, "sha256", "not a SHA-256 as 64 lowercase hex digits")
	case errors.Is(err, media.ErrTooLarge):
		return false, schema.Errorf(schema.CodePayloadTooLarge, "a photo is at most %d bytes", s.photos.MaxSize())
	case errors.Is(err, media.ErrHashMismatch):
		return false, schema.Errorf(schema.CodeHashMismatch, "the bytes do not hash to %s; nothing was kept", sum)
	case errors.Is(err, media.ErrNotPhoto):
		return false, schema.FieldErrorf(schema.CodeValidationFailed, "content_type", "the bytes are not %s; nothing was kept", contentType)
	case err != nil:
		return false, err
	}
	if err := s.engine.PhotoArrived(ctx, sum, user); err != nil {
		return false, err
	}
	if created {
		s.log.Info("photo stored", slog.String("sha256", sum), slog.String("user_id", user))
	}
	return created, nil
}

// headPhoto answers 200 when a photo's bytes are stored and the caller may
// read them (as GET), else 404, so that clients skip uploads the server
// has for them.
func (s *Server) headPhoto(c *fiber.Ctx) error {
	sum, err := photoHash(c)
	if err != nil {
		return err
	}
	ok, err := s.engine.CanReadPhoto(c.UserContext(), *principal(c), sum)
	if err != nil {
		return err
	}
	if !ok {
		return c.SendStatus(fiber.StatusNotFound)
	}
	info, ok, err := s.photos.Exists(c.UserContext(), sum)
	if err != nil {
		return err
	}
	if !ok {
		return c.SendStatus(fiber.StatusNotFound)
	}
	c.Set(fiber.HeaderContentLength, strconv.FormatInt(info.Size, 10))
	return c.SendStatus(fiber.StatusOK)
}

// getPhoto sends a photo's bytes, or a redirect to a short-lived URL of the
// photo store, to callers who may read a photo record that names it; to
// anyone else it does not exist.
func (s *Server) getPhoto(c *fiber.Ctx) error {
	sum, err := photoHash(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	ok, err := s.engine.CanReadPhoto(ctx, *principal(c), sum)
	if err != nil {
		return err
	}
	errNone := schema.Errorf(schema.CodeNotFound, "no such photo")
	if !ok {
		return errNone
	}
	if u, ok, err := s.photos.PresignedURL(ctx, sum); err != nil {
		return err
	} else if ok {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Redirect(u, fiber.StatusFound)
	}
	rc, info, err := s.photos.Open(ctx, sum)
	if errors.Is(err, media.ErrNotExist) {
		return errNone
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, info.ContentType)
	c.Set(fiber.HeaderCacheControl, "private, max-age=31536000, immutable")
	c.Set(fiber.HeaderETag, `"`+sum+`"`)
	return c.SendStream(rc, int(info.Size))
}

// missingPhotos lists photo records whose bytes never arrived.
func (s *Server) missingPhotos(c *fiber.Ctx) error {
	groups, err := s.engine.MissingPhotos(c.UserContext(), *principal(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"missing": groups})
}
