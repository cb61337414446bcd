import type { Conflict, OutboxEntry, QueuedPhoto, Rejection, Storage, StoredRecord, WriteSet } from './storage.js'
import type { Collection } from './types.js'

const stores = ['records', 'outbox', 'photos', 'meta', 'conflicts', 'rejections'] as const

function done<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

function finished(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('indexeddb: transaction aborted'))
  })
}

/**
 * IndexedDBStorage keeps a client's state in an IndexedDB database of the
 * browser (or any implementation of the IndexedDB API passed in). Each
 * commit is one readwrite transaction over every object store, so it lands
 * whole or not at all.
 */
export class IndexedDBStorage implements Storage {
  readonly #db: IDBDatabase

  private constructor(db: IDBDatabase) {
    this.#db = db
  }

  /** Opens (or creates) the database called name. */
  static async open(name: string, factory: IDBFactory = globalThis.indexedDB): Promise<IndexedDBStorage> {
    if (!factory) throw new Error('IndexedDBStorage: no IndexedDB here')
    const req = factory.open(name, 1)
    req.onupgradeneeded = () => {
      const db = req.result
      db.createObjectStore('records', { keyPath: ['collection', 'id'] })
      db.createObjectStore('outbox', { keyPath: 'seq' })
      db.createObjectStore('photos', { keyPath: 'sha256' })
      db.createObjectStore('meta')
      db.createObjectStore('conflicts', { autoIncrement: true })
      db.createObjectStore('rejections', { autoIncrement: true })
    }
    return new IndexedDBStorage(await done(req))
  }

  /** Closes the database. */
  close(): void {
    this.#db.close()
  }

  #read<T>(store: typeof stores[number], fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    return done(fn(this.#db.transaction(store, 'readonly').objectStore(store)))
  }

  record(collection: Collection, id: string): Promise<StoredRecord | undefined> {
    return this.#read('records', s => s.get([collection, id]))
  }

  async records(collection: Collection, ids: string[]): Promise<StoredRecord[]> {
    const s = this.#db.transaction('records', 'readonly').objectStore('records')
    const got = await Promise.all(ids.map(id => done<StoredRecord | undefined>(s.get([collection, id]))))
    return got.filter((r): r is StoredRecord => r !== undefined)
  }

  list(collection: Collection): Promise<StoredRecord[]> {
    return this.#read('records', s => s.getAll(IDBKeyRange.bound([collection, ''], [collection, '\uffff'])))
  }

  outbox(): Promise<OutboxEntry[]> {
    return this.#read('outbox', s => s.getAll())
  }

  photo(sha256: string): Promise<QueuedPhoto | undefined> {
    return this.#read('photos', s => s.get(sha256))
  }

  async photos(): Promise<string[]> {
    return (await this.#read('photos', s => s.getAllKeys())) as string[]
  }

  meta(key: string): Promise<string | undefined> {
    return this.#read('meta', s => s.get(key))
  }

  conflicts(): Promise<Conflict[]> {
    return this.#read('conflicts', s => s.getAll())
  }

  rejections(): Promise<Rejection[]> {
    return this.#read('rejections', s => s.getAll())
  }

  async commit(w: WriteSet): Promise<void> {
    const tx = this.#db.transaction([...stores], 'readwrite')
    const ok = finished(tx)
    const records = tx.objectStore('records')
    for (const r of w.records ?? []) records.put(r)
    const outbox = tx.objectStore('outbox')
    for (const seq of w.deleteOutbox ?? []) outbox.delete(seq)
    for (const e of w.putOutbox ?? []) outbox.put(e)
    const photos = tx.objectStore('photos')
    for (const h of w.deletePhotos ?? []) photos.delete(h)
    for (const p of w.putPhotos ?? []) photos.put(p)
    const meta = tx.objectStore('meta')
    for (const [k, v] of Object.entries(w.meta ?? {})) {
      if (v === null) meta.delete(k)
      else meta.put(v, k)
    }
    if (w.clearConflicts) tx.objectStore('conflicts').clear()
    if (w.clearRejections) tx.objectStore('rejections').clear()
    for (const c of w.addConflicts ?? []) tx.objectStore('conflicts').add(c)
    for (const r of w.addRejections ?? []) tx.objectStore('rejections').add(r)
    await ok
  }
}
