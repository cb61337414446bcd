// The wire types of fieldsync's HTTP contract, v1: what the server sends
// and accepts on /v1/auth, /v1/sync and /v1/media.

/** A synced collection. */
export type Collection =
  | 'territories'
  | 'customers'
  | 'products'
  | 'price_lists'
  | 'route_plans'
  | 'visits'
  | 'orders'
  | 'photos'
  | 'targets'

/** Every collection the client knows, in no particular order. */
export const collections: readonly Collection[] = Object.freeze([
  'territories', 'customers', 'products', 'price_lists', 'route_plans', 'visits', 'orders', 'photos', 'targets',
])

/** A role a user has. */
export type Role = 'rep' | 'manager' | 'distributor' | 'admin'

/** The contract's error body: a stable lower_snake code, a message, and the field at fault. */
export interface ErrorBody {
  code: string
  message: string
  field?: string
}

/** A record's data: a JSON object. */
export type RecordData = { [field: string]: unknown }

/** A record as pull returns it and conflicts carry it. */
export interface Envelope {
  collection: Collection
  id: string
  version: number
  deleted: boolean
  updated_at: string
  updated_by: string
  /** null for a deleted record and a record that left the caller's scope. */
  data: RecordData | null
}

/** The user that signed in. */
export interface User {
  id: string
  username: string
  role: Role
  territories: string[]
  distributor_id?: string
}

/** POST /v1/auth/login. */
export interface LoginRequest {
  username: string
  password: string
  device_id: string
}

/** POST /v1/auth/refresh. */
export interface RefreshRequest {
  refresh_token: string
}

/** The answer of login and refresh. */
export interface TokenPair {
  access_token: string
  refresh_token: string
  /** Seconds the access token lives. */
  expires_in: number
  user: User
}

/** An upsert carries the whole record; a delete no data. */
export type MutationOp = 'upsert' | 'delete'

/** One change pushed. */
export interface Mutation {
  mutation_id: string
  collection: Collection
  id: string
  op: MutationOp
  /** The version the client last saw; 0 to create. */
  base_version: number
  data?: RecordData
}

/** POST /v1/sync/push. */
export interface PushRequest {
  device_id: string
  mutations: Mutation[]
}

/** The server's answer to one mutation. */
export type PushStatus = 'applied' | 'merged' | 'conflict' | 'rejected'

/** One result of a push, in the order of the mutations. */
export interface PushResult {
  mutation_id: string
  status: PushStatus
  /** The new version, for applied and merged. */
  version?: number
  /** The merged record (merged) or the server's current one (conflict). */
  record?: Envelope
  /** Why, for rejected. */
  error?: ErrorBody
}

/** The answer of a push. */
export interface PushResponse {
  results: PushResult[]
}

/** POST /v1/sync/pull. */
export interface PullRequest {
  /** Empty for "from the beginning". */
  checkpoint: string
  limit?: number
  /** Only these collections; the checkpoint is bound to the set. */
  collections?: Collection[]
}

/** One page of changes. */
export interface PullResponse {
  changes: Envelope[]
  checkpoint: string
  has_more: boolean
}

/** The data of a `changes` event of GET /v1/sync/stream: which collections to pull. */
export interface ChangesEvent {
  collections?: Collection[]
}
