package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// PhotoMeta is what a photo's own metadata says about where and when it was
// taken. A nil field is one the metadata does not give (or gives unusably).
type PhotoMeta struct {
	// TakenAt is when the photo was taken, in UTC, to the second.
	TakenAt *time.Time
	// Lat and Lng are where it was taken, in signed decimal degrees
	// (south and west negative). Both are set or neither is.
	Lat, Lng *float64
}

// MaxMetaBytes is how many leading bytes of a photo ReadPhotoMeta reads at
// most. Cameras and phones put the EXIF segment first, within a few bytes of
// the start; a JPEG's APP1 segment holds at most 64 KiB.
const MaxMetaBytes = 256 << 10

// ErrInvalidExif is returned (wrapped) by ReadPhotoMeta for a JPEG whose EXIF
// block is broken: cut short, or with a header, directory or value that
// lies outside the block.
var ErrInvalidExif = errors.New("media: invalid EXIF block")

// exifHeader starts the APP1 segment that holds a JPEG's EXIF block; the
// TIFF structure follows it.
const exifHeader = "Exif\x00\x00"

// JPEG markers ReadPhotoMeta acts on.
const (
	markerSOI  = 0xD8 // start of image
	markerEOI  = 0xD9 // end of image
	markerSOS  = 0xDA // start of scan: entropy-coded data follows
	markerAPP1 = 0xE1 // EXIF (or XMP)
	markerTEM  = 0x01 // standalone, as are RST0-RST7
	markerRST0 = 0xD0
	markerRST7 = 0xD7
)

// TIFF tags ReadPhotoMeta reads.
const (
	tagDateTime           = 0x0132 // IFD0, ASCII "YYYY:MM:DD HH:MM:SS"
	tagExifIFD            = 0x8769 // IFD0, offset of the Exif IFD
	tagGPSIFD             = 0x8825 // IFD0, offset of the GPS IFD
	tagDateTimeOriginal   = 0x9003 // Exif IFD, ASCII like tagDateTime
	tagOffsetTime         = 0x9010 // Exif IFD, ASCII "+HH:MM" for tagDateTime
	tagOffsetTimeOriginal = 0x9011 // Exif IFD, ASCII "+HH:MM" for tagDateTimeOriginal
	tagGPSLatitudeRef     = 0x0001 // GPS IFD, ASCII "N" or "S"
	tagGPSLatitude        = 0x0002 // GPS IFD, 3 RATIONAL: degrees, minutes, seconds
	tagGPSLongitudeRef    = 0x0003 // GPS IFD, ASCII "E" or "W"
	tagGPSLongitude       = 0x0004 // GPS IFD, 3 RATIONAL like tagGPSLatitude
)

// TIFF field types ReadPhotoMeta reads.
const (
	typeASCII    = 2  // bytes of text, NUL-terminated
	typeLong     = 4  // uint32
	typeRational = 5  // two uint32: numerator, denominator
	typeIFD      = 13 // uint32 offset of an IFD
)

// valueSize returns the size in bytes of one value of typeASCII or
// typeRational, the types whose values ReadPhotoMeta finds through
// tiff.data.
func valueSize(typ uint16) uint64 {
	if typ == typeRational {
		return 8
	}
	return 1
}

// exifTimeLayout is the layout of EXIF date-time values.
const exifTimeLayout = "2006:01:02 15:04:05"

// ReadPhotoMeta reads when and where a photo was taken from the EXIF block at
// the start of a JPEG, reading at most the first MaxMetaBytes bytes of r.
//
// The time is DateTimeOriginal shifted by OffsetTimeOriginal, or failing
// that DateTime shifted by OffsetTime. Without a valid offset the time is
// taken as UTC, as the device's own offset is unknown: such a TakenAt may be
// off by the device's offset from UTC. The position is GPSLatitude and
// GPSLongitude with their N/S and E/W refs; a missing ref or a value out of
// range leaves the position out.
//
// For a JPEG without EXIF or without those tags, for any other format, and
// for a JPEG whose EXIF segment does not start within MaxMetaBytes, it
// returns an empty PhotoMeta and no error. Tags of an unexpected type or with
// a value that does not parse are left out as well. It returns an error
// wrapping ErrInvalidExif only for a broken EXIF block, and the read error
// (wrapped) when r fails; with an error the PhotoMeta is empty.
func ReadPhotoMeta(r io.Reader) (PhotoMeta, error) {
	block, err := findExif(bufio.NewReader(io.LimitReader(r, MaxMetaBytes)))
	if err != nil || block == nil {
		return PhotoMeta{}, err
	}
	return parseExif(block)
}

// findExif returns the TIFF structure of the first EXIF APP1 segment among
// the JPEG marker segments read from r, or nil when r holds no JPEG or none
// before its image data or end.
func findExif(r *bufio.Reader) ([]byte, error) {
	var soi [2]byte
	if _, err := io.ReadFull(r, soi[:]); err != nil || soi != [2]byte{0xFF, markerSOI} {
		return nil, readErr(err)
	}
	for {
		marker, err := nextMarker(r)
		if err != nil || marker == 0 {
			return nil, readErr(err)
		}
		switch {
		case marker == markerTEM || marker >= markerRST0 && marker <= markerRST7:
			continue // standalone: no length, no payload
		case marker == markerSOS || marker == markerEOI || marker == markerSOI:
			return nil, nil
		}
		var lenBytes [2]byte
		if _, err := io.ReadFull(r, lenBytes[:]); err != nil {
			return nil, readErr(err)
		}
		n := int(binary.BigEndian.Uint16(lenBytes[:])) - 2
		if n < 0 {
			return nil, nil // not a JPEG after all
		}
		if marker != markerAPP1 {
			if _, err := r.Discard(n); err != nil {
				return nil, readErr(err)
			}
			continue
		}
		payload := make([]byte, n)
		got, err := io.ReadFull(r, payload)
		if !bytes.HasPrefix(payload[:got], []byte(exifHeader)) {
			if err != nil {
				return nil, readErr(err)
			}
			continue // another APP1 segment (XMP): look on
		}
		if err != nil {
			if err := readErr(err); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: APP1 segment cut short after %d of %d bytes", ErrInvalidExif, got, n)
		}
		return payload[len(exifHeader):], nil
	}
}

// nextMarker reads the next marker, skipping fill bytes (0xFF). It returns 0
// when the bytes there are no marker.
func nextMarker(r *bufio.Reader) (byte, error) {
	c, err := r.ReadByte()
	if err != nil || c != 0xFF {
		return 0, err
	}
	for c == 0xFF {
		if c, err = r.ReadByte(); err != nil {
			return 0, err
		}
	}
	return c, nil
}

// readErr returns nil for the end of the input (where an EXIF block is simply
// not found), and any other read error wrapped.
func readErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return fmt.Errorf("media: reading photo: %w", err)
}

// parseExif reads PhotoMeta from the TIFF structure of an EXIF block. It
// follows only the Exif and GPS IFD pointers of IFD0, never chains of IFDs,
// so no pointer loop can keep it going.
func parseExif(b []byte) (PhotoMeta, error) {
	t, err := newTIFF(b)
	if err != nil {
		return PhotoMeta{}, err
	}
	ifd0, err := t.ifd(t.order.Uint32(b[4:8]), "IFD0")
	if err != nil {
		return PhotoMeta{}, err
	}
	exifIFD, err := t.subIFD(ifd0, tagExifIFD, "Exif IFD")
	if err != nil {
		return PhotoMeta{}, err
	}
	gpsIFD, err := t.subIFD(ifd0, tagGPSIFD, "GPS IFD")
	if err != nil {
		return PhotoMeta{}, err
	}

	var meta PhotoMeta
	taken, err := t.takenAt(exifIFD, tagDateTimeOriginal, exifIFD, tagOffsetTimeOriginal)
	if err == nil && taken == nil {
		taken, err = t.takenAt(ifd0, tagDateTime, exifIFD, tagOffsetTime)
	}
	if err != nil {
		return PhotoMeta{}, err
	}
	meta.TakenAt = taken
	lat, err := t.degrees(gpsIFD, tagGPSLatitude, tagGPSLatitudeRef, 'N', 'S', 90)
	if err != nil {
		return PhotoMeta{}, err
	}
	lng, err := t.degrees(gpsIFD, tagGPSLongitude, tagGPSLongitudeRef, 'E', 'W', 180)
	if err != nil {
		return PhotoMeta{}, err
	}
	if lat != nil && lng != nil {
		meta.Lat, meta.Lng = lat, lng
	}
	return meta, nil
}

// tiff is the TIFF structure of an EXIF block: offsets in it count from b[0].
type tiff struct {
	b     []byte
	order binary.ByteOrder
}

// newTIFF checks b's TIFF header: byte order and magic number.
func newTIFF(b []byte) (tiff, error) {
	if len(b) < 8 {
		return tiff{}, fmt.Errorf("%w: TIFF header cut short (%d bytes)", ErrInvalidExif, len(b))
	}
	var order binary.ByteOrder
	switch string(b[0:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return tiff{}, fmt.Errorf("%w: unknown TIFF byte order %q", ErrInvalidExif, b[0:2])
	}
	if order.Uint16(b[2:4]) != 42 {
		return tiff{}, fmt.Errorf("%w: no TIFF magic number", ErrInvalidExif)
	}
	return tiff{b: b, order: order}, nil
}

// ifd is the entries of one image file directory, 12 bytes each:
// tag(2) type(2) count(4) value or offset(4).
type ifd []byte

// entry is one IFD entry.
type entry struct {
	typ   uint16
	count uint32
	value []byte // the entry's value or offset field
}

// ifd returns the directory at off; name says which one for errors.
func (t tiff) ifd(off uint32, name string) (ifd, error) {
	start := uint64(off) + 2
	if start > uint64(len(t.b)) {
		return nil, fmt.Errorf("%w: %s offset %d is past the end (%d bytes)", ErrInvalidExif, name, off, len(t.b))
	}
	n := uint64(t.order.Uint16(t.b[off:start]))
	end := start + 12*n
	if end > uint64(len(t.b)) {
		return nil, fmt.Errorf("%w: %s's %d entries run past the end", ErrInvalidExif, name, n)
	}
	return ifd(t.b[start:end]), nil
}

// subIFD returns the directory that the pointer tag of ifd0 gives, or nil
// when there is none.
func (t tiff) subIFD(ifd0 ifd, tag uint16, name string) (ifd, error) {
	e, ok := t.find(ifd0, tag)
	if !ok || e.typ != typeLong && e.typ != typeIFD || e.count != 1 {
		return nil, nil
	}
	off := t.order.Uint32(e.value)
	if off == 0 {
		return nil, nil
	}
	return t.ifd(off, name)
}

// find returns the first entry of d with tag.
func (t tiff) find(d ifd, tag uint16) (entry, bool) {
	for i := 0; i+12 <= len(d); i += 12 {
		if t.order.Uint16(d[i:]) == tag {
			return entry{typ: t.order.Uint16(d[i+2:]), count: t.order.Uint32(d[i+4:]), value: d[i+8 : i+12]}, true
		}
	}
	return entry{}, false
}

// data returns the bytes of the entry of d with tag, if it has type typ.
// ok is false when d has no such entry or it has another type.
func (t tiff) data(d ifd, tag, typ uint16) (data []byte, count uint32, ok bool, err error) {
	e, found := t.find(d, tag)
	if !found || e.typ != typ {
		return nil, 0, false, nil
	}
	size := valueSize(typ) * uint64(e.count)
	if size <= 4 {
		return e.value[:size], e.count, true, nil
	}
	off := uint64(t.order.Uint32(e.value))
	if off+size > uint64(len(t.b)) {
		return nil, 0, false, fmt.Errorf("%w: value of tag %#04x (%d bytes at %d) is past the end", ErrInvalidExif, tag, size, off)
	}
	return t.b[off : off+size], e.count, true, nil
}

// ascii returns the text of the ASCII entry of d with tag, without trailing
// NULs and spaces, or "" when there is none.
func (t tiff) ascii(d ifd, tag uint16) (string, error) {
	data, _, ok, err := t.data(d, tag, typeASCII)
	if !ok {
		return "", err
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	return string(bytes.TrimRight(data, " ")), nil
}

// takenAt returns the time in the ASCII entry of timeIFD with timeTag,
// shifted by the offset in the entry of offsetIFD with offsetTag, in UTC.
func (t tiff) takenAt(timeIFD ifd, timeTag uint16, offsetIFD ifd, offsetTag uint16) (*time.Time, error) {
	s, err := t.ascii(timeIFD, timeTag)
	if err != nil || s == "" {
		return nil, err
	}
	offset, err := t.ascii(offsetIFD, offsetTag)
	if err != nil {
		return nil, err
	}
	return parseTakenAt(s, offset), nil
}

// parseTakenAt returns the EXIF date-time s at the offset from UTC given as
// "+HH:MM" or "-HH:MM", in UTC; an empty or invalid offset counts as UTC. It
// returns nil when s does not parse.
func parseTakenAt(s, offset string) *time.Time {
	at, err := time.Parse(exifTimeLayout, s)
	if err != nil {
		return nil
	}
	at = at.Add(-parseOffset(offset)).UTC()
	return &at
}

// parseOffset returns the offset from UTC that s gives as "+HH:MM" or
// "-HH:MM" (at most 14 hours either way), or 0.
func parseOffset(s string) time.Duration {
	if len(s) != 6 || s[0] != '+' && s[0] != '-' || s[3] != ':' {
		return 0
	}
	h, okH := twoDigits(s[1:3])
	m, okM := twoDigits(s[4:6])
	if !okH || !okM || m > 59 || h*60+m > 14*60 {
		return 0
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	if s[0] == '-' {
		d = -d
	}
	return d
}

// twoDigits parses two decimal digits.
func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// degrees returns the signed decimal degrees of the GPS IFD entry with tag,
// three RATIONALs (degrees, minutes, seconds), negated when the entry with
// refTag says neg rather than pos. It returns nil when either entry is
// missing or unusable, or the result lies beyond ±limit.
func (t tiff) degrees(gps ifd, tag, refTag uint16, pos, neg byte, limit float64) (*float64, error) {
	ref, err := t.ascii(gps, refTag)
	if err != nil || ref != string(pos) && ref != string(neg) {
		return nil, err
	}
	data, count, ok, err := t.data(gps, tag, typeRational)
	if !ok || count != 3 {
		return nil, err
	}
	var dms [3]float64
	for i := range dms {
		num, den := t.order.Uint32(data[8*i:]), t.order.Uint32(data[8*i+4:])
		if den == 0 {
			return nil, nil
		}
		dms[i] = float64(num) / float64(den)
	}
	deg := dms[0] + dms[1]/60 + dms[2]/3600
	if deg > limit {
		return nil, nil
	}
	if ref[0] == neg {
		deg = -deg
	}
	return &deg, nil
}
