package fieldsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// strict decodes raw into v, refusing fields v does not know: a field the
// server sends that the client's types lack would be lost on the way.
func strict(t *testing.T, raw []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	require.NoError(t, d.Decode(v))
}

// roundTrip requires that raw decodes strictly into v and encodes back to
// the same JSON.
func roundTrip(t *testing.T, name string, v any) {
	t.Helper()
	raw := servertest.Wire(t, name)
	strict(t, raw, v)
	again, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, string(raw), string(again), name)
}

// The golden wire files the server's tests check (schema/testdata/wire)
// are what this client sends and reads: its requests are built from the
// same types, and it decodes every answer without losing a field.
func TestWireGolden(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		roundTrip(t, "login-request.json", &schema.LoginRequest{})
		roundTrip(t, "refresh-request.json", &schema.RefreshRequest{})
		roundTrip(t, "pull-request.json", &schema.PullRequest{})

		// A push is built as Client.push builds it, from the outbox's
		// mutations.
		var file struct {
			DeviceID  string            `json:"device_id"`
			Mutations []schema.Mutation `json:"mutations"`
		}
		raw := servertest.Wire(t, "push-request.json")
		strict(t, raw, &file)
		req, err := schema.NewPushRequest(file.DeviceID, file.Mutations)
		require.NoError(t, err)
		built, err := json.Marshal(req)
		require.NoError(t, err)
		assert.JSONEq(t, string(raw), string(built))
	})

	t.Run("token", func(t *testing.T) {
		var tok schema.TokenResponse
		roundTrip(t, "token-response.json", &tok)
		assert.NotEmpty(t, tok.AccessToken)
		assert.NotEmpty(t, tok.RefreshToken)
		assert.Positive(t, tok.ExpiresIn, "the client renews the token before expires_in runs out")
	})

	t.Run("push answers of every status", func(t *testing.T) {
		var resp schema.PushResponse
		roundTrip(t, "push-response.json", &resp)
		var statuses []schema.PushStatus
		for _, r := range resp.Results {
			statuses = append(statuses, r.Status)
		}
		require.Equal(t, []schema.PushStatus{schema.PushApplied, schema.PushMerged, schema.PushConflict, schema.PushRejected, schema.PushApplied}, statuses)
		merged, conflict := resp.Results[1], resp.Results[2]
		require.NotNil(t, merged.Record, "a merged answer carries the record as written")
		assert.Equal(t, merged.Version, merged.Record.Version)
		require.NotNil(t, conflict.Record, "a conflict carries the server's record")
		assert.Zero(t, conflict.Version, "a conflict writes nothing")
		var cust schema.Customer
		require.NoError(t, json.Unmarshal(conflict.Record.Data, &cust), "the client decodes the server's record")
		for _, r := range resp.Results {
			if r.Status == schema.PushRejected {
				require.NotNil(t, r.Error)
				assert.Equal(t, schema.CodeValidationFailed, r.Error.Code)
				assert.NotEmpty(t, r.Error.Problems, "every problem of the record is listed")
			}
		}
	})

	t.Run("pull page", func(t *testing.T) {
		var page schema.PullResponse
		roundTrip(t, "pull-response.json", &page)
		require.NotEmpty(t, page.Changes)
		assert.NotEmpty(t, page.Checkpoint)
		var deleted int
		for _, e := range page.Changes {
			if e.Deleted {
				deleted++
				assert.Equal(t, "null", string(e.Data), "a deleted record has null data")
			}
		}
		assert.Equal(t, 1, deleted)
	})

	for _, tt := range []struct {
		file   string
		status int
		code   string
	}{
		{"error-bad-request.json", http.StatusBadRequest, schema.CodeBadRequest},
		{"error-unauthorized.json", http.StatusUnauthorized, schema.CodeUnauthorized},
		{"error-forbidden.json", http.StatusForbidden, schema.CodeForbidden},
		{"error-not-found.json", http.StatusNotFound, schema.CodeNotFound},
		{"error-method-not-allowed.json", http.StatusMethodNotAllowed, schema.CodeMethodNotAllowed},
		{"error-conflict.json", http.StatusConflict, schema.CodeConflict},
		{"error-unsupported-media-type.json", http.StatusUnsupportedMediaType, schema.CodeUnsupportedMedia},
		{"error-validation-failed.json", http.StatusUnprocessableEntity, schema.CodeValidationFailed},
	} {
		t.Run(tt.file, func(t *testing.T) {
			roundTrip(t, tt.file, &schema.ErrorResponse{})
			// The client turns the answer into a *ResponseError around the
			// contract's *schema.Error, not a guess from the status.
			err := responseError("op", &answer{status: tt.status, body: servertest.Wire(t, tt.file)})
			var re *ResponseError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.status, re.Status)
			var se *schema.Error
			require.True(t, errors.As(err, &se))
			assert.Equal(t, tt.code, se.Code)
			var want schema.ErrorResponse
			require.NoError(t, json.Unmarshal(servertest.Wire(t, tt.file), &want))
			assert.Equal(t, want.Error, se)
		})
	}
}
