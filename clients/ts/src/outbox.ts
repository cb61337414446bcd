import type { OutboxEntry, StoredRecord } from './storage.js'
import type { RecordData } from './types.js'

// The outbox keeps at most one unsent row per record: a change to a record
// whose last row has not been sent yet is folded into that row (its base
// stays the version the first change was made on). A row once sent is
// frozen, so that a retry sends exactly what the server may already have
// answered; changes made meanwhile queue behind it, and when it lands they
// are rebased onto the version it produced. Rows are pushed in the order
// they were made, and a push carries at most one row per record.

/** What folding a change into the outbox writes. */
export interface Folded {
  put?: OutboxEntry
  drop?: number
  /** The hold the change let go of, if no other row keeps it. */
  released?: string
}

/**
 * fold works out the outbox write of a local change of one record, given
 * that record's rows (by seq) and its stored state. It returns undefined
 * for a delete of a record the device does not have.
 */
export function fold(rows: OutboxEntry[], known: StoredRecord | undefined, change: Omit<OutboxEntry, 'seq' | 'base_version' | 'sent' | 'mutation_id' | 'created_at'>,
  fresh: () => Pick<OutboxEntry, 'seq' | 'mutation_id' | 'created_at'>): Folded | undefined {
  const last = rows.at(-1)
  if (last && !last.sent) {
    if (change.op === 'delete' && rows.length === 1 && last.base_version === 0) {
      // Created here and never sent: forget it.
      return { drop: last.seq, released: last.hold }
    }
    const hold = change.hold ?? last.hold
    const put: OutboxEntry = { ...last, op: change.op, data: change.data, hold }
    if (change.op === 'delete') delete put.data
    return { put, released: hold !== last.hold ? last.hold : undefined }
  }
  const exists = known !== undefined && !known.deleted
  if (change.op === 'delete' && rows.length === 0 && !exists) return undefined
  const put: OutboxEntry = { ...fresh(), ...change, base_version: exists ? known.version : 0, sent: false }
  if (put.hold === undefined) delete put.hold
  return { put }
}

/**
 * rebase returns the record's later unsent rows moved onto the write that
 * landed as rec: they name rec's version, or 0 to create the record again
 * after a delete. When the server merged the write with changes of others,
 * a later upsert keeps only the fields it changed itself on top of the
 * merged record, so as not to undo what the others did.
 */
export function rebase(landed: OutboxEntry, rec: StoredRecord, merged: boolean, later: OutboxEntry[]): OutboxEntry[] {
  const base = rec.deleted ? 0 : rec.version
  return later.map(l => {
    const r = { ...l, base_version: base }
    if (merged && l.op === 'upsert' && landed.op === 'upsert' && l.data && landed.data) {
      r.data = rebaseFields(landed.data, l.data, rec.data ?? {})
    }
    return r
  })
}

/** rebaseFields returns onto with the top-level fields that changed from before to after. */
export function rebaseFields(before: RecordData, after: RecordData, onto: RecordData): RecordData {
  const o: RecordData = { ...onto }
  for (const k of Object.keys(before)) if (!(k in after)) delete o[k]
  for (const [k, v] of Object.entries(after)) if (!sameJSON(before[k], v)) o[k] = v
  return o
}

/** canonical is JSON with object keys sorted, so that equal values give equal text. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      return Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    }
    return x
  })
}

export function sameJSON(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b)
}
