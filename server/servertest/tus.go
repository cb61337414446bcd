package servertest

import (
	"bytes"
	"io"
	"net/http"
)

// TusRequest builds one request of the tus protocol (1.0.0) to url: with a
// bearer token when token is set, and body, when given, as a PATCH's
// offset stream; header adds tus headers such as Upload-Offset.
func TusRequest(method, url, token string, header map[string]string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req, nil
}
