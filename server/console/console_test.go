package console

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
)

// Every message a template or handler names exists in every catalog.
func TestCatalogsAreComplete(t *testing.T) {
	cat, err := loadCatalogs(files)
	require.NoError(t, err)
	used := map[string]bool{}
	literal := regexp.MustCompile(`\bT "([a-z_]+\.[a-z_.]+)"|T\("([a-z_]+\.[a-z_.]+)"|"((?:error|login|users|unvisited|devices|orders|photos|coverage|day|import|targets)\.[a-z_]+)"`)
	collect := func(text string) {
		for _, m := range literal.FindAllStringSubmatch(text, -1) {
			for _, g := range m[1:] {
				if g != "" && !strings.HasSuffix(g, "_") && !strings.HasSuffix(g, ".") { // prefixes of composed ids
					used[g] = true
				}
			}
		}
	}
	require.NoError(t, fs.WalkDir(files, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		collect(string(b))
		return err
	}))
	sources, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, name := range sources {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		collect(string(b))
	}
	for _, s := range orderStatuses {
		used["status."+s] = true
	}
	for _, r := range []string{"rep", "manager", "distributor", "admin"} {
		used["role."+r] = true
	}
	for _, a := range []string{"approve", "confirm", "cancel"} {
		used["orders.action_"+a] = true
	}
	require.Greater(t, len(used), 100, "the scan finds the messages")
	for _, lang := range []string{"en", "zh-Hans"} {
		l := cat.locale(lang, "", time.UTC)
		require.Equal(t, lang, l.Lang)
		for id := range used {
			assert.NotEqual(t, id, l.T(id), "%s lacks %s", lang, id)
		}
	}
}

func TestLocaleFormats(t *testing.T) {
	cat, err := loadCatalogs(files)
	require.NoError(t, err)
	r := 0.66666
	at := time.Date(2026, 11, 23, 8, 5, 0, 0, time.UTC)
	tests := []struct {
		name, cookie, accept  string
		lang, pct, date, time string
		num                   string
	}{
		{"browser English", "", "en-GB,en;q=0.8", "en", "66.7%", "Nov 23, 2026", "Nov 23, 2026 08:05", "12,345"},
		{"browser Chinese", "", "zh-CN,zh;q=0.9,en;q=0.5", "zh-Hans", "66.7%", "2026年11月23日", "2026年11月23日 08:05", "12,345"},
		{"switch beats browser", "en", "zh-CN", "en", "66.7%", "Nov 23, 2026", "Nov 23, 2026 08:05", "12,345"},
		{"unknown language", "", "fr-FR", "en", "66.7%", "Nov 23, 2026", "Nov 23, 2026 08:05", "12,345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := cat.locale(tt.cookie, tt.accept, time.UTC)
			assert.Equal(t, tt.lang, l.Lang)
			assert.Equal(t, tt.pct, l.Pct(&r))
			assert.Equal(t, "—", l.Pct(nil))
			assert.Equal(t, tt.date, l.Date("2026-11-23"))
			assert.Equal(t, tt.time, l.Time(&at))
			assert.Equal(t, tt.num, l.Num(12345))
		})
	}
}

func TestTileOrigin(t *testing.T) {
	tests := []struct{ tiles, want, err string }{
		{DefaultTiles, "https://tile.openstreetmap.org", ""},
		{"https://{s}.tiles.example.cn/{z}/{x}/{y}.png", "https://*.tiles.example.cn", ""},
		{"http://10.0.0.5:8081/styles/basic/{z}/{x}/{y}.png", "http://10.0.0.5:8081", ""},
		{"javascript:alert(1)", "", "must be an http(s) URL"},
		{"tiles/{z}/{x}/{y}.png", "", "must be an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.tiles, func(t *testing.T) {
			got, err := tileOrigin(tt.tiles)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A page's own scripts and styles, Leaflet included, stay under 300 KB.
func TestAssetBudget(t *testing.T) {
	total := 0
	for _, name := range []string{"console.css", "console.js", "map.js", "leaflet.js", "leaflet.css"} {
		b, err := fs.ReadFile(files, "assets/"+name)
		require.NoError(t, err)
		total += len(b)
	}
	t.Logf("the map pages' scripts and styles: %d bytes", total)
	assert.Less(t, total, 300_000)
}

// photoFiles opens photo bytes from memory.
type photoFiles map[string][]byte

func (p photoFiles) Open(_ context.Context, sum string) (io.ReadCloser, media.BlobInfo, error) {
	b, ok := p[sum]
	if !ok {
		return nil, media.BlobInfo{}, errors.New("no such photo")
	}
	return io.NopCloser(bytes.NewReader(b)), media.BlobInfo{Size: int64(len(b))}, nil
}

func TestThumbnails(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 640, 320))
	for x := range 640 {
		img.Set(x, 10, color.RGBA{R: 200, A: 255})
	}
	var jpg, pngb bytes.Buffer
	require.NoError(t, jpeg.Encode(&jpg, img, nil))
	require.NoError(t, png.Encode(&pngb, img))
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/image").Output()
	require.NoError(t, err, "find x/image's test images")
	webp, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "testdata", "blue-purple-pink.lossy.webp"))
	require.NoError(t, err)
	heic := append([]byte{0, 0, 0, 24}, []byte("ftypheic\x00\x00\x00\x00mif1heic")...)
	photos := photoFiles{"jpeg": jpg.Bytes(), "png": pngb.Bytes(), "webp": webp, "heic": heic, "junk": []byte("not an image")}

	th := newThumbnailer()
	tests := []struct {
		name         string
		wantW, wantH int
		none         bool
	}{
		{name: "jpeg", wantW: 192, wantH: 96},
		{name: "png", wantW: 192, wantH: 96},
		{name: "webp", wantW: 192},
		{name: "heic", none: true},
		{name: "junk", none: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := th.make(context.Background(), photos, tt.name)
			if tt.none {
				assert.ErrorIs(t, err, errNoThumbnail)
				return
			}
			require.NoError(t, err)
			got, format, err := image.Decode(bytes.NewReader(out))
			require.NoError(t, err)
			assert.Equal(t, "jpeg", format)
			b := got.Bounds()
			assert.LessOrEqual(t, max(b.Dx(), b.Dy()), 192)
			assert.Equal(t, tt.wantW, b.Dx())
			if tt.wantH != 0 {
				assert.Equal(t, tt.wantH, b.Dy())
			}
		})
	}
	assert.False(t, thumbnailable("image/heic"), "HEIC shows as a file icon")
}
