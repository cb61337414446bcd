// Package filestore is a media.BlobStore in a local folder: the embedded
// default, and what tests use when MinIO is not needed.
//
// An object with key k is the file <dir>/k. The file starts with a fixed
// 256-byte header that records the content type, followed by the object's
// bytes, so that one atomic rename publishes bytes and content type together
// and no sidecar can disagree with its object. Put writes to a temporary file
// under <dir>/.tmp, holding a lock on it, fsyncs it and renames it into
// place; a failed Put removes its temporary file, and SweepTemp (at Open and
// from the photo sweeper) removes those of processes that died mid-Put. Keys never start a segment with ".", so nothing under
// .tmp can be mistaken for an object.
//
// A folder cannot hold both a key and keys below it ("a" and "a/b"): Put
// fails for the second. Content-addressed photo keys never collide that way.
package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/fieldsync/fieldsync/media"
)

// Header layout: a magic line, the content type, padding, a final newline.
const (
	headerSize  = 256
	headerMagic = "fieldsync-blob 1\n"
	tmpDirName  = ".tmp"
)

// Store is a media.BlobStore in a folder. It is safe for concurrent use,
// also by several processes sharing the folder.
type Store struct {
	root string
}

var _ media.BlobStore = (*Store)(nil)

// Open returns a Store keeping its objects in dir, creating dir if needed.
func Open(dir string) (*Store, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore.Open: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, tmpDirName), 0o755); err != nil {
		return nil, fmt.Errorf("filestore.Open: %w", err)
	}
	s := &Store{root: root}
	if _, err := s.SweepTemp(context.Background()); err != nil {
		return nil, fmt.Errorf("filestore.Open: %w", err)
	}
	return s, nil
}

// SweepTemp removes the temporary files of Puts that will never finish:
// those of a process that died mid-Put (a crash, a kill). A Put holds a
// lock on its temporary file until the file is in place, and the lock
// goes with its process, so a file nobody holds is debris; one whose
// writer cannot be told (where locks are not available) is debris once it
// has not been written to for an hour. Open sweeps; so does
// media.Photos' sweeper. It returns how many files went.
func (s *Store) SweepTemp(ctx context.Context) (int, error) {
	dir := filepath.Join(s.root, tmpDirName)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("filestore.SweepTemp: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("filestore.SweepTemp: %w", err)
		}
		name := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() || !abandoned(name) {
			continue
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("filestore.SweepTemp: %w", err)
		}
		removed++
	}
	return removed, nil
}

// path returns the file that holds key, refusing invalid keys.
func (s *Store) path(key string) (string, error) {
	if err := media.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put stores the object; see media.BlobStore.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := s.put(ctx, key, r, size, contentType); err != nil {
		return fmt.Errorf("filestore.Put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (err error) {
	dst, err := s.path(key)
	if err != nil {
		return err
	}
	header, err := encodeHeader(contentType)
	if err != nil {
		return err
	}
	tmpDir := filepath.Join(s.root, tmpDirName)
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, "put-*")
	if err != nil {
		return err
	}
	// Held until the file is in place or gone: see SweepTemp.
	if err := holdLock(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
		f.Close()
	}()
	if _, err := f.Write(header); err != nil {
		return err
	}
	if _, err := io.Copy(f, media.ExactSize(r, size)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	// The object is in place; make the rename durable. A failure here
	// cannot be reported without lying that nothing was stored, and it does
	// not happen short of a failing disk, so it is ignored.
	syncDir(filepath.Dir(dst))
	return nil
}

// syncDir fsyncs a directory so that a rename into it survives a crash.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// Stat returns the object's info; see media.BlobStore.
func (s *Store) Stat(ctx context.Context, key string) (media.BlobInfo, error) {
	f, info, err := s.open(key)
	if err != nil {
		return media.BlobInfo{}, fmt.Errorf("filestore.Stat %s: %w", key, err)
	}
	f.Close()
	return info, nil
}

// Open returns a reader of the object's bytes; see media.BlobStore.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, media.BlobInfo, error) {
	f, info, err := s.open(key)
	if err != nil {
		return nil, media.BlobInfo{}, fmt.Errorf("filestore.Open %s: %w", key, err)
	}
	return f, info, nil
}

// open opens key's file and returns it positioned after the header.
func (s *Store) open(key string) (*os.File, media.BlobInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, media.BlobInfo{}, err
	}
	f, err := os.Open(p)
	if isMissing(err) {
		return nil, media.BlobInfo{}, media.ErrNotExist
	}
	if err != nil {
		return nil, media.BlobInfo{}, err
	}
	info, err := readHeader(f, key)
	if err != nil {
		f.Close()
		return nil, media.BlobInfo{}, err
	}
	return f, info, nil
}

// Delete removes the object; see media.BlobStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !isMissing(err) {
		return fmt.Errorf("filestore.Delete %s: %w", key, err)
	}
	return nil
}

// List calls fn for the objects under prefix in key order; see
// media.BlobStore.
func (s *Store) List(ctx context.Context, prefix string, fn func(media.BlobInfo) error) error {
	if err := media.ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("filestore.List %s: %w", prefix, err)
	}
	return s.list(ctx, "", prefix, fn)
}

// list walks the folder for keyDir (a key prefix ending in "/", or "" for
// the root), visiting entries in key order.
//
// Key order is not file-name order: "a.b" sorts before "a/b", but a walk in
// name order visits directory "a" before file "a.b". Sorting a directory's
// entries by name+"/" and files by name gives key order, because every key
// below directory "a" starts with "a/".
func (s *Store) list(ctx context.Context, keyDir, prefix string, fn func(media.BlobInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestore.List: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(keyDir)))
	if err != nil {
		return fmt.Errorf("filestore.List: %w", err)
	}
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return strings.HasPrefix(e.Name(), ".") })
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range entries {
		key := keyDir + sortKey(e)
		if e.IsDir() {
			if strings.HasPrefix(key, prefix) || strings.HasPrefix(prefix, key) {
				if err := s.list(ctx, key, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) || media.ValidateKey(key) != nil {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return fmt.Errorf("filestore.List: %w", err)
		}
		if fi.Size() < headerSize {
			return fmt.Errorf("filestore.List: %s: %w", key, errCorrupt)
		}
		if err := fn(media.BlobInfo{Key: key, Size: fi.Size() - headerSize, ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Ping reports whether the folder is there; see media.BlobStore.
func (s *Store) Ping(ctx context.Context) error {
	fi, err := os.Stat(s.root)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", s.root)
	}
	if err != nil {
		return fmt.Errorf("filestore.Ping: %w", err)
	}
	return nil
}

// isMissing reports whether err says a path does not exist, also when a
// parent of it is a file ("a/b" when "a" is an object).
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// errCorrupt reports a file in the folder that is not a stored object.
var errCorrupt = errors.New("not a filestore object (bad header)")

// encodeHeader returns the header that records contentType.
func encodeHeader(contentType string) ([]byte, error) {
	if err := media.ValidateContentType(contentType); err != nil {
		return nil, err
	}
	if contentType == "" {
		contentType = media.DefaultContentType
	}
	h := bytes.Repeat([]byte{' '}, headerSize)
	n := copy(h, headerMagic)
	n += copy(h[n:], contentType)
	h[n] = '\n'
	h[headerSize-1] = '\n'
	return h, nil
}

// readHeader reads f's header and returns the object's info.
func readHeader(f *os.File, key string) (media.BlobInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return media.BlobInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return media.BlobInfo{}, media.ErrNotExist
	}
	var h [headerSize]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return media.BlobInfo{}, errCorrupt
	}
	rest, ok := bytes.CutPrefix(h[:], []byte(headerMagic))
	contentType, _, found := bytes.Cut(rest, []byte{'\n'})
	if !ok || !found {
		return media.BlobInfo{}, errCorrupt
	}
	return media.BlobInfo{
		Key:         key,
		Size:        fi.Size() - headerSize,
		ContentType: string(contentType),
		ModTime:     fi.ModTime(),
	}, nil
}
