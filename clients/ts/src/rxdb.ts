// RxDB replication with fieldsync: replicateFieldsync keeps one RxDB
// collection in step with one fieldsync collection, on RxDB's own
// replication protocol (replicateRxCollection).
import type { RxCollection, RxReplicationPullStreamItem, RxReplicationWriteToMasterRow, WithDeleted } from 'rxdb'
import { replicateRxCollection, type RxReplicationState } from 'rxdb/plugins/replication'
import { Subject } from 'rxjs'

import type { FieldsyncClient } from './client.js'
import { sha256Hex } from './client.js'
import { canonical } from './outbox.js'
import type { Collection, Envelope, ErrorBody, Mutation, RecordData } from './types.js'

/** An RxDB document of a fieldsync record: its id, the server's version, and its data's fields. */
export type FieldsyncDocument = { id: string, version: number } & RecordData

/** RxDB's checkpoint of a fieldsync replication: the server's opaque checkpoint. */
export interface FieldsyncCheckpoint {
  checkpoint: string
}

/** A change the server refused for good; the local document went back to the server's state. */
export interface FieldsyncRejection {
  collection: Collection
  id: string
  op: 'upsert' | 'delete'
  data?: RecordData
  error: ErrorBody
}

/** What replicateFieldsync is given. */
export interface ReplicateFieldsyncOptions<T extends FieldsyncDocument> {
  /** A signed-in client (its retries and tokens are used). */
  client: FieldsyncClient
  /** The RxDB collection; its primary key is `id`, and it has a number field `version`. */
  collection: RxCollection<T>
  /** The fieldsync collection it mirrors. */
  fieldsyncCollection: Collection
  /** Keep replicating, woken by the server's live stream; default true. */
  live?: boolean
  /** Documents per pull and per push; default 100. */
  batchSize?: number
  /** Names the replication's checkpoint in RxDB; default from the server's address and the collection. */
  replicationIdentifier?: string
  /** Wait between RxDB's retries of a failed pull or push, in ms; default 5,000. */
  retryTime?: number
  /** Wait to be the leader among tabs first (RxDB's leader election); default true. */
  waitForLeadership?: boolean
  autoStart?: boolean
  /** Told of each rejected change. */
  onRejected?: (r: FieldsyncRejection) => void
}

const ownFields = new Set(['id', 'version', '_deleted', '_meta', '_rev', '_attachments'])

/** The record data of a document: its fields but for id, version and RxDB's own. */
export function documentData(doc: Record<string, unknown>): RecordData {
  const data: RecordData = {}
  for (const [k, v] of Object.entries(doc)) if (!ownFields.has(k)) data[k] = v
  return data
}

/** The document of an envelope; a deleted one (or one that left the caller's scope) is `_deleted`. */
export function envelopeDocument<T extends FieldsyncDocument>(e: Envelope): WithDeleted<T> {
  return { ...(e.deleted ? {} : e.data ?? {}), id: e.id, version: e.version, _deleted: e.deleted } as unknown as WithDeleted<T>
}

/**
 * A mutation id derived from what is pushed, so that RxDB's blind retries
 * of a push (after a lost answer) send the same id and the server answers
 * them without writing twice.
 */
async function mutationId(device: string, m: Omit<Mutation, 'mutation_id'>): Promise<string> {
  const h = await sha256Hex(new TextEncoder().encode(canonical([device, m.collection, m.id, m.op, m.base_version, m.data ?? null])))
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

/**
 * replicateFieldsync starts RxDB's replication of collection with the
 * fieldsync collection and returns its RxReplicationState.
 *
 * - Pull asks the server for that collection only and keeps pulling while
 *   it says has_more, even when a page comes back short.
 * - Push sends each document as an upsert (or a delete) on the version its
 *   RxDB master state has. Answers come back as master states: applied
 *   ones with their new version, merged ones and conflicts as the server's
 *   record, which RxDB's conflict handler then settles (by default the
 *   server's record wins). Rejections go back to the server's state and
 *   to onRejected.
 * - Scope removals arrive as deleted documents and are deleted locally.
 * - With live, stream$ emits RESYNC on each `changes` event of the
 *   server's live stream and whenever it (re)connects.
 */
export function replicateFieldsync<T extends FieldsyncDocument>(o: ReplicateFieldsyncOptions<T>): RxReplicationState<T, FieldsyncCheckpoint> {
  const { client, fieldsyncCollection: coll } = o
  const live = o.live ?? true
  const batchSize = o.batchSize ?? 100
  const device = client.deviceId
  const stream$ = new Subject<RxReplicationPullStreamItem<T, FieldsyncCheckpoint>>()

  const state = replicateRxCollection<T, FieldsyncCheckpoint>({
    collection: o.collection,
    replicationIdentifier: o.replicationIdentifier ?? `fieldsync:${client.baseUrl}:${coll}`,
    live,
    retryTime: o.retryTime ?? 5000,
    waitForLeadership: o.waitForLeadership ?? true,
    autoStart: o.autoStart ?? true,
    pull: {
      batchSize,
      stream$: stream$.asObservable(),
      async handler(last, size) {
        let checkpoint = last?.checkpoint ?? ''
        const documents: WithDeleted<T>[] = []
        for (;;) {
          const page = await client.api.pull({ checkpoint, limit: Math.max(1, size - documents.length), collections: [coll] })
          for (const e of page.changes ?? []) if (e.collection === coll) documents.push(envelopeDocument<T>(e))
          const moved = page.checkpoint !== checkpoint
          checkpoint = page.checkpoint
          if (!page.has_more || !moved || documents.length >= size) break
        }
        return { documents, checkpoint: { checkpoint } }
      },
    },
    push: {
      batchSize,
      async handler(rows: RxReplicationWriteToMasterRow<T>[]) {
        const sent = await Promise.all(rows.map(async row => {
          const doc = row.newDocumentState as unknown as Record<string, unknown>
          const master = row.assumedMasterState as unknown as Record<string, unknown> | undefined
          const base = master && !master._deleted ? Number(master.version ?? 0) : 0
          const m: Omit<Mutation, 'mutation_id'> = doc._deleted
            ? { collection: coll, id: String(doc.id), op: 'delete', base_version: base }
            : { collection: coll, id: String(doc.id), op: 'upsert', base_version: base, data: documentData(doc) }
          return { row, mutation: { ...m, mutation_id: await mutationId(device, m) } as Mutation }
        }))
        // A delete of a document the server never had needs no push.
        const toSend = sent.filter(s => !(s.mutation.op === 'delete' && s.mutation.base_version === 0))
        const { results = [] } = toSend.length ? await client.api.push({ mutations: toSend.map(s => s.mutation) }) : { results: [] }
        const byId = new Map(results.map(r => [r.mutation_id, r]))
        const masters: WithDeleted<T>[] = []
        for (const { row, mutation: m } of toSend) {
          const res = byId.get(m.mutation_id)
          if (!res) throw new Error(`fieldsync push: no answer for ${m.collection} ${m.id}`)
          switch (res.status) {
            case 'applied':
              masters.push({ ...row.newDocumentState, version: res.version ?? 0 } as WithDeleted<T>)
              break
            case 'merged':
            case 'conflict':
              if (res.record) masters.push(envelopeDocument<T>(res.record))
              break
            case 'rejected': {
              const r: FieldsyncRejection = { collection: coll, id: m.id, op: m.op, error: res.error ?? { code: 'internal', message: 'rejected' } }
              if (m.data) r.data = m.data
              o.onRejected?.(r)
              masters.push(row.assumedMasterState ?? ({ id: m.id, version: 0, _deleted: true } as unknown as WithDeleted<T>))
              break
            }
          }
        }
        return masters
      },
    },
  })

  if (live) {
    const stop = client.subscribe(() => stream$.next('RESYNC'), { collections: [coll], onReady: () => stream$.next('RESYNC') })
    state.onCancel.push(() => { stop(); stream$.complete() })
  }
  return state
}
