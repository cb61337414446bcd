// Package schema is the fieldsync domain: the synced record types and
// their validation, the roles and the rules of who may read and write what,
// and the one error type whose stable codes clients see.
//
// It imports only the standard library, so that every other package and the
// Go client can share it.
package schema
