import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRxDatabase, type RxDatabase, type RxJsonSchema } from 'rxdb'
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory'

import { FieldsyncClient, MemoryStorage, uuid, type Collection } from '../src/index.ts'
import { replicateFieldsync, type FieldsyncDocument, type FieldsyncRejection } from '../src/rxdb.ts'
import { FlakyProxy, Server, password, seedField, visit, waitFor } from './harness.ts'

const synced: Collection[] = ['customers', 'route_plans', 'visits', 'orders']

const schema = (fields: Record<string, object>): RxJsonSchema<FieldsyncDocument> => ({
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: { id: { type: 'string', maxLength: 128 }, version: { type: 'number' }, ...fields },
  required: ['id', 'version'],
})

const schemas: Record<string, RxJsonSchema<FieldsyncDocument>> = {
  customers: schema({ code: { type: 'string' }, name: { type: 'string' }, territory_id: { type: 'string' }, grade: { type: 'string' }, notes: { type: 'string' } }),
  route_plans: schema({ rep_id: { type: 'string' }, date: { type: 'string' }, stops: { type: 'array' } }),
  visits: schema({ customer_id: { type: 'string' }, check_in: { type: 'object' }, check_out: { type: 'object' }, notes: { type: 'string' } }),
  orders: schema({ customer_id: { type: 'string' }, status: { type: 'string' }, lines: { type: 'array' } }),
}

/** A device: an RxDB database in memory replicating the four collections with fieldsync. */
async function device(t: { after: (fn: () => unknown) => void }, client: FieldsyncClient, o: { live?: boolean, rejected?: FieldsyncRejection[] } = {}) {
  const db: RxDatabase = await createRxDatabase({ name: `db${uuid().replaceAll('-', '')}`, storage: getRxStorageMemory(), multiInstance: false })
  await db.addCollections(Object.fromEntries(synced.map(c => [c, { schema: schemas[c]! }])))
  const states = synced.map(c => replicateFieldsync({
    client, collection: db.collections[c]!, fieldsyncCollection: c, live: o.live ?? true, batchSize: 2,
    waitForLeadership: false, retryTime: 200, onRejected: r => o.rejected?.push(r),
  }))
  t.after(async () => { await Promise.all(states.map(s => s.cancel())); await db.close() })
  await Promise.all(states.map(s => s.awaitInitialReplication()))
  const ids = async (c: Collection) => (await db.collections[c]!.find().exec()).map(d => d.id as string).sort()
  const doc = async (c: Collection, id: string) => (await db.collections[c]!.findOne(id).exec())?.toJSON() as Record<string, unknown> | undefined
  const settle = () => Promise.all(states.map(s => s.awaitInSync()))
  return { db, states, ids, doc, settle }
}

test('RxDB: two reps and their manager replicate customers, route plans, visits and orders', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const repN = await device(t, await s.client('rep-n', 'phone-n'))
  const repS = await device(t, await s.client('rep-s', 'phone-s'))
  const boss = await device(t, await s.client('boss', 'laptop'))

  // Each sees its scope, paged in twos.
  assert.deepEqual(await repN.ids('customers'), ['c-1', 'c-2', 'c-3'])
  assert.deepEqual(await repS.ids('customers'), ['c-4', 'c-5', 'c-6'])
  assert.deepEqual(await boss.ids('customers'), ['c-1', 'c-2', 'c-3', 'c-4', 'c-5', 'c-6'])
  assert.deepEqual(await repN.ids('route_plans'), ['rp-n'])
  assert.deepEqual(await boss.ids('route_plans'), ['rp-n', 'rp-s'])
  assert.equal((await repN.doc('customers', 'c-1'))?.version, 1)

  // A visit and an order recorded on a rep's database reach the manager's
  // through the live stream within 3 s.
  const started = Date.now()
  await repN.db.collections.visits!.insert({ id: 'v-1', version: 0, ...visit('c-1', { notes: 'shelf empty' }) })
  await waitFor('the visit on the manager\'s database', async () => (await boss.doc('visits', 'v-1')) !== undefined, 3000)
  t.diagnostic(`visit reached the manager in ${Date.now() - started} ms`)
  assert.equal((await boss.doc('visits', 'v-1'))?.notes, 'shelf empty')
  await waitFor('the visit\'s version on the rep\'s database', async () => (await repN.doc('visits', 'v-1'))?.version === 1)
  assert.equal((await s.record('visits', 'v-1'))?.version, 1)

  await repN.db.collections.orders!.insert({ id: 'o-1', version: 0, customer_id: 'c-1', visit_id: 'v-1', status: 'draft', lines: [{ product_id: 'p-1', quantity: 3, unit_price: 1200, discount: 0 }] })
  await waitFor('the order on the manager\'s database', async () => (await boss.doc('orders', 'o-1'))?.total === 3600, 3000)
  assert.equal((await repS.ids('orders')).length, 0, 'not in the other rep\'s territory')

  // Concurrent edits of fields that do not overlap are merged by the server.
  const bossC1 = (await boss.db.collections.customers!.findOne('c-1').exec())!
  const repC1 = (await repN.db.collections.customers!.findOne('c-1').exec())!
  await Promise.all([bossC1.incrementalPatch({ grade: 'A' }), repC1.incrementalPatch({ notes: 'ring twice' })])
  await waitFor('both edits on both databases', async () => {
    const [a, b] = [await boss.doc('customers', 'c-1'), await repN.doc('customers', 'c-1')]
    return a?.grade === 'A' && a?.notes === 'ring twice' && b?.grade === 'A' && b?.notes === 'ring twice' && a?.version === 3 && b?.version === 3
  })
  const server = await s.record('customers', 'c-1')
  assert.equal(server?.version, 3)
  assert.deepEqual([server?.data?.grade, server?.data?.notes], ['A', 'ring twice'])

  // Edits of the same field: the server keeps one, the other is a conflict
  // that comes back as the server's record; both databases end with it.
  await repN.settle()
  await boss.settle()
  const b2 = (await boss.db.collections.customers!.findOne('c-2').exec())!
  const r2 = (await repN.db.collections.customers!.findOne('c-2').exec())!
  await Promise.all([b2.incrementalPatch({ notes: 'from the manager' }), r2.incrementalPatch({ notes: 'from the rep' })])
  const final = async () => (await s.record('customers', 'c-2'))?.data?.notes
  await waitFor('both databases on the server\'s record', async () => {
    const want = await final()
    return (await boss.doc('customers', 'c-2'))?.notes === want && (await repN.doc('customers', 'c-2'))?.notes === want
  })
  assert.equal((await s.record('customers', 'c-2'))?.version, 2, 'one write won, the other was not written')

  // A delete by the manager, and a customer moved to another territory,
  // disappear from the rep's database; the moved one appears on the other rep's.
  const c3 = (await boss.db.collections.customers!.findOne('c-3').exec())!
  await c3.remove()
  await waitFor('c-3 gone from the rep', async () => !(await repN.ids('customers')).includes('c-3'), 3000)
  const c1 = (await s.record('customers', 'c-1'))!
  await s.write({ collection: 'customers', id: 'c-1', base_version: c1.version, data: { ...c1.data, territory_id: 't-south' } })
  await waitFor('c-1 moved', async () => !(await repN.ids('customers')).includes('c-1') && (await repS.ids('customers')).includes('c-1'), 3000)
  assert.deepEqual(await repN.ids('customers'), ['c-2'])
  assert.equal((await s.record('customers', 'c-3'))?.deleted, true)
})

test('RxDB: rejections go back to the server\'s state; blind retries never write twice', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const proxy = await FlakyProxy.start(t, s.url)
  const client = new FieldsyncClient({
    baseUrl: proxy.url, deviceId: 'phone-n', storage: new MemoryStorage(), requestTimeoutMs: 1500,
    retry: { maxAttempts: 1, baseDelayMs: 5, maxDelayMs: 20 }, // every lost answer goes back to RxDB, which retries the push as it was
  })
  await client.login('rep-n', password('rep-n'))
  const rejected: FieldsyncRejection[] = []
  const rep = await device(t, client, { rejected })

  // A rep may not rename a customer: refused, and the name goes back.
  const c1 = (await rep.db.collections.customers!.findOne('c-1').exec())!
  await c1.incrementalPatch({ name: 'Renamed' })
  await waitFor('the rejection', () => rejected.length > 0)
  assert.equal(rejected[0]?.id, 'c-1')
  assert.equal(rejected[0]?.error.code, 'forbidden')
  await waitFor('the name back', async () => (await rep.doc('customers', 'c-1'))?.name === 'Shop 1')

  proxy.setFlaky(true)
  const n = 12
  for (let i = 0; i < n; i++) await rep.db.collections.visits!.insert({ id: `v-${i}`, version: 0, ...visit('c-2', { notes: `visit ${i}` }) })
  await waitFor('every visit on the server', async () => {
    const all = await s.records()
    return [...all.values()].filter(e => e.collection === 'visits').length === n
  }, 60_000)
  proxy.setFlaky(false)
  await rep.states.find((_, i) => synced[i] === 'visits')!.awaitInSync()
  const visits = [...(await s.records()).values()].filter(e => e.collection === 'visits')
  assert.equal(visits.length, n)
  for (const v of visits) assert.equal(v.version, 1, `${v.id} written once`)
  assert.ok(proxy.dropped + proxy.cut + proxy.stalled > 0, 'the proxy misbehaved')
  t.diagnostic(`dropped ${proxy.dropped}, cut ${proxy.cut}, stalled ${proxy.stalled}`)
})
