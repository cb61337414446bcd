// WatermelonDB sync with fieldsync: syncWithFieldsync runs WatermelonDB's
// synchronize() with pull and push handlers that speak fieldsync.
import { Q, type Database } from '@nozbe/watermelondb'
import { synchronize, type SyncConflictResolver, type SyncDatabaseChangeSet, type SyncPullArgs, type SyncPushArgs } from '@nozbe/watermelondb/sync/index.js'

import type { FieldsyncClient } from './client.js'
import { sha256Hex } from './client.js'
import { FieldsyncError } from './errors.js'
import { canonical } from './outbox.js'
import { collections, type Collection, type Envelope, type ErrorBody, type Mutation, type PushResult, type RecordData } from './types.js'

/** What syncWithFieldsync is given. */
export interface SyncWithFieldsyncOptions {
  database: Database
  /** A signed-in client (its retries and tokens are used). */
  client: FieldsyncClient
  /** WatermelonDB's conflict resolver; default WatermelonDB's (the server's record, with the columns changed locally kept). */
  conflictResolver?: SyncConflictResolver
  /**
   * Columns that hold JSON text (objects and arrays), by table, on top of
   * the contract's own (customers.contacts, route_plans.stops, visits.check_in…).
   */
  jsonColumns?: Record<string, string[]>
  /** Page size asked of pull; default 500. */
  pullLimit?: number
  /** Told of each change the server refused for good or that met a conflict. */
  onRejected?: (r: WatermelonRejection) => void
}

/** A pushed record the server did not write; it stays changed locally and is pushed again after the next pull. */
export interface WatermelonRejection {
  table: string
  id: string
  status: 'conflict' | 'rejected'
  error?: ErrorBody
  server?: Envelope
}

/** What one syncWithFieldsync did. */
export interface WatermelonSyncReport {
  /** synchronize() runs: a second one pulls the versions of what the first pushed, and retries conflicts. */
  rounds: number
  pulled: number
  pushed: number
  applied: number
  merged: number
  conflicts: number
  rejected: number
}

/** The contract's fields that are objects or arrays, kept as JSON text in a column. */
const contractJSON: Record<string, string[]> = {
  customers: ['contacts', 'tags'],
  price_lists: ['customer_ids', 'items'],
  route_plans: ['stops'],
  visits: ['check_in', 'check_out'],
  orders: ['lines', 'hold_reason'],
  territories: [],
  products: [],
  photos: [],
  targets: [],
}

const checkpointsKey = 'fieldsync_checkpoints'
const maxRounds = 3

interface Column { name: string, type: 'string' | 'number' | 'boolean', isOptional?: boolean }

/** A deterministic mutation id, so that a push retried after a lost answer is not written twice. */
async function mutationId(device: string, m: Omit<Mutation, 'mutation_id'>): Promise<string> {
  const h = await sha256Hex(new TextEncoder().encode(canonical(['wmdb', device, m.collection, m.id, m.op, m.base_version, m.data ?? null])))
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

/**
 * syncWithFieldsync syncs a WatermelonDB database with fieldsync through
 * WatermelonDB's synchronize().
 *
 * Each table named like a fieldsync collection is synced; a column per
 * top-level field of the record's data, objects and arrays as JSON text,
 * and a number column `version` with the server's version.
 *
 * Pull loops pages until the server has no more and hands WatermelonDB
 * one changes object; the server's opaque checkpoint is kept in the
 * database's local storage beside WatermelonDB's numeric timestamp. Push
 * sends upserts on the pulled version (deletes with the version kept for
 * the record); records met by a conflict or a rejection go back as
 * experimentalRejectedIds, stay changed locally, and are pushed again
 * after the next pull has brought the server's record, which
 * WatermelonDB's conflict resolver merges with the local changes. When
 * anything was pushed, synchronize() runs again to pull the new versions
 * and retry the conflicts (three runs at most).
 */
export async function syncWithFieldsync(o: SyncWithFieldsyncOptions): Promise<WatermelonSyncReport> {
  const { database, client } = o
  const tables = (Object.keys(database.schema.tables) as Collection[]).filter(t => collections.includes(t))
  const json = (t: string) => new Set([...(contractJSON[t] ?? []), ...(o.jsonColumns?.[t] ?? [])])
  const report: WatermelonSyncReport = { rounds: 0, pulled: 0, pushed: 0, applied: 0, merged: 0, conflicts: 0, rejected: 0 }

  const columnsOf = (t: string) => Object.values(database.schema.tables[t]!.columns) as Column[]

  const toRaw = (e: Envelope): Record<string, unknown> => {
    const raw: Record<string, unknown> = { id: e.id, version: e.version }
    const data = e.data ?? {}
    for (const c of columnsOf(e.collection)) {
      if (c.name === 'version') continue
      const v = data[c.name]
      if (v === undefined || v === null) raw[c.name] = null
      else raw[c.name] = typeof v === 'object' ? JSON.stringify(v) : v
    }
    return raw
  }

  const toData = (t: string, raw: Record<string, unknown>): RecordData => {
    const data: RecordData = {}
    const js = json(t)
    for (const c of columnsOf(t)) {
      if (c.name === 'version') continue
      const v = raw[c.name]
      if (v === null || v === undefined || (js.has(c.name) && v === '')) continue
      data[c.name] = js.has(c.name) && typeof v === 'string' ? JSON.parse(v) : v
    }
    return data
  }

  const pullChanges = async ({ lastPulledAt }: SyncPullArgs) => {
    const kept = ((await database.localStorage.get(checkpointsKey)) ?? {}) as Record<string, string>
    let checkpoint = lastPulledAt ? kept[String(lastPulledAt)] ?? '' : ''
    const byTable = new Map<string, Map<string, Envelope>>(tables.map(t => [t, new Map()]))
    for (;;) {
      let page
      try {
        page = await client.api.pull({ checkpoint, limit: o.pullLimit ?? 500, collections: tables })
      } catch (err) {
        // A checkpoint made for another set of tables (the schema grew) is
        // refused: start again from the beginning.
        if (!(err instanceof FieldsyncError) || err.status !== 400 || checkpoint === '' || report.pulled > 0) throw err
        checkpoint = ''
        continue
      }
      for (const e of page.changes ?? []) byTable.get(e.collection)?.set(e.id, e)
      report.pulled += page.changes?.length ?? 0
      const moved = page.checkpoint !== checkpoint
      checkpoint = page.checkpoint
      if (!page.has_more || !moved) break
    }
    const changes: SyncDatabaseChangeSet = {}
    for (const [t, envs] of byTable) {
      const c = { created: [] as Record<string, unknown>[], updated: [] as Record<string, unknown>[], deleted: [] as string[] }
      const ids = [...envs.keys()]
      const local = new Set(ids.length ? await database.get(t).query(Q.where('id', Q.oneOf(ids))).fetchIds() : [])
      for (const e of envs.values()) {
        if (e.deleted) c.deleted.push(e.id)
        else (local.has(e.id) ? c.updated : c.created).push(toRaw(e))
      }
      ;(changes as Record<string, unknown>)[t] = c
    }
    const timestamp = Math.max(Date.now(), (lastPulledAt ?? 0) + 1)
    // Keep the checkpoints of the last few timestamps: synchronize() may
    // fail after the pull and start again from an earlier timestamp.
    const recent = Object.entries(kept).sort(([a], [b]) => Number(b) - Number(a)).slice(0, 4)
    await database.localStorage.set(checkpointsKey, Object.fromEntries([...recent, [String(timestamp), checkpoint]]))
    return { changes, timestamp }
  }

  let again = false
  const pushChanges = async ({ changes }: SyncPushArgs) => {
    const rows: Array<{ table: string, mutation: Mutation }> = []
    for (const [table, c] of Object.entries(changes) as Array<[Collection, { created: Record<string, unknown>[], updated: Record<string, unknown>[], deleted: string[] }]>) {
      for (const raw of [...c.created, ...c.updated]) {
        const m: Omit<Mutation, 'mutation_id'> = { collection: table, id: String(raw.id), op: 'upsert', base_version: Number(raw.version ?? 0), data: toData(table, raw) }
        rows.push({ table, mutation: { ...m, mutation_id: await mutationId(client.deviceId, m) } })
      }
      for (const id of c.deleted) {
        // Marked deleted, the record is still there until the push is done: its version is the base.
        const rec = await database.get(table).find(id).catch(() => undefined)
        const base = Number((rec?._raw as Record<string, unknown> | undefined)?.version ?? 0)
        if (base === 0) continue // never on the server
        const m: Omit<Mutation, 'mutation_id'> = { collection: table, id, op: 'delete', base_version: base }
        rows.push({ table, mutation: { ...m, mutation_id: await mutationId(client.deviceId, m) } })
      }
    }
    if (rows.length === 0) return {}
    const results: PushResult[] = []
    for (let i = 0; i < rows.length; i += 500) {
      const { results: r = [] } = await client.api.push({ mutations: rows.slice(i, i + 500).map(x => x.mutation) })
      results.push(...r)
    }
    const byId = new Map(results.map(r => [r.mutation_id, r]))
    const rejectedIds: Record<string, string[]> = {}
    report.pushed += rows.length
    for (const { table, mutation: m } of rows) {
      const res = byId.get(m.mutation_id)
      if (!res) throw new Error(`fieldsync push: no answer for ${table} ${m.id}`)
      if (res.status === 'applied' || res.status === 'merged') {
        report[res.status]++
        again = true
        continue
      }
      if (res.status === 'conflict') {
        report.conflicts++
        again = true
      } else {
        report.rejected++
      }
      ;(rejectedIds[table] ??= []).push(m.id)
      const r: WatermelonRejection = { table, id: m.id, status: res.status === 'conflict' ? 'conflict' : 'rejected' }
      if (res.error) r.error = res.error
      if (res.record) r.server = res.record
      o.onRejected?.(r)
    }
    return Object.keys(rejectedIds).length ? { experimentalRejectedIds: rejectedIds } : {}
  }

  do {
    again = false
    report.rounds++
    await synchronize({
      database, pullChanges, pushChanges,
      ...(o.conflictResolver ? { conflictResolver: o.conflictResolver } : {}),
    })
  } while (again && report.rounds < maxRounds)
  return report
}
