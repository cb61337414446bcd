import { FieldsyncError, NotFoundError } from './errors.js'
import { Api, type RetryPolicy, type TransportStats } from './http.js'
import { fold, rebase } from './outbox.js'
import type { Conflict, OutboxEntry, QueuedPhoto, Rejection, Storage, StoredRecord, WriteSet } from './storage.js'
import { subscribe, type SubscribeOptions } from './stream.js'
import { StorageUrls, uploadResumable, type UrlStorage } from './uploads.js'
import {
  collections as allCollections, type ChangesEvent, type Collection, type Envelope, type Mutation,
  type MutationOp, type PushResult, type RecordData, type TokenPair, type User,
} from './types.js'

/** What a FieldsyncClient is made with. */
export interface ClientOptions {
  /** The server's address, such as https://sync.example.com. */
  baseUrl: string
  /** Names this device to the server: 1 to 128 letters, digits or . _ : - */
  deviceId: string
  /** Where records, the outbox and photos wait: MemoryStorage, IndexedDBStorage or your own. */
  storage: Storage
  /** The fetch to use; default globalThis.fetch. */
  fetch?: typeof fetch
  retry?: RetryPolicy
  /** How long one request may take, body included, before it is retried; default 60,000 ms. */
  requestTimeoutMs?: number
  /** Most mutations pushed in one request; default 500. */
  batchSize?: number
  /** Page size asked of pull; default 500. */
  pullLimit?: number
  /** Pull only these collections; default all the caller may read. */
  collections?: Collection[]
  /** Settles conflicts during sync; default serverWins. */
  conflictResolver?: Resolver
  /** The clock, in ms since the epoch; default Date.now. */
  now?: () => number
  /**
   * Photos larger than this many bytes go up through a resumable upload
   * (tus), which goes on from the last byte the server holds after a cut;
   * smaller ones in one PUT. Default 1 MiB (1,048,576); a negative number
   * sends every photo by PUT.
   */
  resumableAbove?: number
  /**
   * Where the addresses of unfinished resumable uploads are kept, so that
   * an upload cut off goes on in a later sync or after the app restarts:
   * any of tus-js-client's URL storages. Default: the client's storage
   * (they last as long as the queued photos they belong to).
   */
  uploadUrlStorage?: UrlStorage
}

/** A record as the device sees it: the server's state with the device's pending change laid over it. */
export interface ClientRecord {
  collection: Collection
  id: string
  /** The server's version the device last saw; 0 for a record created here and not pushed yet. */
  version: number
  data: RecordData
  updated_at: string
  updated_by: string
  /** Whether data is a local change the server has not answered yet. */
  pending: boolean
}

/** A conflict as the resolver sees it. */
export type ConflictInput = Omit<Conflict, 'requeued' | 'at'>

/** What a resolver decided: nothing keeps the server's record; data or delete queues a change on top of it. */
export type Resolution = { data?: RecordData, delete?: boolean } | undefined | void

/**
 * Resolver settles a conflict during sync. The server's record is stored
 * whatever it decides. It must not call the client's methods.
 */
export type Resolver = (c: ConflictInput) => Resolution | Promise<Resolution>

/** The default resolver: the server's record is kept, the local change dropped (it stays in conflicts()). */
export const serverWins: Resolver = () => undefined

/** A resolver that pushes the local change again on top of the server's version: the device's last write wins. */
export const localWins: Resolver = c => (c.op === 'delete' ? { delete: true } : { data: c.local })

/** What a photo's record says besides its bytes. */
export interface PhotoInfo {
  /** When it was taken (an ISO time or a Date). */
  takenAt?: string | Date
  lat?: number
  lng?: number
  /** image/jpeg, image/png, image/webp or image/heic; default sniffed from the bytes. */
  contentType?: string
}

/** What one sync did. */
export interface SyncReport {
  pushed: number
  applied: number
  merged: number
  conflicts: number
  rejected: number
  /** Conflicts the resolver queued again. */
  requeued: number
  pulled: number
  photosUploaded: number
  photosSkipped: number
  /** Times a resumable photo upload asked the server for its offset to go on (after a cut, or from an earlier sync). */
  resumes: number
  retries: number
  logins: number
  refreshes: number
}

const idPattern = /^[A-Za-z0-9._:-]{1,128}$/
const maxRequeueRounds = 3

function checkAddress(op: string, collection: Collection, id: string): void {
  if (!allCollections.includes(collection)) {
    throw new FieldsyncError(op, 0, { code: 'validation_failed', message: `unknown collection ${JSON.stringify(collection)}`, field: 'collection' })
  }
  if (!idPattern.test(id)) {
    throw new FieldsyncError(op, 0, { code: 'validation_failed', message: 'id must be 1 to 128 letters, digits or . _ : -', field: 'id' })
  }
}

function isObject(v: unknown): v is RecordData {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** A v4 UUID from the platform's random source. */
export function uuid(): string {
  const c = globalThis.crypto
  if (typeof c?.randomUUID === 'function') return c.randomUUID()
  const b = c.getRandomValues(new Uint8Array(16))
  b[6] = (b[6]! & 0x0f) | 0x40
  b[8] = (b[8]! & 0x3f) | 0x80
  const h = [...b].map(x => x.toString(16).padStart(2, '0')).join('')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** The SHA-256 of bytes, in hex, computed with the platform's WebCrypto. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await globalThis.crypto.subtle.digest('SHA-256', bytes as BufferSource)
  return [...new Uint8Array(d)].map(x => x.toString(16).padStart(2, '0')).join('')
}

function sniff(b: Uint8Array): string {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg'
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'image/png'
  const text = (from: number, n: number) => String.fromCharCode(...b.subarray(from, from + n))
  if (text(0, 4) === 'RIFF' && text(8, 4) === 'WEBP') return 'image/webp'
  if (text(4, 4) === 'ftyp' && /^(heic|heix|mif1|msf1)$/.test(text(8, 4))) return 'image/heic'
  return 'application/octet-stream'
}

const recordKey = (e: { collection: string, id: string }) => `${e.collection}/${e.id}`

/**
 * FieldsyncClient is one device's view of fieldsync: a local store of the
 * records it may read, an outbox of its own changes, queued photos, and
 * the means to sync them. It works offline: put, delete, addPhoto, get and
 * list never touch the network.
 */
export class FieldsyncClient {
  /** The raw protocol, typed, with the client's retries and tokens. */
  readonly api: Api
  /** Counts of retries, sign-ins and refreshes since the client was made. */
  readonly stats: TransportStats = { retries: 0, logins: 0, refreshes: 0 }
  readonly #o: Required<Omit<ClientOptions, 'collections' | 'retry'>> & Pick<ClientOptions, 'collections'>
  readonly #storage: Storage
  readonly #retry: Required<RetryPolicy>
  #lock: Promise<unknown> = Promise.resolve()
  #seq = 0
  #running: Promise<SyncReport> | undefined
  #queued: Promise<SyncReport> | undefined
  #user: User | undefined

  constructor(options: ClientOptions) {
    if (!options.baseUrl) throw new TypeError('FieldsyncClient: baseUrl is required')
    if (!idPattern.test(options.deviceId ?? '')) throw new TypeError('FieldsyncClient: deviceId must be 1 to 128 letters, digits or . _ : -')
    if (!options.storage) throw new TypeError('FieldsyncClient: storage is required')
    const f = options.fetch ?? globalThis.fetch
    this.#o = {
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      deviceId: options.deviceId,
      storage: options.storage,
      fetch: (...a) => f(...a),
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      batchSize: options.batchSize ?? 500,
      pullLimit: options.pullLimit ?? 500,
      collections: options.collections,
      conflictResolver: options.conflictResolver ?? serverWins,
      now: options.now ?? Date.now,
      resumableAbove: options.resumableAbove ?? 1 << 20,
      uploadUrlStorage: options.uploadUrlStorage ?? new StorageUrls(options.storage),
    }
    this.#storage = options.storage
    const r = options.retry ?? {}
    this.#retry = {
      maxAttempts: r.maxAttempts ?? 5, baseDelayMs: r.baseDelayMs ?? 500,
      maxDelayMs: r.maxDelayMs ?? 30_000, maxRetryAfterMs: r.maxRetryAfterMs ?? 300_000,
    }
    this.api = new Api({
      baseUrl: this.#o.baseUrl,
      deviceId: this.#o.deviceId,
      fetch: this.#o.fetch,
      retry: this.#retry,
      requestTimeoutMs: this.#o.requestTimeoutMs,
      now: this.#o.now,
      stats: this.stats,
      onTokens: pair => this.#keepTokens(pair),
      loadRefreshToken: () => this.#storage.meta('refresh_token'),
    })
  }

  /** The server's address, as given. */
  get baseUrl(): string {
    return this.#o.baseUrl
  }

  /** The device's id, as given. */
  get deviceId(): string {
    return this.#o.deviceId
  }

  /** The user signed in, when known (after login, or a sync on a kept session). */
  get user(): User | undefined {
    return this.#user
  }

  /**
   * Signs in. The storage is bound to the first user and server that sign
   * in on it; another gets an error with code "other_owner". The refresh
   * token is kept in the storage, so that a client made later on the same
   * storage syncs without asking the password again.
   */
  async login(username: string, password: string): Promise<User> {
    const owner = `${this.#o.baseUrl} ${username}`
    const have = await this.#storage.meta('owner')
    if (have !== undefined && have !== owner) {
      throw new FieldsyncError('login', 0, { code: 'other_owner', message: 'this storage belongs to another user or server' })
    }
    const pair = await this.api.signIn(username, password)
    if (have === undefined) await this.#storage.commit({ meta: { owner } })
    return pair.user
  }

  /** Signs out here and on the server. Pending changes stay in the storage. */
  async logout(): Promise<void> {
    await this.api.signOut()
  }

  async #keepTokens(pair: TokenPair | null): Promise<void> {
    this.#user = pair?.user ?? this.#user
    await this.#storage.commit({ meta: { refresh_token: pair?.refresh_token ?? null, user: pair ? JSON.stringify(pair.user) : null } })
  }

  /** Runs fn with the storage to itself: one read-modify-commit at a time. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn)
    this.#lock = run.catch(() => undefined)
    return run
  }

  #fresh = async (): Promise<() => Pick<OutboxEntry, 'seq' | 'mutation_id' | 'created_at'>> => {
    const ob = await this.#storage.outbox()
    this.#seq = Math.max(this.#seq, ob.at(-1)?.seq ?? 0)
    return () => ({ seq: ++this.#seq, mutation_id: uuid(), created_at: new Date(this.#o.now()).toISOString() })
  }

  /**
   * Records a local upsert of a whole record: queued in the outbox on top
   * of the version the device last saw (0 for a new record), and shown by
   * get and list at once. Changes to a record made before its last change
   * was sent are folded into one mutation.
   */
  async put(collection: Collection, id: string, data: RecordData): Promise<void> {
    checkAddress('put', collection, id)
    if (!isObject(data)) throw new FieldsyncError('put', 0, { code: 'validation_failed', message: 'data must be an object', field: 'data' })
    const copy = JSON.parse(JSON.stringify(data)) as RecordData
    await this.#change('put', { collection, id, op: 'upsert', data: copy })
  }

  /**
   * Records a local delete. A record created here and never sent is simply
   * forgotten; one the device does not have is a NotFoundError.
   */
  async delete(collection: Collection, id: string): Promise<void> {
    checkAddress('delete', collection, id)
    await this.#change('delete', { collection, id, op: 'delete' })
  }

  #change(op: string, change: { collection: Collection, id: string, op: MutationOp, data?: RecordData, hold?: string }, extra: WriteSet = {}): Promise<void> {
    return this.#exclusive(async () => {
      const ob = await this.#storage.outbox()
      const rows = ob.filter(e => e.collection === change.collection && e.id === change.id)
      const known = await this.#storage.record(change.collection, change.id)
      const f = fold(rows, known, change, await this.#fresh())
      if (!f) throw new NotFoundError(op, change.collection, change.id)
      const w: WriteSet = { ...extra, putOutbox: f.put ? [f.put] : [], deleteOutbox: f.drop !== undefined ? [f.drop] : [] }
      if (f.released && !ob.some(e => e.hold === f.released && e.seq !== f.drop && e.seq !== f.put?.seq)) {
        w.deletePhotos = [f.released]
      }
      await this.#storage.commit(w)
    })
  }

  /**
   * Queues a photo of a visit: its bytes wait in the storage and its
   * `photos` record in the outbox. The SHA-256 is computed here. sync
   * uploads the bytes first (skipped when the server has them) and pushes
   * the record only once the server has them.
   */
  async addPhoto(photoId: string, visitId: string, bytes: Uint8Array, info: PhotoInfo = {}): Promise<string> {
    checkAddress('addPhoto', 'photos', photoId)
    checkAddress('addPhoto', 'visits', visitId)
    const sha256 = await sha256Hex(bytes)
    const content_type = info.contentType ?? sniff(bytes)
    const data: RecordData = { visit_id: visitId, sha256, content_type, size: bytes.byteLength }
    if (info.takenAt) data.taken_at = new Date(info.takenAt).toISOString()
    if (info.lat !== undefined) data.lat = info.lat
    if (info.lng !== undefined) data.lng = info.lng
    await this.#change('addPhoto', { collection: 'photos', id: photoId, op: 'upsert', data, hold: sha256 },
      { putPhotos: [{ sha256, content_type, size: bytes.byteLength, bytes: bytes.slice() }] })
    return sha256
  }

  /** A record as the device sees it; undefined when it does not have it or has it as deleted. */
  async get(collection: Collection, id: string): Promise<ClientRecord | undefined> {
    const rec = await this.#storage.record(collection, id)
    const row = (await this.#storage.outbox()).filter(e => e.collection === collection && e.id === id).at(-1)
    return overlay(collection, id, rec, row)
  }

  /** The records of a collection as the device sees them, by id, without deleted ones. */
  async list(collection: Collection): Promise<ClientRecord[]> {
    const recs = new Map((await this.#storage.list(collection)).map(r => [r.id, r]))
    const rows = new Map<string, OutboxEntry>()
    for (const e of await this.#storage.outbox()) if (e.collection === collection) rows.set(e.id, e)
    const ids = new Set([...recs.keys(), ...rows.keys()])
    const out: ClientRecord[] = []
    for (const id of ids) {
      const r = overlay(collection, id, recs.get(id), rows.get(id))
      if (r) out.push(r)
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** How many changes wait in the outbox. */
  async pending(): Promise<number> {
    return (await this.#storage.outbox()).length
  }

  /** The conflicts kept since they were last cleared, oldest first. */
  conflicts(): Promise<Conflict[]> { return this.#storage.conflicts() }

  /** The rejections kept since they were last cleared, oldest first. */
  rejections(): Promise<Rejection[]> { return this.#storage.rejections() }

  /** Forgets the kept conflicts, once the app has shown them. */
  clearConflicts(): Promise<void> { return this.#storage.commit({ clearConflicts: true }) }

  /** Forgets the kept rejections, once the app has shown them. */
  clearRejections(): Promise<void> { return this.#storage.commit({ clearRejections: true }) }

  /**
   * Exchanges changes with the server: uploads queued photos (HEAD first),
   * pushes the outbox oldest first (a batch that fails for a passing reason
   * is sent again with the same mutation ids), then pulls until the server
   * has no more. A sync called while one runs runs once after it (calls
   * made meanwhile share that one). Photo bytes that cannot go up now hold
   * back only their own records; their error is thrown at the end.
   */
  sync(): Promise<SyncReport> {
    if (this.#queued) return this.#queued
    const before = this.#running ?? Promise.resolve()
    const run: Promise<SyncReport> = before.catch(() => undefined).then(() => {
      this.#queued = undefined
      this.#running = run
      return this.#sync()
    }).finally(() => {
      if (this.#running === run) this.#running = undefined
    })
    this.#queued = run
    return run
  }

  async #sync(): Promise<SyncReport> {
    const start = { ...this.stats }
    const rep: SyncReport = {
      pushed: 0, applied: 0, merged: 0, conflicts: 0, rejected: 0, requeued: 0, pulled: 0,
      photosUploaded: 0, photosSkipped: 0, resumes: 0, retries: 0, logins: 0, refreshes: 0,
    }
    try {
      const photoErr = await this.#uploadPhotos(rep)
      await this.#push(rep)
      await this.#pull(rep)
      if (photoErr) throw photoErr
      return rep
    } finally {
      rep.retries = this.stats.retries - start.retries
      rep.logins = this.stats.logins - start.logins
      rep.refreshes = this.stats.refreshes - start.refreshes
    }
  }

  async #uploadPhotos(rep: SyncReport): Promise<unknown> {
    let failure: unknown
    for (const sha of await this.#storage.photos()) {
      const p = await this.#storage.photo(sha)
      if (!p) continue
      try {
        if (await this.api.hasMedia(sha)) rep.photosSkipped++
        else {
          await this.#uploadPhoto(p, rep)
          rep.photosUploaded++
        }
        await this.#exclusive(() => this.#storage.commit({ deletePhotos: [sha] }))
      } catch (err) {
        failure ??= err
      }
    }
    return failure
  }

  /**
   * Sends a photo's bytes: through a resumable upload above the threshold
   * (by PUT when the server takes none), else by PUT.
   */
  async #uploadPhoto(p: QueuedPhoto, rep: SyncReport): Promise<void> {
    if (this.#o.resumableAbove >= 0 && p.size > this.#o.resumableAbove) {
      try {
        const r = await uploadResumable(p.bytes, {
          api: this.api, baseUrl: this.#o.baseUrl, owner: (await this.#storage.meta('owner')) ?? this.#o.baseUrl,
          sha256: p.sha256, contentType: p.content_type, urlStorage: this.#o.uploadUrlStorage, retry: this.#retry,
        })
        rep.resumes += r.resumes
        return
      } catch (err) {
        if (!(err instanceof FieldsyncError) || err.op !== 'upload.post' || err.status !== 404) throw err
        // The server takes no resumable uploads: one PUT.
      }
    }
    await this.api.putMedia(p.sha256, p.bytes, p.content_type)
  }

  /** Pushes the outbox as it was when the push began, plus what the resolver queues. */
  async #push(rep: SyncReport): Promise<void> {
    let maxSeq = (await this.#storage.outbox()).at(-1)?.seq ?? 0
    let size = this.#o.batchSize
    for (let rounds = 0; ;) {
      const batch = await this.#nextBatch(maxSeq, size)
      if (batch.length === 0) return
      const mutations: Mutation[] = batch.map(e => {
        const m: Mutation = { mutation_id: e.mutation_id, collection: e.collection, id: e.id, op: e.op, base_version: e.base_version }
        if (e.data) m.data = e.data
        return m
      })
      let results: PushResult[]
      try {
        results = (await this.api.push({ mutations })).results ?? []
      } catch (err) {
        if (!(err instanceof FieldsyncError) || err.status !== 413) throw err
        // Too large for the server: halve the batches; one mutation too large is refused for good.
        if (batch.length > 1) {
          size = Math.max(1, Math.floor(batch.length / 2))
          continue
        }
        results = [{ mutation_id: batch[0]!.mutation_id, status: 'rejected', error: { code: err.code, message: err.message } }]
      }
      rep.pushed += batch.length
      const requeued = await this.#answer(batch, results, rep)
      if (requeued && rounds < maxRequeueRounds) {
        rounds++
        maxSeq = (await this.#storage.outbox()).at(-1)?.seq ?? maxSeq
      }
    }
  }

  /**
   * The next rows to push, in order, marked sent: rows waiting for photo
   * bytes are passed over with their records' later rows, and the batch
   * ends before a second row of one record (its base depends on the answer
   * to the first).
   */
  #nextBatch(maxSeq: number, size: number): Promise<OutboxEntry[]> {
    return this.#exclusive(async () => {
      const waiting = new Set(await this.#storage.photos())
      const taken = new Set<string>()
      const held = new Set<string>()
      const batch: OutboxEntry[] = []
      for (const e of await this.#storage.outbox()) {
        if (batch.length >= size || e.seq > maxSeq) break
        const k = recordKey(e)
        if (taken.has(k)) break
        if ((e.hold && waiting.has(e.hold)) || held.has(k)) {
          held.add(k)
          continue
        }
        taken.add(k)
        batch.push({ ...e, sent: true })
      }
      if (batch.length) await this.#storage.commit({ putOutbox: batch })
      return batch
    })
  }

  /**
   * Applies the answers to a batch in one commit; the resolver is asked
   * first. Returns whether the resolver queued anything. Mutations without
   * an answer stay in the outbox for the next sync, and make it fail.
   */
  async #answer(batch: OutboxEntry[], results: PushResult[], rep: SyncReport): Promise<boolean> {
    const byId = new Map(results.map(r => [r.mutation_id, r]))
    const resolutions = new Map<string, Resolution>()
    let failure: unknown
    for (const m of batch) {
      const res = byId.get(m.mutation_id)
      if (res?.status !== 'conflict' || !res.record) continue
      try {
        const input: ConflictInput = { mutation_id: m.mutation_id, collection: m.collection, id: m.id, op: m.op, server: res.record }
        if (m.data) input.local = m.data
        resolutions.set(m.mutation_id, await this.#o.conflictResolver(input))
      } catch (err) {
        failure ??= err
      }
    }
    const at = new Date(this.#o.now()).toISOString()
    let requeued = false
    let unanswered = 0
    await this.#exclusive(async () => {
      const outbox = await this.#storage.outbox()
      const fresh = await this.#fresh()
      const w: Required<Pick<WriteSet, 'records' | 'putOutbox' | 'deleteOutbox' | 'addConflicts' | 'addRejections'>> =
        { records: [], putOutbox: [], deleteOutbox: [], addConflicts: [], addRejections: [] }
      const answered: StoredRecord[] = []
      const later = (m: OutboxEntry) => outbox.filter(e => e.collection === m.collection && e.id === m.id && !e.sent && e.seq !== m.seq)
      for (const m of batch) {
        const res = byId.get(m.mutation_id)
        switch (res?.status) {
          case 'applied':
          case 'merged': {
            const merged = res.status === 'merged' && res.record !== undefined
            const rec: StoredRecord = merged ? res.record! : {
              collection: m.collection, id: m.id, version: res.version ?? 0, deleted: m.op === 'delete',
              updated_at: at, updated_by: '', data: m.op === 'delete' ? null : m.data ?? null,
            }
            if (res.status === 'merged') rep.merged++
            else rep.applied++
            ;(merged ? w.records : answered).push(rec)
            w.deleteOutbox.push(m.seq)
            w.putOutbox.push(...rebase(m, rec, merged, later(m)))
            break
          }
          case 'conflict': {
            if (res.record && !resolutions.has(m.mutation_id)) continue // the resolver failed: ask again next time
            const k: Conflict = { mutation_id: m.mutation_id, collection: m.collection, id: m.id, op: m.op, server: res.record!, requeued: false, at }
            if (m.data) k.local = m.data
            if (res.record) w.records.push(res.record)
            w.deleteOutbox.push(m.seq)
            const base = !res.record || res.record.deleted ? 0 : res.record.version
            const r = resolutions.get(m.mutation_id)
            if (r?.data || (r?.delete && res.record && !res.record.deleted)) {
              const again: OutboxEntry = { ...fresh(), collection: m.collection, id: m.id, op: r.data ? 'upsert' : 'delete', base_version: base, sent: false }
              if (r.data) again.data = r.data
              w.putOutbox.push(again)
              k.requeued = true
              rep.requeued++
              requeued = true
            }
            w.addConflicts.push(k)
            rep.conflicts++
            break
          }
          case 'rejected': {
            const r: Rejection = {
              mutation_id: m.mutation_id, collection: m.collection, id: m.id, op: m.op,
              error: res.error ?? { code: 'internal', message: 'rejected without a reason' }, at,
            }
            if (m.data) r.data = m.data
            w.deleteOutbox.push(m.seq)
            w.addRejections.push(r)
            rep.rejected++
            break
          }
          default:
            unanswered++
        }
      }
      // An answer that an upsert changed nothing keeps the stored envelope.
      w.records = [...await this.#newer(w.records, true), ...await this.#newer(answered, false)]
      await this.#storage.commit(w)
    })
    if (unanswered > 0) {
      failure ??= new FieldsyncError('push', 0, { code: 'bad_answer', message: `${unanswered} mutations got no answer the client understands` })
    }
    if (failure) throw failure
    return requeued
  }

  /**
   * The envelopes to store: those newer than what the storage has (the
   * same version again only with replaceSame: an envelope carries the
   * server-owned fields the device could not know).
   */
  async #newer(envs: StoredRecord[], replaceSame: boolean): Promise<StoredRecord[]> {
    const byColl = new Map<Collection, StoredRecord[]>()
    for (const e of envs) {
      const l = byColl.get(e.collection)
      if (l) l.push(e)
      else byColl.set(e.collection, [e])
    }
    const out: StoredRecord[] = []
    for (const [coll, list] of byColl) {
      const have = new Map((await this.#storage.records(coll, list.map(e => e.id))).map(r => [r.id, r.version]))
      for (const e of list) {
        const v = have.get(e.id)
        if (v === undefined || e.version > v || (replaceSame && e.version === v)) {
          out.push(e)
          have.set(e.id, e.version)
        }
      }
    }
    return out
  }

  /** Pulls pages until the server has no more, each page and its checkpoint in one commit. */
  async #pull(rep: SyncReport): Promise<void> {
    for (;;) {
      const cp = (await this.#storage.meta('checkpoint')) ?? ''
      const page = await this.api.pull({ checkpoint: cp, limit: this.#o.pullLimit, ...(this.#o.collections ? { collections: this.#o.collections } : {}) })
      await this.#exclusive(async () => {
        const records = await this.#newer(page.changes ?? [], true)
        await this.#storage.commit({ records, meta: { checkpoint: page.checkpoint } })
      })
      rep.pulled += page.changes?.length ?? 0
      if (!page.has_more || page.checkpoint === cp) return
    }
  }

  /**
   * Listens to the server's live changes (GET /v1/sync/stream) and calls
   * onChanges on each `changes` event, such as `() => client.sync()`. It
   * reconnects with backoff, renews the token when the stream says it
   * expired, and returns a function that stops it.
   */
  subscribe(onChanges: (event: ChangesEvent) => unknown, options: SubscribeOptions = {}): () => void {
    return subscribe(this.api, onChanges, options)
  }
}

function overlay(collection: Collection, id: string, rec: StoredRecord | undefined, row: OutboxEntry | undefined): ClientRecord | undefined {
  if (row) {
    if (row.op === 'delete') return undefined
    return { collection, id, version: rec?.version ?? 0, data: row.data ?? {}, updated_at: rec?.updated_at ?? '', updated_by: rec?.updated_by ?? '', pending: true }
  }
  if (!rec || rec.deleted) return undefined
  return { collection, id, version: rec.version, data: rec.data ?? {}, updated_at: rec.updated_at, updated_by: rec.updated_by, pending: false }
}

export type { Envelope }
