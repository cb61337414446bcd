package console

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"runtime"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/fieldsync/fieldsync/media"
)

// Thumbnail limits.
const (
	thumbSize = 192 // the longer side, in pixels
	// maxPixels is the largest image decoded for a thumbnail: 50
	// megapixels, about 200 MB decoded. Larger ones show as a file icon.
	maxPixels = 50_000_000
)

// thumbnailer makes small JPEG thumbnails of photos, at most one per core
// at a time, so a gallery cannot starve syncs of CPU and memory.
type thumbnailer struct {
	slots chan struct{}
}

func newThumbnailer() *thumbnailer {
	return &thumbnailer{slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// decoder reads the dimensions and the pixels of one image format.
type decoder struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// decoderFor returns the decoder of a content type thumbnails are made of.
func decoderFor(contentType string) (decoder, bool) {
	switch contentType {
	case "image/jpeg":
		return decoder{jpeg.DecodeConfig, jpeg.Decode}, true
	case "image/png":
		return decoder{png.DecodeConfig, png.Decode}, true
	case "image/webp":
		return decoder{webp.DecodeConfig, webp.Decode}, true
	}
	return decoder{}, false
}

// thumbnailable reports whether a thumbnail can be made of a content type
// (HEIC cannot: it shows as a file icon).
func thumbnailable(contentType string) bool {
	_, ok := decoderFor(contentType)
	return ok
}

// errNoThumbnail: the photo's bytes cannot be made into a thumbnail (an
// unknown or undecodable format, or too many pixels).
var errNoThumbnail = fmt.Errorf("console: no thumbnail")

// make returns a JPEG thumbnail of the photo whose bytes open opens,
// reading them twice: once for the dimensions, once to decode.
func (t *thumbnailer) make(ctx context.Context, photos PhotoOpener, sum string) ([]byte, error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-t.slots }()

	body, _, err := photos.Open(ctx, sum)
	if err != nil {
		return nil, err
	}
	head := bufio.NewReader(body)
	peek, _ := head.Peek(64)
	dec, ok := decoderFor(media.SniffContentType(peek))
	if !ok {
		body.Close()
		return nil, errNoThumbnail
	}
	cfg, err := dec.config(head)
	body.Close()
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, errNoThumbnail
	}
	body, _, err = photos.Open(ctx, sum)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	src, err := dec.decode(bufio.NewReader(body))
	if err != nil {
		return nil, errNoThumbnail
	}
	w, h := cfg.Width, cfg.Height
	if w >= h {
		w, h = thumbSize, max(1, h*thumbSize/w)
	} else {
		w, h = max(1, w*thumbSize/h), thumbSize
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, fmt.Errorf("console: thumbnail: %w", err)
	}
	return out.Bytes(), nil
}
