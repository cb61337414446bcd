// Package phototest makes photos for tests: JPEGs that carry the EXIF time
// and GPS position of a media.PhotoMeta, padded to a realistic size in well
// under a second, and the EXIF blocks inside them, built from IFD fields one
// by one (in either byte order) so that tests can also make broken ones.
package phototest

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/media"
)

// TIFF tags that ReadPhotoMeta reads, for building EXIF blocks.
const (
	TagDateTime           = 0x0132 // IFD0
	TagExifIFD            = 0x8769 // IFD0: Exif writes it when given an Exif IFD
	TagGPSIFD             = 0x8825 // IFD0: Exif writes it when given a GPS IFD
	TagDateTimeOriginal   = 0x9003 // Exif IFD
	TagOffsetTime         = 0x9010 // Exif IFD
	TagOffsetTimeOriginal = 0x9011 // Exif IFD
	TagGPSLatitudeRef     = 0x0001 // GPS IFD
	TagGPSLatitude        = 0x0002 // GPS IFD
	TagGPSLongitudeRef    = 0x0003 // GPS IFD
	TagGPSLongitude       = 0x0004 // GPS IFD
)

// TIFF field types.
const (
	TypeASCII    = 2
	TypeShort    = 3
	TypeLong     = 4
	TypeRational = 5
)

// JPEG markers for Segment.
const (
	MarkerAPP1 = 0xE1 // EXIF or XMP
	MarkerCOM  = 0xFE // comment
)

// ExifHeader starts the payload of the APP1 segment that holds an EXIF block.
const ExifHeader = "Exif\x00\x00"

// maxPayload is the most a JPEG marker segment can hold: its 16-bit length
// counts itself too.
const maxPayload = 65533

// Field is one IFD entry for Exif to write.
type Field struct {
	Tag, Type uint16
	// Count is the number of values the entry claims; 0 means the number
	// Text or Values hold. A larger Count makes an entry whose value runs
	// past what is written.
	Count uint32
	// Text is the value of a TypeASCII field, written with a NUL after it.
	Text string
	// Values are the values of any other type, each written in the type's
	// size; for TypeRational they are numerator, denominator pairs.
	Values []uint32
}

// ASCII returns a TypeASCII field.
func ASCII(tag uint16, text string) Field {
	return Field{Tag: tag, Type: TypeASCII, Text: text}
}

// Long returns a TypeLong field of one value, such as an IFD pointer.
func Long(tag uint16, v uint32) Field {
	return Field{Tag: tag, Type: TypeLong, Values: []uint32{v}}
}

// Rational returns a TypeRational field of the given numerator, denominator
// pairs.
func Rational(tag uint16, pairs ...uint32) Field {
	return Field{Tag: tag, Type: TypeRational, Values: pairs}
}

// size returns the number of bytes of each of the field's values.
func (f Field) size() int {
	switch f.Type {
	case TypeShort:
		return 2
	case TypeLong:
		return 4
	case TypeRational:
		return 8
	}
	return 1
}

// encode returns the field's count and its values' bytes.
func (f Field) encode(order binary.AppendByteOrder) (count uint32, data []byte) {
	if f.Type == TypeASCII {
		data = append([]byte(f.Text), 0)
	}
	for _, v := range f.Values {
		data = appendUint(data, order, min(f.size(), 4), v) // a rational is two values
	}
	count = f.Count
	if count == 0 {
		count = uint32(len(data) / f.size())
	}
	return count, data
}

// appendUint appends v in size bytes (1, 2 or 4).
func appendUint(b []byte, order binary.AppendByteOrder, size int, v uint32) []byte {
	switch size {
	case 1:
		return append(b, byte(v))
	case 2:
		return order.AppendUint16(b, uint16(v))
	}
	return order.AppendUint32(b, v)
}

// Exif returns the TIFF structure of an EXIF block (what follows ExifHeader
// in the APP1 segment) in the given byte order ("II" for
// binary.LittleEndian, "MM" for binary.BigEndian): IFD0 at offset 8 with the
// fields of ifd0, followed by an Exif IFD and a GPS IFD with their fields
// when those are not empty, with their pointers added to IFD0. Each IFD's
// fields are written in tag order, and its values longer than 4 bytes right
// after it. No IFD names a next one.
//
// To make a broken block, give IFD0 a pointer field of your own (with no
// IFD of that kind for Exif to add), or change the bytes it returns.
func Exif(order binary.AppendByteOrder, ifd0, exifIFD, gpsIFD []Field) []byte {
	const headerLen = 8
	exifAt := headerLen + ifdLen(order, withPointers(ifd0, 0, exifIFD, 0, gpsIFD))
	gpsAt := exifAt
	if len(exifIFD) > 0 {
		gpsAt += ifdLen(order, exifIFD)
	}
	ifd0 = withPointers(ifd0, exifAt, exifIFD, gpsAt, gpsIFD)

	b := []byte("II")
	if order == binary.BigEndian {
		b = []byte("MM")
	}
	b = order.AppendUint16(b, 42)
	b = order.AppendUint32(b, headerLen)
	b = appendIFD(b, order, ifd0)
	for _, sub := range [][]Field{exifIFD, gpsIFD} {
		if len(sub) > 0 {
			b = appendIFD(b, order, sub)
		}
	}
	return b
}

// withPointers returns ifd0 with pointers to the Exif and GPS IFDs at the
// given offsets added, for each of them that has fields.
func withPointers(ifd0 []Field, exifAt int, exifIFD []Field, gpsAt int, gpsIFD []Field) []Field {
	ifd0 = slices.Clone(ifd0)
	if len(exifIFD) > 0 {
		ifd0 = append(ifd0, Long(TagExifIFD, uint32(exifAt)))
	}
	if len(gpsIFD) > 0 {
		ifd0 = append(ifd0, Long(TagGPSIFD, uint32(gpsAt)))
	}
	return ifd0
}

// ifdLen returns the number of bytes appendIFD writes for fields.
func ifdLen(order binary.AppendByteOrder, fields []Field) int {
	return len(appendIFD(make([]byte, 0, 64), order, fields))
}

// appendIFD appends an IFD of fields, located at len(b), and the values of its fields that do not fit in their entries,
// each at an even offset.
func appendIFD(b []byte, order binary.AppendByteOrder, fields []Field) []byte {
	fields = slices.SortedStableFunc(slices.Values(fields), func(a, b Field) int { return int(a.Tag) - int(b.Tag) })
	start := len(b)
	dataAt := start + 2 + 12*len(fields) + 4
	var data []byte
	b = order.AppendUint16(b, uint16(len(fields)))
	for _, f := range fields {
		count, value := f.encode(order)
		b = order.AppendUint16(b, f.Tag)
		b = order.AppendUint16(b, f.Type)
		b = order.AppendUint32(b, count)
		if uint64(count)*uint64(f.size()) > 4 || len(value) > 4 {
			b = order.AppendUint32(b, uint32(dataAt+len(data)))
			data = append(data, value...)
			if len(data)%2 == 1 {
				data = append(data, 0)
			}
			continue
		}
		b = append(b, value...)
		b = append(b, make([]byte, 4-len(value))...)
	}
	b = order.AppendUint32(b, 0) // no next IFD
	return append(b, data...)
}

// ExifFor returns the TIFF structure of an EXIF block that says what meta
// says: DateTimeOriginal (to the second, in UTC) with OffsetTimeOriginal
// "+00:00" in the Exif IFD, and GPSLatitude, GPSLongitude and their refs in
// the GPS IFD when Lat and Lng are both set.
func ExifFor(order binary.AppendByteOrder, meta media.PhotoMeta) []byte {
	var exifIFD, gpsIFD []Field
	if meta.TakenAt != nil {
		exifIFD = []Field{
			ASCII(TagDateTimeOriginal, meta.TakenAt.UTC().Format("2006:01:02 15:04:05")),
			ASCII(TagOffsetTimeOriginal, "+00:00"),
		}
	}
	if meta.Lat != nil && meta.Lng != nil {
		gpsIFD = []Field{
			ASCII(TagGPSLatitudeRef, hemisphere(*meta.Lat, "N", "S")),
			Rational(TagGPSLatitude, dms(*meta.Lat)...),
			ASCII(TagGPSLongitudeRef, hemisphere(*meta.Lng, "E", "W")),
			Rational(TagGPSLongitude, dms(*meta.Lng)...),
		}
	}
	return Exif(order, nil, exifIFD, gpsIFD)
}

// hemisphere returns pos for a coordinate of 0 or more, else neg.
func hemisphere(deg float64, pos, neg string) string {
	if deg < 0 {
		return neg
	}
	return pos
}

// dms returns |deg| as three rationals: whole degrees, whole minutes and
// seconds to a millionth.
func dms(deg float64) []uint32 {
	deg = math.Abs(deg)
	d := math.Floor(deg)
	m := math.Floor((deg - d) * 60)
	s := ((deg-d)*60 - m) * 60
	return []uint32{uint32(d), 1, uint32(m), 1, uint32(math.Round(s * 1e6)), 1e6}
}

// Segment returns a JPEG marker segment: 0xFF, marker, length, payload. It
// fails tb if payload is longer than a segment can hold (65533 bytes).
func Segment(tb testing.TB, marker byte, payload []byte) []byte {
	tb.Helper()
	if len(payload) > maxPayload {
		tb.Fatalf("phototest: segment payload of %d bytes is over %d", len(payload), maxPayload)
	}
	seg := []byte{0xFF, marker}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(payload)+2))
	return append(seg, payload...)
}

// ExifSegment returns the APP1 segment that holds an EXIF block with the
// TIFF structure tiff.
func ExifSegment(tb testing.TB, tiff []byte) []byte {
	tb.Helper()
	return Segment(tb, MarkerAPP1, append([]byte(ExifHeader), tiff...))
}

// PlainJPEG returns a small valid JPEG (16×16 pixels) without metadata, with
// segs (made by Segment) right after its start-of-image marker.
func PlainJPEG(tb testing.TB, segs ...[]byte) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for x := range 16 {
		for y := range 16 {
			img.Set(x, y, color.RGBA{R: uint8(x * 16), G: uint8(y * 16), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		tb.Fatalf("phototest: encoding JPEG: %v", err)
	}
	encoded := buf.Bytes()
	out := slices.Clone(encoded[:2]) // SOI
	for _, seg := range segs {
		out = append(out, seg...)
	}
	return append(out, encoded[2:]...)
}

// JPEG returns a valid JPEG that carries meta in its EXIF block (as ExifFor
// writes it, big-endian as iPhones do), padded with comment segments of
// pseudo-random bytes to exactly size bytes. A size of 0, or any size less
// than 4 bytes over the unpadded JPEG (a few hundred bytes), gives the
// unpadded JPEG.
//
// The same arguments give the same bytes, so photos meant to differ (and so
// to have different SHA-256 keys) need different metas. A 25 MB photo takes
// about a tenth of a second.
func JPEG(tb testing.TB, meta media.PhotoMeta, size int) []byte {
	tb.Helper()
	exifSeg := ExifSegment(tb, ExifFor(binary.BigEndian, meta))
	photo := PlainJPEG(tb, exifSeg)
	need := size - len(photo)
	if need < 4 {
		return photo
	}
	// n comment segments of 4 to 65537 bytes each make exactly need bytes.
	n := (need + maxPayload + 4 - 1) / (maxPayload + 4)
	padLen := need - 4*n
	rng := rand.NewChaCha8([32]byte{'p', 'h', 'o', 't', 'o'})
	head := 2 + len(exifSeg) // SOI and the EXIF segment
	out := make([]byte, 0, size)
	out = append(out, photo[:head]...)
	for i := range n {
		chunk := padLen*(i+1)/n - padLen*i/n
		out = binary.BigEndian.AppendUint16(append(out, 0xFF, MarkerCOM), uint16(chunk+2))
		out = out[:len(out)+chunk]
		rng.Read(out[len(out)-chunk:])
	}
	return append(out, photo[head:]...)
}
