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
)

// SecretFileName is the file in the data dir that keeps a generated
// signing secret.
const SecretFileName = "jwt.secret"

// LoadSecret returns the signing secret: given when not empty, else the one
// kept in dataDir, generated (32 random bytes, file mode 0600) the first
// time.
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
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// O_EXCL: when two processes start on one data dir, one writes and the
	// other reads what it wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadSecret(dataDir, "")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	_, werr := f.WriteString(hex.EncodeToString(secret) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return secret, nil
}
