package media

import (
	"bytes"
	"encoding/binary"
)

// SniffLen is how many leading bytes of a file SniffContentType looks at:
// enough for the JPEG, PNG and WebP signatures and for an ISO-BMFF ftyp box
// with up to 12 compatible brands. Fewer bytes still serve when the file is
// shorter.
const SniffLen = 64

// The photo content types SniffContentType reports.
const (
	contentTypeJPEG = "image/jpeg"
	contentTypePNG  = "image/png"
	contentTypeWebP = "image/webp"
	contentTypeHEIC = "image/heic"
)

var (
	jpegSignature = []byte{0xFF, 0xD8, 0xFF}
	pngSignature  = []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}
)

// SniffContentType returns the photo content type that the first bytes of a
// file show ("image/jpeg", "image/png", "image/webp" or "image/heic"), or ""
// when they show none of them. It looks at no more
// than SniffLen bytes of head; a head cut short of a signature shows nothing.
//
// A file is HEIC when it starts with an ISO-BMFF ftyp box whose major brand,
// or one of whose compatible brands, is an HEVC-coded HEIF brand: heic, heix,
// hevc, hevx, heim or heis. The generic HEIF brands mif1 and msf1 are not
// enough on their own: as the major brand they are HEIC only when an HEVC
// brand is among the compatible ones (as phones write "mif1" + "heic"), since
// AVIF files and HEIF files of other codecs carry them too.
func SniffContentType(head []byte) string {
	if len(head) > SniffLen {
		head = head[:SniffLen]
	}
	switch {
	case bytes.HasPrefix(head, jpegSignature):
		return contentTypeJPEG
	case bytes.HasPrefix(head, pngSignature):
		return contentTypePNG
	case len(head) >= 12 && string(head[0:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return contentTypeWebP
	case isHEIC(head):
		return contentTypeHEIC
	}
	return ""
}

// isHEIC reports whether head starts with an ftyp box that names an HEVC-coded
// HEIF brand, as SniffContentType describes.
func isHEIC(head []byte) bool {
	// size(4) "ftyp" major_brand(4) minor_version(4) compatible_brands(4 each)
	if len(head) < 12 || string(head[4:8]) != "ftyp" {
		return false
	}
	size := binary.BigEndian.Uint32(head[0:4])
	if size < 16 { // also refuses 0 (to end of file) and 1 (64-bit size)
		return false
	}
	if hevcBrand(head[8:12]) {
		return true
	}
	end := min(uint64(size), uint64(len(head)))
	for off := uint64(16); off+4 <= end; off += 4 {
		if hevcBrand(head[off : off+4]) {
			return true
		}
	}
	return false
}

// hevcBrand reports whether brand is an ftyp brand of HEVC-coded HEIF images
// or image sequences.
func hevcBrand(brand []byte) bool {
	switch string(brand) {
	case "heic", "heix", "hevc", "hevx", "heim", "heis":
		return true
	}
	return false
}
