// The record and wire types the client speaks, taken from the types that
// wire.ts generates from docs/openapi.yaml (`npm run generate`), so that
// the client cannot drift from the server's contract, plus the few names
// and values of the client's own.
import type * as wire from './wire.js'

/** A synced collection. */
export type Collection = wire.Collection

/** Every collection the client knows, in no particular order. */
export const collections: readonly Collection[] = Object.freeze([
  'territories', 'customers', 'products', 'price_lists', 'route_plans', 'visits', 'orders', 'photos', 'targets',
] satisfies Collection[])

/** A role a user has. */
export type Role = wire.Role

/** One problem of a record that failed validation. */
export type Problem = wire.Problem

/**
 * The contract's error body: a stable lower_snake code, a message, the
 * field at fault and, for a record that failed validation, its problems.
 * The code is any string here, because the client also names failures of
 * its own (and of proxies) in this shape.
 */
export type ErrorBody = Omit<wire.Error, 'code'> & { code: wire.Error['code'] | (string & {}) }

/** A record as pull returns it and conflicts carry it; data is null for a deleted record and one that left the caller's scope. */
export type Envelope = wire.Envelope

/** A record's data: a JSON object. */
export type RecordData = NonNullable<Envelope['data']>

/** The user that signed in. */
export type User = wire.User

/** POST /v1/auth/login. */
export type LoginRequest = wire.LoginRequest

/** POST /v1/auth/refresh. */
export type RefreshRequest = wire.RefreshRequest

/** The answer of login and refresh. */
export type TokenPair = wire.TokenResponse

/** An upsert carries the whole record; a delete no data. */
export type MutationOp = wire.Mutation['op']

/** One change pushed. */
export type Mutation = wire.Mutation

/** POST /v1/sync/push. */
export type PushRequest = wire.PushRequest

/** The server's answer to one mutation. */
export type PushStatus = wire.PushStatus

/**
 * One result of a push, in the order of the mutations. Its error is an
 * ErrorBody because the client also refuses a mutation itself (one too
 * large for the server).
 */
export type PushResult = Omit<wire.PushResult, 'error'> & { error?: ErrorBody }

/** The answer of a push. */
export type PushResponse = wire.PushResponse

/** POST /v1/sync/pull. */
export type PullRequest = wire.PullRequest

/** One page of changes. */
export type PullResponse = wire.PullResponse

/** The data of a `changes` event of GET /v1/sync/stream: which collections to pull. */
export interface ChangesEvent {
  collections?: Collection[]
}
