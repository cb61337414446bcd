// A rep's first sync on a new device, timed, once per line read from
// stdin: the client into a new MemoryStorage, then RxDB's initial
// replication of the same collections into a new memory database. Run by
// BenchmarkFirstSync (clients/ts/ts_test.go), which seeds the server and
// times the Go client in the same run; prints one JSON line per run. The
// process stays up between runs, as an app does, so that runs after the
// first measure the sync and not the start of Node.
import { createInterface } from 'node:readline'
import { createRxDatabase, type RxJsonSchema } from 'rxdb'
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory'

import { FieldsyncClient, MemoryStorage, type Collection } from '../src/index.ts'
import { replicateFieldsync, type FieldsyncDocument } from '../src/rxdb.ts'

const url = process.env.FIELDSYNC_URL!
const user = process.env.FIELDSYNC_USER!
const password = process.env.FIELDSYNC_PASSWORD!
const read: Collection[] = ['territories', 'customers', 'products', 'price_lists', 'route_plans']
const schema: RxJsonSchema<FieldsyncDocument> = {
  version: 0, primaryKey: 'id', type: 'object',
  properties: { id: { type: 'string', maxLength: 128 }, version: { type: 'number' } }, required: ['id', 'version'],
}

async function clientSync(): Promise<{ clientMs: number, pulled: number }> {
  const start = performance.now()
  const client = new FieldsyncClient({ baseUrl: url, deviceId: 'bench-ts', storage: new MemoryStorage() })
  await client.login(user, password)
  const report = await client.sync()
  return { clientMs: performance.now() - start, pulled: report.pulled }
}

let n = 0
async function rxdbSync(): Promise<{ rxdbMs: number, docs: number }> {
  const start = performance.now()
  const client = new FieldsyncClient({ baseUrl: url, deviceId: 'bench-rxdb', storage: new MemoryStorage() })
  await client.login(user, password)
  const db = await createRxDatabase({ name: `bench${++n}`, storage: getRxStorageMemory(), multiInstance: false })
  await db.addCollections(Object.fromEntries(read.map(c => [c, { schema }])))
  const states = read.map(c => replicateFieldsync({ client, collection: db.collections[c]!, fieldsyncCollection: c, live: false, batchSize: 500, waitForLeadership: false }))
  await Promise.all(states.map(s => s.awaitInitialReplication()))
  const rxdbMs = performance.now() - start
  let docs = 0
  for (const c of read) docs += await db.collections[c]!.count().exec()
  await Promise.all(states.map(s => s.cancel()))
  await db.close()
  return { rxdbMs, docs }
}

for await (const _line of createInterface({ input: process.stdin })) {
  const c = await clientSync()
  const r = await rxdbSync()
  console.log(JSON.stringify({ ...c, ...r }))
}
