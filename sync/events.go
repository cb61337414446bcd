package sync

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Audit actions of sign-ins and user changes.
const (
	AuditLogin       = "login"
	AuditLoginFailed = "login_failed"
	AuditLogout      = "logout"
	AuditUserCreate  = "user_create"
	AuditUserUpdate  = "user_update"
)

// LoginAudit is the audit entry of a sign-in (action login, with the
// login's id), a refused one (login_failed; userID empty when the name is
// no user's) or a sign-out (logout). The name tried and the password
// never appear.
func LoginAudit(action, userID, deviceID, loginID string, at time.Time) AuditEntry {
	key := action + "/" + loginID
	if action == AuditLoginFailed {
		key = action + "/" + strconv.FormatInt(at.UnixNano(), 10) + "/" + randomID()
	}
	return AuditEntry{Key: key, At: at.UTC(), UserID: userID, DeviceID: deviceID, Action: action, ID: loginID}
}

// UserAudit is the audit entry of an admin (by) creating a user (before
// nil) or changing one: the changed username, role, territories,
// distributor and active flag with their values, and "password" when it
// changed, without any value.
func UserAudit(by schema.Principal, before, after *schema.User, at time.Time) AuditEntry {
	action := AuditUserCreate
	if before != nil {
		action = AuditUserUpdate
	}
	e := AuditEntry{Key: action + "/" + after.ID + "/" + strconv.FormatInt(at.UnixNano(), 10) + "/" + randomID(),
		At: at.UTC(), UserID: by.UserID, DeviceID: by.DeviceID, Action: action, ID: after.ID}
	e.Changes = fieldChanges(userFields(before), userFields(after))
	if before == nil || before.PasswordHash != after.PasswordHash {
		e.Changes["password"] = FieldChange{From: json.RawMessage("null"), To: json.RawMessage(`"(changed)"`)}
	}
	return e
}

// userFields is what the audit trail shows of a user.
func userFields(u *schema.User) map[string]json.RawMessage {
	if u == nil {
		return nil
	}
	terrs := slices.Clone(u.Territories)
	if terrs == nil {
		terrs = []string{}
	}
	out := map[string]json.RawMessage{}
	for k, v := range map[string]any{"username": u.Username, "role": u.Role, "territories": terrs,
		"distributor_id": u.DistributorID, "active": u.Active} {
		out[k], _ = json.Marshal(v) // strings, bools and string lists always marshal
	}
	return out
}
