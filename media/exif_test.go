package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image/jpeg"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	pt "github.com/fieldsync/fieldsync/media/phototest"
)

// byteOrders are the two byte orders of TIFF structures: "II" and "MM".
var byteOrders = []struct {
	name  string
	order binary.AppendByteOrder
}{
	{"II", binary.LittleEndian},
	{"MM", binary.BigEndian},
}

// exifJPEG returns a small JPEG whose EXIF block has the TIFF structure tiff.
func exifJPEG(tb testing.TB, tiff []byte) []byte {
	tb.Helper()
	return pt.PlainJPEG(tb, pt.ExifSegment(tb, tiff))
}

// Fields of the Exif and GPS IFDs for the tests.
var (
	taken       = pt.ASCII(pt.TagDateTimeOriginal, "2024:03:05 14:07:09")
	plus0530    = pt.ASCII(pt.TagOffsetTimeOriginal, "+05:30")
	latSouth    = pt.ASCII(pt.TagGPSLatitudeRef, "S")
	latNorth    = pt.ASCII(pt.TagGPSLatitudeRef, "N")
	lngEast     = pt.ASCII(pt.TagGPSLongitudeRef, "E")
	lngWest     = pt.ASCII(pt.TagGPSLongitudeRef, "W")
	sydneyLat   = pt.Rational(pt.TagGPSLatitude, 33, 1, 51, 1, 3519, 100)
	sydneyLng   = pt.Rational(pt.TagGPSLongitude, 151, 1, 12, 1, 4080, 100)
	sydneyGPS   = []pt.Field{latSouth, sydneyLat, lngEast, sydneyLng}
	pittsburgh  = []pt.Field{latNorth, pt.Rational(pt.TagGPSLatitude, 40, 1, 26, 1, 4632, 100), lngWest, pt.Rational(pt.TagGPSLongitude, 79, 1, 58, 1, 56, 1)}
	sydneyLatDe = -(33 + 51.0/60 + 35.19/3600)
	sydneyLngDe = 151 + 12.0/60 + 40.80/3600
)

// wantMeta is what a test expects of ReadPhotoMeta, with plain values.
type wantMeta struct {
	takenAt  string // RFC 3339, "" for none
	lat, lng float64
	noGPS    bool
}

// check compares got with w.
func (w wantMeta) check(t *testing.T, got media.PhotoMeta) {
	t.Helper()
	if w.takenAt == "" {
		assert.Nil(t, got.TakenAt, "TakenAt")
	} else if assert.NotNil(t, got.TakenAt, "TakenAt") {
		assert.Equal(t, w.takenAt, got.TakenAt.Format(time.RFC3339), "TakenAt")
		assert.Equal(t, time.UTC, got.TakenAt.Location(), "TakenAt location")
	}
	if w.noGPS {
		assert.Nil(t, got.Lat, "Lat")
		assert.Nil(t, got.Lng, "Lng")
		return
	}
	if assert.NotNil(t, got.Lat, "Lat") && assert.NotNil(t, got.Lng, "Lng") {
		assert.InDelta(t, w.lat, *got.Lat, 1e-12, "Lat")
		assert.InDelta(t, w.lng, *got.Lng, 1e-12, "Lng")
	}
}

func TestReadPhotoMeta(t *testing.T) {
	tests := []struct {
		name                  string
		ifd0, exifIFD, gpsIFD []pt.Field
		want                  wantMeta
	}{
		{
			name: "time with offset and southern eastern position", exifIFD: []pt.Field{taken, plus0530}, gpsIFD: sydneyGPS,
			want: wantMeta{takenAt: "2024-03-05T08:37:09Z", lat: sydneyLatDe, lng: sydneyLngDe},
		},
		{
			name: "northern western position", gpsIFD: pittsburgh,
			want: wantMeta{lat: 40 + 26.0/60 + 46.32/3600, lng: -(79 + 58.0/60 + 56.0/3600)},
		},
		{
			name: "no gps", exifIFD: []pt.Field{taken, plus0530},
			want: wantMeta{takenAt: "2024-03-05T08:37:09Z", noGPS: true},
		},
		{
			name: "no offset is utc", exifIFD: []pt.Field{taken}, gpsIFD: sydneyGPS,
			want: wantMeta{takenAt: "2024-03-05T14:07:09Z", lat: sydneyLatDe, lng: sydneyLngDe},
		},
		{
			name: "negative offset", exifIFD: []pt.Field{taken, pt.ASCII(pt.TagOffsetTimeOriginal, "-04:00")},
			want: wantMeta{takenAt: "2024-03-05T18:07:09Z", noGPS: true},
		},
		{
			name: "offset across midnight", exifIFD: []pt.Field{pt.ASCII(pt.TagDateTimeOriginal, "2024:01:01 01:00:00"), pt.ASCII(pt.TagOffsetTimeOriginal, "+09:00")},
			want: wantMeta{takenAt: "2023-12-31T16:00:00Z", noGPS: true},
		},
		{
			name: "invalid offset is utc", exifIFD: []pt.Field{taken, pt.ASCII(pt.TagOffsetTimeOriginal, "+25:00")},
			want: wantMeta{takenAt: "2024-03-05T14:07:09Z", noGPS: true},
		},
		{
			name: "offset not in digits is utc", exifIFD: []pt.Field{taken, pt.ASCII(pt.TagOffsetTimeOriginal, "+0a:00")},
			want: wantMeta{takenAt: "2024-03-05T14:07:09Z", noGPS: true},
		},
		{
			name: "blank offset is utc", exifIFD: []pt.Field{taken, pt.ASCII(pt.TagOffsetTimeOriginal, "      ")},
			want: wantMeta{takenAt: "2024-03-05T14:07:09Z", noGPS: true},
		},
		{
			name: "offset for DateTime does not apply to DateTimeOriginal", exifIFD: []pt.Field{taken, pt.ASCII(pt.TagOffsetTime, "+05:30")},
			want: wantMeta{takenAt: "2024-03-05T14:07:09Z", noGPS: true},
		},
		{
			name: "DateTime when no DateTimeOriginal", ifd0: []pt.Field{pt.ASCII(pt.TagDateTime, "2023:11:23 08:05:00")}, exifIFD: []pt.Field{pt.ASCII(pt.TagOffsetTime, "+01:00")},
			want: wantMeta{takenAt: "2023-11-23T07:05:00Z", noGPS: true},
		},
		{
			name: "DateTime without Exif IFD", ifd0: []pt.Field{pt.ASCII(pt.TagDateTime, "2023:11:23 08:05:00")},
			want: wantMeta{takenAt: "2023-11-23T08:05:00Z", noGPS: true},
		},
		{
			name: "DateTimeOriginal before DateTime", ifd0: []pt.Field{pt.ASCII(pt.TagDateTime, "2025:01:01 00:00:00")}, exifIFD: []pt.Field{taken},
			want: wantMeta{takenAt: "2024-03-05T14:07:09Z", noGPS: true},
		},
		{
			name: "unset time", exifIFD: []pt.Field{pt.ASCII(pt.TagDateTimeOriginal, "    :  :     :  :  ")},
			want: wantMeta{noGPS: true},
		},
		{
			name: "impossible date", exifIFD: []pt.Field{pt.ASCII(pt.TagDateTimeOriginal, "2024:02:30 10:00:00")},
			want: wantMeta{noGPS: true},
		},
		{
			name: "time of wrong type", exifIFD: []pt.Field{{Tag: pt.TagDateTimeOriginal, Type: pt.TypeLong, Values: []uint32{1, 2, 3, 4, 5}}},
			want: wantMeta{noGPS: true},
		},
		{name: "empty IFD0", want: wantMeta{noGPS: true}},
		{
			name: "pointers of wrong type", ifd0: []pt.Field{pt.ASCII(pt.TagExifIFD, "xyz"), {Tag: pt.TagGPSIFD, Type: pt.TypeLong, Values: []uint32{8, 8}}},
			want: wantMeta{noGPS: true},
		},
		{
			name: "pointers of 0", ifd0: []pt.Field{pt.Long(pt.TagExifIFD, 0), pt.Long(pt.TagGPSIFD, 0)},
			want: wantMeta{noGPS: true},
		},
		{
			name: "latitude without ref", gpsIFD: []pt.Field{sydneyLat, lngEast, sydneyLng},
			want: wantMeta{noGPS: true},
		},
		{
			name: "unknown ref", gpsIFD: []pt.Field{pt.ASCII(pt.TagGPSLatitudeRef, "X"), sydneyLat, lngEast, sydneyLng},
			want: wantMeta{noGPS: true},
		},
		{
			name: "longitude missing", gpsIFD: []pt.Field{latSouth, sydneyLat},
			want: wantMeta{noGPS: true},
		},
		{
			name: "latitude out of range", gpsIFD: []pt.Field{latNorth, pt.Rational(pt.TagGPSLatitude, 90, 1, 0, 1, 1, 100), lngEast, sydneyLng},
			want: wantMeta{noGPS: true},
		},
		{
			name: "longitude out of range", gpsIFD: []pt.Field{latSouth, sydneyLat, lngWest, pt.Rational(pt.TagGPSLongitude, 180, 1, 1, 1, 0, 1)},
			want: wantMeta{noGPS: true},
		},
		{
			name: "limits of range", gpsIFD: []pt.Field{latSouth, pt.Rational(pt.TagGPSLatitude, 90, 1, 0, 1, 0, 1), lngWest, pt.Rational(pt.TagGPSLongitude, 180, 1, 0, 1, 0, 1)},
			want: wantMeta{lat: -90, lng: -180},
		},
		{
			name: "zero denominator", gpsIFD: []pt.Field{latSouth, pt.Rational(pt.TagGPSLatitude, 33, 1, 51, 0, 0, 1), lngEast, sydneyLng},
			want: wantMeta{noGPS: true},
		},
		{
			name: "two rationals", gpsIFD: []pt.Field{latSouth, pt.Rational(pt.TagGPSLatitude, 33, 1, 51, 1), lngEast, sydneyLng},
			want: wantMeta{noGPS: true},
		},
		{
			name: "latitude of wrong type", gpsIFD: []pt.Field{latSouth, {Tag: pt.TagGPSLatitude, Type: pt.TypeShort, Values: []uint32{33, 51, 35}}, lngEast, sydneyLng},
			want: wantMeta{noGPS: true},
		},
	}
	for _, bo := range byteOrders {
		for _, tc := range tests {
			t.Run(bo.name+"/"+tc.name, func(t *testing.T) {
				photo := exifJPEG(t, pt.Exif(bo.order, tc.ifd0, tc.exifIFD, tc.gpsIFD))
				got, err := media.ReadPhotoMeta(bytes.NewReader(photo))
				require.NoError(t, err)
				tc.want.check(t, got)
			})
		}
	}
}

func TestReadPhotoMetaFindsExif(t *testing.T) {
	tiff := pt.Exif(binary.BigEndian, nil, []pt.Field{taken, plus0530}, sydneyGPS)
	full := wantMeta{takenAt: "2024-03-05T08:37:09Z", lat: sydneyLatDe, lng: sydneyLngDe}
	xmp := pt.Segment(t, pt.MarkerAPP1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"))
	jfif := pt.Segment(t, 0xE0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	comment := pt.Segment(t, pt.MarkerCOM, bytes.Repeat([]byte{0xFF}, 65533))

	tests := []struct {
		name  string
		photo []byte
		want  wantMeta
	}{
		{"after JFIF and XMP segments", pt.PlainJPEG(t, jfif, xmp, comment, pt.ExifSegment(t, tiff)), full},
		{"after fill bytes", pt.PlainJPEG(t, []byte{0xFF, 0xFF, 0xFF}, pt.ExifSegment(t, tiff)), full},
		{"first of two EXIF segments", pt.PlainJPEG(t, pt.ExifSegment(t, tiff), pt.ExifSegment(t, pt.Exif(binary.LittleEndian, nil, nil, pittsburgh))), full},
		{"segment only, no image", append([]byte{0xFF, 0xD8}, pt.ExifSegment(t, tiff)...), full},
		{"no EXIF", pt.PlainJPEG(t), wantMeta{noGPS: true}},
		{"no EXIF with JFIF and XMP", pt.PlainJPEG(t, jfif, xmp), wantMeta{noGPS: true}},
		{"APP1 too short for EXIF header", pt.PlainJPEG(t, pt.Segment(t, pt.MarkerAPP1, []byte("Exi"))), wantMeta{noGPS: true}},
		{"EXIF after image data", append(pt.PlainJPEG(t), pt.ExifSegment(t, tiff)...), wantMeta{noGPS: true}},
		{"EXIF past MaxMetaBytes", pt.PlainJPEG(t, comment, comment, comment, comment, pt.ExifSegment(t, tiff)), wantMeta{noGPS: true}},
		{"SOI only", []byte{0xFF, 0xD8}, wantMeta{noGPS: true}},
		{"bytes after SOI are no marker", []byte{0xFF, 0xD8, 0x00, 0x01, 0x02}, wantMeta{noGPS: true}},
		{"segment length below 2", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01, 'E', 'x', 'i', 'f'}, wantMeta{noGPS: true}},
		{"JPEG cut in a segment before EXIF", pt.PlainJPEG(t, comment)[:1000], wantMeta{noGPS: true}},
		{"empty", nil, wantMeta{noGPS: true}},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), wantMeta{noGPS: true}},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), wantMeta{noGPS: true}},
		{"raw TIFF", tiff, wantMeta{noGPS: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(tc.photo)}
			got, err := media.ReadPhotoMeta(r)
			require.NoError(t, err)
			tc.want.check(t, got)
			assert.LessOrEqual(t, r.n, int64(media.MaxMetaBytes), "bytes read")
		})
	}
}

func TestReadPhotoMetaBrokenExif(t *testing.T) {
	le := binary.LittleEndian
	valid := func() []byte { return pt.Exif(le, nil, []pt.Field{taken, plus0530}, sydneyGPS) }
	// In valid, IFD0 at 8 has 2 entries (Exif and GPS pointers), so the
	// Exif IFD is at 8+2+24+4 = 38 and its DateTimeOriginal entry at 40.
	const exifIFDAt, takenEntryAt = 38, 40
	patch := func(at int, v ...byte) []byte {
		b := valid()
		copy(b[at:], v)
		return b
	}
	patch32 := func(at int, v uint32) []byte { return patch(at, le.AppendUint32(nil, v)...) }
	pointerTo := func(off uint32) []byte {
		return pt.Exif(le, []pt.Field{pt.Long(pt.TagGPSIFD, off)}, nil, nil)
	}

	tests := []struct {
		name string
		tiff []byte
	}{
		{"empty block", nil},
		{"header cut short", valid()[:7]},
		{"unknown byte order", patch(0, 'X', 'X')},
		{"mixed byte order", patch(0, 'I', 'M')},
		{"wrong magic number", patch(2, 43)},
		{"IFD0 past the end", patch32(4, 0xFFFF)},
		{"IFD0 at the very end", patch32(4, uint32(len(valid())))},
		{"IFD0 offset max uint32", patch32(4, 0xFFFFFFFF)},
		{"huge IFD0 count", patch(8, 0xFF, 0xFF)},
		{"huge Exif IFD count", patch(exifIFDAt, 0xFF, 0xFF)},
		{"Exif IFD cut short", valid()[:exifIFDAt+20]},
		{"GPS IFD past the end", pointerTo(1 << 20)},
		{"GPS IFD offset max uint32", pointerTo(0xFFFFFFFF)},
		{"time value past the end", patch32(takenEntryAt+8, 0xFFFFFFF0)},
		{"huge time count", patch32(takenEntryAt+4, 0xFFFFFFFF)},
		{"huge latitude count", pt.Exif(le, nil, nil, []pt.Field{latSouth, {Tag: pt.TagGPSLatitude, Type: pt.TypeRational, Count: 0x20000001, Values: []uint32{33, 1, 51, 1, 0, 1}}})},
		{"huge latitude ref count", pt.Exif(le, nil, nil, []pt.Field{{Tag: pt.TagGPSLatitudeRef, Type: pt.TypeASCII, Count: 0xFFFFFFFF, Text: "S"}, sydneyLat})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := media.ReadPhotoMeta(bytes.NewReader(exifJPEG(t, tc.tiff)))
			assert.ErrorIs(t, err, media.ErrInvalidExif)
			assert.Equal(t, media.PhotoMeta{}, got)
		})
	}

	t.Run("APP1 segment cut short", func(t *testing.T) {
		photo := exifJPEG(t, valid())
		for _, n := range []int{12, 20, 60, 100} {
			got, err := media.ReadPhotoMeta(bytes.NewReader(photo[:n]))
			assert.ErrorIs(t, err, media.ErrInvalidExif, "first %d bytes", n)
			assert.Equal(t, media.PhotoMeta{}, got, "first %d bytes", n)
		}
	})
	t.Run("every cut of the block", func(t *testing.T) {
		for _, bo := range byteOrders {
			tiff := pt.Exif(bo.order, []pt.Field{pt.ASCII(pt.TagDateTime, "2023:11:23 08:05:00")}, []pt.Field{taken, plus0530}, pittsburgh)
			for n := range len(tiff) {
				got, err := media.ReadPhotoMeta(bytes.NewReader(exifJPEG(t, tiff[:n])))
				if err != nil {
					assert.ErrorIs(t, err, media.ErrInvalidExif, "%s: first %d bytes", bo.name, n)
					assert.Equal(t, media.PhotoMeta{}, got, "%s: first %d bytes", bo.name, n)
				}
			}
		}
	})
}

func TestReadPhotoMetaPointerLoops(t *testing.T) {
	le := binary.LittleEndian
	dateTime := pt.ASCII(pt.TagDateTime, "2023:11:23 08:05:00")
	nextIFDToItself := pt.Exif(le, []pt.Field{dateTime}, nil, nil)
	le.PutUint32(nextIFDToItself[8+2+12:], 8) // IFD0's next IFD is IFD0
	exifIFDToGPS := pt.Exif(le, nil, []pt.Field{taken}, sydneyGPS)
	le.PutUint32(exifIFDToGPS[8+2+12+8:], 8) // the GPS pointer (2nd entry) names IFD0

	tests := []struct {
		name string
		tiff []byte
		want wantMeta
	}{
		{
			name: "Exif IFD is IFD0",
			tiff: pt.Exif(le, []pt.Field{dateTime, pt.Long(pt.TagExifIFD, 8)}, nil, nil),
			want: wantMeta{takenAt: "2023-11-23T08:05:00Z", noGPS: true},
		},
		{
			name: "Exif and GPS IFDs are IFD0",
			tiff: pt.Exif(le, []pt.Field{dateTime, pt.Long(pt.TagExifIFD, 8), pt.Long(pt.TagGPSIFD, 8)}, nil, nil),
			want: wantMeta{takenAt: "2023-11-23T08:05:00Z", noGPS: true},
		},
		{name: "next IFD is itself", tiff: nextIFDToItself, want: wantMeta{takenAt: "2023-11-23T08:05:00Z", noGPS: true}},
		{name: "GPS IFD is IFD0", tiff: exifIFDToGPS, want: wantMeta{takenAt: "2024-03-05T14:07:09Z", noGPS: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				got, err := media.ReadPhotoMeta(bytes.NewReader(exifJPEG(t, tc.tiff)))
				assert.NoError(t, err)
				tc.want.check(t, got)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadPhotoMeta did not return")
			}
		})
	}
}

func TestReadPhotoMetaReader(t *testing.T) {
	photo := pt.JPEG(t, media.PhotoMeta{TakenAt: new(time.Date(2024, 3, 5, 8, 37, 9, 0, time.UTC))}, 0)
	errBoom := errors.New("boom")

	t.Run("one byte at a time", func(t *testing.T) {
		got, err := media.ReadPhotoMeta(iotest.OneByteReader(bytes.NewReader(photo)))
		require.NoError(t, err)
		wantMeta{takenAt: "2024-03-05T08:37:09Z", noGPS: true}.check(t, got)
	})
	t.Run("read error", func(t *testing.T) {
		for _, n := range []int{0, 1, 2, 5, 30, len(photo)} {
			got, err := media.ReadPhotoMeta(io.MultiReader(bytes.NewReader(photo[:n]), iotest.ErrReader(errBoom)))
			if n == len(photo) {
				assert.NoError(t, err, "EXIF block read before the error")
				continue
			}
			assert.ErrorIs(t, err, errBoom, "error after %d bytes", n)
			assert.NotErrorIs(t, err, media.ErrInvalidExif, "error after %d bytes", n)
			assert.Equal(t, media.PhotoMeta{}, got, "error after %d bytes", n)
		}
	})
	t.Run("endless input", func(t *testing.T) {
		endless := &countingReader{r: io.MultiReader(bytes.NewReader([]byte{0xFF, 0xD8}), repeatReader(0xFF))}
		got, err := media.ReadPhotoMeta(endless)
		require.NoError(t, err)
		assert.Equal(t, media.PhotoMeta{}, got)
		assert.Equal(t, int64(media.MaxMetaBytes), endless.n, "bytes read")
	})
}

func TestJPEG(t *testing.T) {
	meta := media.PhotoMeta{
		TakenAt: new(time.Date(2026, 11, 23, 8, 5, 7, 0, time.UTC)),
		Lat:     new(-33.856),
		Lng:     new(-70.6483),
	}
	small := len(pt.JPEG(t, meta, 0))
	tests := []struct {
		name string
		meta media.PhotoMeta
		size int
		want int // length, 0 to leave unchecked
	}{
		{"small", meta, 0, small},
		{"smaller than unpadded", meta, 10, small},
		{"3 bytes over unpadded", meta, small + 3, small},
		{"4 bytes over unpadded", meta, small + 4, small + 4},
		{"one full comment segment", meta, small + 65537, small + 65537},
		{"one byte over a full segment", meta, small + 65538, small + 65538},
		{"1 MB", meta, 1 << 20, 1 << 20},
		{"25 MB", meta, 25 << 20, 25 << 20},
		{"no metadata", media.PhotoMeta{}, 3 << 20, 3 << 20},
		{"time only", media.PhotoMeta{TakenAt: meta.TakenAt}, 0, 0},
		{"position only", media.PhotoMeta{Lat: new(0.0), Lng: new(179.999)}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			photo := pt.JPEG(t, tc.meta, tc.size)
			if tc.want != 0 {
				assert.Len(t, photo, tc.want)
			}
			_, err := jpeg.Decode(bytes.NewReader(photo))
			require.NoError(t, err, "decoding the JPEG")

			got, err := media.ReadPhotoMeta(bytes.NewReader(photo))
			require.NoError(t, err)
			assert.Equal(t, tc.meta.TakenAt, got.TakenAt)
			if tc.meta.Lat == nil {
				assert.Nil(t, got.Lat)
				assert.Nil(t, got.Lng)
				return
			}
			require.NotNil(t, got.Lat)
			require.NotNil(t, got.Lng)
			assert.InDelta(t, *tc.meta.Lat, *got.Lat, 1e-9, "Lat")
			assert.InDelta(t, *tc.meta.Lng, *got.Lng, 1e-9, "Lng")
		})
	}
}

func TestExifForByteOrders(t *testing.T) {
	meta := media.PhotoMeta{TakenAt: new(time.Date(2024, 3, 5, 8, 37, 9, 0, time.UTC)), Lat: new(51.5007), Lng: new(-0.1246)}
	for _, bo := range byteOrders {
		t.Run(bo.name, func(t *testing.T) {
			tiff := pt.ExifFor(bo.order, meta)
			assert.Equal(t, bo.name, string(tiff[:2]))
			got, err := media.ReadPhotoMeta(bytes.NewReader(exifJPEG(t, tiff)))
			require.NoError(t, err)
			wantMeta{takenAt: "2024-03-05T08:37:09Z", lat: 51.5007, lng: -0.1246}.check(t, got)
		})
	}
}

func FuzzReadPhotoMeta(f *testing.F) {
	le, be := binary.LittleEndian, binary.BigEndian
	segmentOnly := func(tiff []byte) []byte { return append([]byte{0xFF, 0xD8}, pt.ExifSegment(f, tiff)...) }
	f.Add(segmentOnly(pt.Exif(le, nil, []pt.Field{taken, plus0530}, sydneyGPS)))
	f.Add(segmentOnly(pt.Exif(be, []pt.Field{pt.ASCII(pt.TagDateTime, "2023:11:23 08:05:00")}, []pt.Field{pt.ASCII(pt.TagOffsetTime, "-03:00")}, pittsburgh)))
	f.Add(segmentOnly(pt.Exif(be, []pt.Field{pt.Long(pt.TagExifIFD, 8), pt.Long(pt.TagGPSIFD, 8)}, nil, nil)))
	f.Add(segmentOnly(pt.Exif(le, nil, nil, []pt.Field{latSouth, {Tag: pt.TagGPSLatitude, Type: pt.TypeRational, Count: 0x20000001, Values: []uint32{33, 1}}})))
	f.Add(segmentOnly(nil))
	f.Add(pt.JPEG(f, media.PhotoMeta{TakenAt: new(time.Date(2024, 3, 5, 8, 37, 9, 0, time.UTC)), Lat: new(-33.5), Lng: new(151.25)}, 0))
	f.Add(pt.PlainJPEG(f))
	f.Add([]byte{})
	f.Add([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := &countingReader{r: bytes.NewReader(data)}
		got, err := media.ReadPhotoMeta(r)
		if r.n > media.MaxMetaBytes {
			t.Fatalf("read %d bytes, more than MaxMetaBytes", r.n)
		}
		if err != nil {
			if !errors.Is(err, media.ErrInvalidExif) {
				t.Fatalf("error %v does not wrap ErrInvalidExif", err)
			}
			if got != (media.PhotoMeta{}) {
				t.Fatalf("meta %+v with error %v", got, err)
			}
			return
		}
		if got.TakenAt != nil && got.TakenAt.Location() != time.UTC {
			t.Fatalf("TakenAt %v not in UTC", got.TakenAt)
		}
		if (got.Lat == nil) != (got.Lng == nil) {
			t.Fatalf("only one of Lat %v and Lng %v", got.Lat, got.Lng)
		}
		if got.Lat != nil && (*got.Lat < -90 || *got.Lat > 90 || *got.Lng < -180 || *got.Lng > 180) {
			t.Fatalf("position %v, %v out of range", *got.Lat, *got.Lng)
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// repeatReader is an endless reader of one byte.
type repeatReader byte

func (b repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
