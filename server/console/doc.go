// Package console is the browser console that managers and admins open at
// /console/: server-rendered pages over the same engine, reports and
// accounts as the API, with the same scoping by role and territories. Its
// templates, styles, scripts (Leaflet included) and message catalogs are
// embedded in the binary, so the console needs nothing installed.
//
// A console session is a login like an API one: a signed cookie names the
// login, and every request checks that the login is not revoked and its
// user still active, so logout, deactivation and a password change end it
// at once. Every form carries a token bound to the session (or, before
// sign-in, to a signed pre-session cookie) that POSTs must return.
package console
