package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SecretFileName is the file in the data dir that keeps a generated
// signing secret.
const SecretFileName = "jwt.secret"

// LoadSecret returns the signing secret: given when not empty, else the one
// kept in dataDir, generated (32 random bytes, file mode 0600) the first
// time. The file appears whole or not at all, and processes starting at
// once on one data dir all get the secret of the first to place it.
func LoadSecret(dataDir, given string) ([]byte, error) {
	const op = "server.LoadSecret"
	if given != "" {
		if len(given) < 32 {
			return nil, fmt.Errorf("%s: the signing secret must be at least 32 characters", op)
		}
		return []byte(given), nil
	}
	path := filepath.Join(dataDir, SecretFileName)
	data, err := os.ReadFile(path)
	if err == nil {
		secret, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(secret) < 32 {
			return nil, fmt.Errorf("%s: %s does not hold a 32-byte hex secret", op, path)
		}
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	secret, err := placeSecret(dataDir, path)
	if errors.Is(err, fs.ErrExist) {
		// Another process starting on the same data dir placed its
		// secret first: that one is the secret.
		return LoadSecret(dataDir, "")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	removeStaleSecretTemps(dataDir)
	return secret, nil
}

// secretTempPattern names the temp files a new secret is written to
// before it is linked into place.
const secretTempPattern = "." + SecretFileName + "-*"

// placeSecret generates a secret, writes it whole to a temp file, syncs it
// and links it to path, so that path never exists empty or partial, even
// after a crash. fs.ErrExist when path already exists.
func placeSecret(dataDir, path string) ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dataDir, secretTempPattern)
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(hex.EncodeToString(secret) + "\n")
	if err := errors.Join(werr, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
		return nil, err
	}
	// A link, unlike a rename, never replaces a secret another process
	// placed in the meantime.
	if err := os.Link(f.Name(), path); err != nil {
		return nil, err
	}
	syncDir(dataDir)
	return secret, nil
}

// removeStaleSecretTemps removes temp files of secrets that starts cut off
// by a crash left; fresh ones may be another starting process's.
func removeStaleSecretTemps(dataDir string) {
	temps, _ := filepath.Glob(filepath.Join(dataDir, secretTempPattern))
	for _, name := range temps {
		if info, err := os.Stat(name); err == nil && time.Since(info.ModTime()) > time.Minute {
			os.Remove(name)
		}
	}
}

// syncDir makes the entries of dir durable; a failure is ignored, as the
// file it was for is already in place.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
