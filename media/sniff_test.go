package media_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	pt "github.com/fieldsync/fieldsync/media/phototest"
)

// ftyp returns an ISO-BMFF ftyp box with the given brands, followed by the
// start of a meta box.
func ftyp(major string, compatible ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(16+4*len(compatible)))
	b = append(b, "ftyp"+major+"\x00\x00\x00\x00"...)
	for _, c := range compatible {
		b = append(b, c...)
	}
	return append(b, "\x00\x00\x00\x44meta"...)
}

func TestSniffContentType(t *testing.T) {
	var pngBuf bytes.Buffer
	require.NoError(t, png.Encode(&pngBuf, image.NewGray(image.Rect(0, 0, 2, 2))))
	iphone := ftyp("heic", "mif1", "heic")

	tests := []struct {
		name string
		head []byte
		want string
	}{
		{"jpeg", pt.PlainJPEG(t), "image/jpeg"},
		{"jpeg signature only", []byte{0xFF, 0xD8, 0xFF}, "image/jpeg"},
		{"jpeg with exif", pt.JPEG(t, media.PhotoMeta{}, 0), "image/jpeg"},
		{"png", pngBuf.Bytes(), "image/png"},
		{"webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), "image/webp"},
		{"heic iphone", iphone, "image/heic"},
		{"heic major heix", ftyp("heix", "mif1"), "image/heic"},
		{"heic major hevc sequence", ftyp("hevc", "msf1"), "image/heic"},
		{"heic major heim", ftyp("heim"), "image/heic"},
		{"heic major heis", ftyp("heis"), "image/heic"},
		{"heic major hevx", ftyp("hevx"), "image/heic"},
		{"mif1 with heic compatible", ftyp("mif1", "mif1", "miaf", "MiHB", "heic"), "image/heic"},
		{"msf1 with hevc compatible", ftyp("msf1", "iso8", "hevc"), "image/heic"},
		{"heic brand 12th compatible", ftyp("mif1", "a001", "a002", "a003", "a004", "a005", "a006", "a007", "a008", "a009", "a010", "a011", "heic"), "image/heic"},

		{"empty", nil, ""},
		{"one byte", []byte{0xFF}, ""},
		{"jpeg cut short", []byte{0xFF, 0xD8}, ""},
		{"png cut short", pngBuf.Bytes()[:7], ""},
		{"png wrong byte", append([]byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x00}, 0), ""},
		{"webp cut short", []byte("RIFF\x24\x00\x00\x00WEB"), ""},
		{"riff wave", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ""},
		{"heic cut short", iphone[:11], ""},
		{"mif1 alone", ftyp("mif1", "mif1"), ""},
		{"avif", ftyp("avif", "mif1", "miaf", "MA1B"), ""},
		{"mp4 video", ftyp("isom", "isom", "iso2", "avc1", "mp41"), ""},
		{"quicktime", ftyp("qt  ", "qt  "), ""},
		{"heic brand past box end", append(binary.BigEndian.AppendUint32(nil, 16), "ftypmif1\x00\x00\x00\x00heic"...), ""},
		{"heic brand past SniffLen", ftyp("mif1", "a001", "a002", "a003", "a004", "a005", "a006", "a007", "a008", "a009", "a010", "a011", "a012", "heic"), ""},
		{"ftyp box size 0", append([]byte{0, 0, 0, 0}, iphone[4:]...), ""},
		{"ftyp box size 1", append([]byte{0, 0, 0, 1}, iphone[4:]...), ""},
		{"ftyp not at offset 4", append([]byte{0}, iphone...), ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), ""},
		{"text", []byte("hello, this is not a photo at all"), ""},
		{"pdf", []byte("%PDF-1.7\n"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := media.SniffContentType(tc.head)
			assert.Equal(t, tc.want, got, "head % x", tc.head[:min(len(tc.head), 24)])
		})
	}
}

func TestSniffContentTypeUsesSniffLen(t *testing.T) {
	for _, head := range [][]byte{
		pt.JPEG(t, media.PhotoMeta{}, 0),
		ftyp("heic", "mif1", "heic"),
		ftyp("mif1", "a001", "a002", "a003", "a004", "a005", "a006", "a007", "a008", "a009", "a010", "a011", "heic"),
	} {
		n := min(len(head), media.SniffLen)
		assert.Equal(t, media.SniffContentType(head), media.SniffContentType(head[:n]), "head % x", head[:n])
		assert.NotEmpty(t, media.SniffContentType(head[:n]))
	}
}
