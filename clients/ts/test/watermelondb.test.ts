import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Database, Model, appSchema, tableSchema, type ColumnSchema } from '@nozbe/watermelondb'
import LokiJSAdapterModule from '@nozbe/watermelondb/adapters/lokijs/index.js'

import type { FieldsyncClient } from '../src/index.ts'
import { syncWithFieldsync, type WatermelonRejection } from '../src/watermelondb.ts'
import { Server, seedField, visit } from './harness.ts'
import logger from '@nozbe/watermelondb/utils/common/logger/index.js'

;((logger as unknown as { default?: { silence: () => void } }).default ?? (logger as unknown as { silence: () => void })).silence()

type LokiJSAdapterClass = new (o: { schema: typeof schema, useWebWorker: boolean, useIncrementalIndexedDB: boolean, dbName: string }) => ConstructorParameters<typeof Database>[0]['adapter']
const LokiJSAdapter: LokiJSAdapterClass = (LokiJSAdapterModule as unknown as { default?: LokiJSAdapterClass }).default ?? (LokiJSAdapterModule as unknown as LokiJSAdapterClass)

const cols = (spec: Record<string, 'string' | 'number' | 'boolean'>): ColumnSchema[] => [
  { name: 'version', type: 'number' },
  ...Object.entries(spec).map(([name, type]) => ({ name, type, isOptional: true })),
]

const schema = appSchema({
  version: 1,
  tables: [
    tableSchema({ name: 'customers', columns: cols({
      code: 'string', name: 'string', address: 'string', territory_id: 'string', lat: 'number', lng: 'number', grade: 'string',
      contacts: 'string', credit_limit: 'number', payment_terms_days: 'number', open_balance: 'number', tags: 'string',
      notes: 'string', distributor_id: 'string', geofence_m: 'number',
    }) }),
    tableSchema({ name: 'route_plans', columns: cols({ rep_id: 'string', date: 'string', stops: 'string' }) }),
    tableSchema({ name: 'visits', columns: cols({
      customer_id: 'string', route_plan_id: 'string', check_in: 'string', check_out: 'string', notes: 'string', outcome: 'string',
      rep_id: 'string', distance_m: 'number', within_geofence: 'boolean', duration_s: 'number',
    }) }),
    tableSchema({ name: 'orders', columns: cols({
      customer_id: 'string', visit_id: 'string', lines: 'string', status: 'string', requested_delivery_date: 'string',
      payment_due_date: 'string', notes: 'string', placed_by: 'string', total: 'number', distributor_id: 'string',
    }) }),
  ],
})

class Customer extends Model { static override table = 'customers' }
class RoutePlan extends Model { static override table = 'route_plans' }
class Visit extends Model { static override table = 'visits' }
class Order extends Model { static override table = 'orders' }

let n = 0
function device(client: FieldsyncClient, rejected: WatermelonRejection[] = []) {
  const adapter = new LokiJSAdapter({ schema, useWebWorker: false, useIncrementalIndexedDB: false, dbName: `wm${++n}` })
  const database = new Database({ adapter, modelClasses: [Customer, RoutePlan, Visit, Order] })
  const raw = async (table: string, id: string) => {
    const r = await database.get(table).find(id).catch(() => undefined)
    return r && r._raw._status !== 'deleted' ? (r._raw as unknown as Record<string, unknown>) : undefined
  }
  const ids = async (table: string) => (await database.get(table).query().fetch()).map(r => r.id).sort()
  const sync = () => syncWithFieldsync({ database, client, onRejected: r => rejected.push(r) })
  const create = (table: string, id: string, fields: Record<string, unknown>) => database.write(async () => {
    await database.get(table).create(r => {
      r._raw.id = id
      for (const [k, v] of Object.entries(fields)) r._setRaw(k, (typeof v === 'object' && v !== null ? JSON.stringify(v) : v) as never)
    })
  })
  const update = (table: string, id: string, fields: Record<string, unknown>) => database.write(async () => {
    const r = await database.get(table).find(id)
    await r.update(() => { for (const [k, v] of Object.entries(fields)) r._setRaw(k, v as never) })
  })
  const remove = (table: string, id: string) => database.write(async () => { await (await database.get(table).find(id)).markAsDeleted() })
  return { database, raw, ids, sync, create, update, remove }
}

test('WatermelonDB: two reps and their manager sync customers, route plans, visits and orders', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const repNRejected: WatermelonRejection[] = []
  const repN = device(await s.client('rep-n', 'phone-n'), repNRejected)
  const repS = device(await s.client('rep-s', 'phone-s'))
  const boss = device(await s.client('boss', 'laptop'))
  for (const d of [repN, repS, boss]) await d.sync()

  assert.deepEqual(await repN.ids('customers'), ['c-1', 'c-2', 'c-3'])
  assert.deepEqual(await repS.ids('customers'), ['c-4', 'c-5', 'c-6'])
  assert.deepEqual(await boss.ids('customers'), ['c-1', 'c-2', 'c-3', 'c-4', 'c-5', 'c-6'])
  assert.deepEqual(await boss.ids('route_plans'), ['rp-n', 'rp-s'])
  const stops = JSON.parse(String((await repN.raw('route_plans', 'rp-n'))?.stops))
  assert.equal(stops[0].customer_id, 'c-1', 'arrays kept as JSON text')
  assert.equal((await repN.raw('customers', 'c-1'))?.version, 1)

  // A visit and an order recorded on a rep's database reach the manager's.
  await repN.create('visits', 'v-1', { version: 0, ...visit('c-1', { notes: 'shelf empty' }) })
  await repN.create('orders', 'o-1', { version: 0, customer_id: 'c-1', visit_id: 'v-1', status: 'draft', lines: [{ product_id: 'p-1', quantity: 2, unit_price: 1200, discount: 0 }] })
  const pushed = await repN.sync()
  assert.equal(pushed.applied, 2)
  assert.equal((await repN.raw('visits', 'v-1'))?.version, 1, 'the version came back with the next pull')
  assert.equal((await repN.raw('orders', 'o-1'))?.total, 2400, 'with the server-owned fields')
  await boss.sync()
  assert.equal((await boss.raw('visits', 'v-1'))?.notes, 'shelf empty')
  assert.equal((await boss.raw('orders', 'o-1'))?.status, 'draft')
  await repS.sync()
  assert.deepEqual(await repS.ids('visits'), [])

  // Concurrent edits of different fields: merged by the server.
  await boss.update('customers', 'c-1', { grade: 'A' })
  await repN.update('customers', 'c-1', { notes: 'ring twice' })
  await boss.sync()
  const m = await repN.sync()
  assert.equal(m.applied + m.merged, 1, 'pulled first, so the server had nothing new to merge')
  await boss.sync()
  for (const d of [boss, repN]) {
    const c1 = await d.raw('customers', 'c-1')
    assert.deepEqual([c1?.grade, c1?.notes, c1?.version], ['A', 'ring twice', 3])
  }

  // The same field, changed on the server between the rep's pull and its
  // push: the server refuses the stale write as a conflict; the record is
  // pulled, WatermelonDB's resolver keeps the local change on top of it,
  // and the push is retried on the new version.
  await boss.update('customers', 'c-2', { notes: 'from the manager' })
  await repN.update('customers', 'c-2', { notes: 'from the rep' })
  let raced = false
  const racing = await s.client('rep-n', 'phone-n2', {
    fetch: async (input, init) => {
      if (!raced && String(input).endsWith('/v1/sync/push')) {
        raced = true
        await boss.sync()
      }
      return fetch(input, init)
    },
  })
  const rejected: WatermelonRejection[] = []
  const again = await syncWithFieldsync({ database: repN.database, client: racing, onRejected: r => rejected.push(r) })
  assert.equal(again.conflicts, 1)
  assert.equal(rejected[0]?.status, 'conflict')
  assert.equal(rejected[0]?.server?.data?.notes, 'from the manager')
  assert.ok(again.rounds >= 2, 'pulled and pushed again')
  const server = await s.record('customers', 'c-2')
  assert.equal(server?.data?.notes, 'from the rep')
  assert.equal(server?.version, 3)
  assert.equal((await repN.raw('customers', 'c-2'))?.version, 3)

  // Deletes carry the version kept for the record (the manager deletes a
  // customer); it disappears from the rep's database, and so does a
  // customer moved to another territory.
  await boss.remove('customers', 'c-3')
  const del = await boss.sync()
  assert.equal(del.applied, 1, JSON.stringify(repNRejected))
  assert.equal((await s.record('customers', 'c-3'))?.deleted, true)
  const c1 = (await s.record('customers', 'c-1'))!
  await s.write({ collection: 'customers', id: 'c-1', base_version: c1.version, data: { ...c1.data, territory_id: 't-south' } })
  await repN.sync()
  await repS.sync()
  assert.deepEqual(await repN.ids('customers'), ['c-2'])
  assert.ok((await repS.ids('customers')).includes('c-1'))

  // A refusal for good goes back as a rejected id: the change stays local and is reported.
  const mine: WatermelonRejection[] = []
  const rn = device(await s.client('rep-n', 'phone-n3'), mine)
  await rn.sync()
  await rn.update('customers', 'c-2', { name: 'Renamed' })
  const r = await rn.sync()
  assert.equal(r.rejected, 1)
  assert.equal(mine[0]?.error?.code, 'forbidden')
  assert.equal((await rn.raw('customers', 'c-2'))?._status, 'updated', 'left changed locally')
  assert.equal((await s.record('customers', 'c-2'))?.data?.name, 'Shop 2')
})
