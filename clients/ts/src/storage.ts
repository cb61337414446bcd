import type { Collection, Envelope, ErrorBody, MutationOp, RecordData } from './types.js'

/** The server's state of a record, as last pulled or answered. */
export type StoredRecord = Envelope

/**
 * One outbox row: a local change not yet answered. A row once sent is
 * frozen (a retry sends exactly the same); changes made meanwhile queue
 * behind it in a row of their own.
 */
export interface OutboxEntry {
  /** Order of the rows; increasing. */
  seq: number
  mutation_id: string
  collection: Collection
  id: string
  op: MutationOp
  base_version: number
  data?: RecordData
  sent: boolean
  /** The SHA-256 of photo bytes this row waits for, if any. */
  hold?: string
  created_at: string
}

/** Photo bytes waiting for their upload. */
export interface QueuedPhoto {
  sha256: string
  content_type: string
  size: number
  bytes: Uint8Array
}

/** A change the server did not write because the record changed there. */
export interface Conflict {
  mutation_id: string
  collection: Collection
  id: string
  op: MutationOp
  /** The data the device pushed; absent for a delete. */
  local?: RecordData
  /** The server's current record. */
  server: Envelope
  /** Whether the resolver queued the local change again. */
  requeued: boolean
  at: string
}

/** A change the server refused for good; dropped from the outbox and kept here. */
export interface Rejection {
  mutation_id: string
  collection: Collection
  id: string
  op: MutationOp
  data?: RecordData
  error: ErrorBody
  at: string
}

/** Everything one commit writes, applied all or nothing. */
export interface WriteSet {
  records?: StoredRecord[]
  putOutbox?: OutboxEntry[]
  /** Outbox rows to drop, by seq. */
  deleteOutbox?: number[]
  putPhotos?: QueuedPhoto[]
  deletePhotos?: string[]
  /** Meta values to set; null removes the key. */
  meta?: Record<string, string | null>
  addConflicts?: Conflict[]
  addRejections?: Rejection[]
  clearConflicts?: boolean
  clearRejections?: boolean
}

/**
 * Storage keeps a client's state on the device: records, outbox, queued
 * photos, conflicts, rejections and a few meta values (checkpoint, refresh
 * token, owner). One client uses a storage at a time. `commit` must be
 * atomic (after a crash the storage has all of a write set or none of it)
 * and must apply commits in the order they were called.
 */
export interface Storage {
  record(collection: Collection, id: string): Promise<StoredRecord | undefined>
  /** The records of those ids that the storage has, in any order. */
  records(collection: Collection, ids: string[]): Promise<StoredRecord[]>
  /** Every record of a collection, deleted ones included, in any order. */
  list(collection: Collection): Promise<StoredRecord[]>
  /** The outbox, by seq. */
  outbox(): Promise<OutboxEntry[]>
  photo(sha256: string): Promise<QueuedPhoto | undefined>
  /** The queued photos' hashes. */
  photos(): Promise<string[]>
  meta(key: string): Promise<string | undefined>
  conflicts(): Promise<Conflict[]>
  rejections(): Promise<Rejection[]>
  commit(w: WriteSet): Promise<void>
}

const key = (collection: string, id: string) => `${collection}\u0000${id}`

/**
 * MemoryStorage keeps everything in memory: for tests, benchmarks and apps
 * that do not need to survive a restart. Values are copied in and out, so
 * callers cannot change what is stored.
 */
export class MemoryStorage implements Storage {
  #records = new Map<string, Map<string, StoredRecord>>()
  #outbox = new Map<number, OutboxEntry>()
  #photos = new Map<string, QueuedPhoto>()
  #meta = new Map<string, string>()
  #conflicts: Conflict[] = []
  #rejections: Rejection[] = []

  async record(collection: Collection, id: string) {
    return structuredClone(this.#records.get(collection)?.get(id))
  }

  async records(collection: Collection, ids: string[]) {
    const m = this.#records.get(collection)
    const out: StoredRecord[] = []
    for (const id of ids) {
      const r = m?.get(id)
      if (r) out.push(structuredClone(r))
    }
    return out
  }

  async list(collection: Collection) {
    return structuredClone([...(this.#records.get(collection)?.values() ?? [])])
  }

  async outbox() {
    return structuredClone([...this.#outbox.values()].sort((a, b) => a.seq - b.seq))
  }

  async photo(sha256: string) {
    const p = this.#photos.get(sha256)
    return p && { ...p, bytes: p.bytes.slice() }
  }

  async photos() { return [...this.#photos.keys()] }

  async meta(k: string) { return this.#meta.get(k) }

  async conflicts() { return structuredClone(this.#conflicts) }

  async rejections() { return structuredClone(this.#rejections) }

  async commit(w: WriteSet) {
    const c = structuredClone(w) // nothing below throws: all or nothing
    for (const r of c.records ?? []) {
      let m = this.#records.get(r.collection)
      if (!m) this.#records.set(r.collection, m = new Map())
      m.set(r.id, r)
    }
    for (const seq of c.deleteOutbox ?? []) this.#outbox.delete(seq)
    for (const e of c.putOutbox ?? []) this.#outbox.set(e.seq, e)
    for (const h of c.deletePhotos ?? []) this.#photos.delete(h)
    for (const p of c.putPhotos ?? []) this.#photos.set(p.sha256, p)
    for (const [k, v] of Object.entries(c.meta ?? {})) {
      if (v === null) this.#meta.delete(k)
      else this.#meta.set(k, v)
    }
    if (c.clearConflicts) this.#conflicts = []
    if (c.clearRejections) this.#rejections = []
    this.#conflicts.push(...(c.addConflicts ?? []))
    this.#rejections.push(...(c.addRejections ?? []))
  }
}

export { key as recordKey }
