// A rep's first sync on a new device, timed: the client into MemoryStorage,
// then RxDB's initial replication of the same collections into its memory
// storage. Run by BenchmarkFirstSync (clients/ts/ts_test.go), which seeds
// the server; prints one JSON line.
import { createRxDatabase, type RxJsonSchema } from 'rxdb'
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory'

import { FieldsyncClient, MemoryStorage, type Collection } from '../src/index.ts'
import { replicateFieldsync, type FieldsyncDocument } from '../src/rxdb.ts'

const url = process.env.FIELDSYNC_URL!
const user = process.env.FIELDSYNC_USER!
const password = process.env.FIELDSYNC_PASSWORD!

const start = performance.now()
const client = new FieldsyncClient({ baseUrl: url, deviceId: 'bench-ts', storage: new MemoryStorage() })
await client.login(user, password)
const report = await client.sync()
const clientMs = performance.now() - start

const read: Collection[] = ['territories', 'customers', 'products', 'price_lists', 'route_plans']
const schema: RxJsonSchema<FieldsyncDocument> = {
  version: 0, primaryKey: 'id', type: 'object',
  properties: { id: { type: 'string', maxLength: 128 }, version: { type: 'number' } }, required: ['id', 'version'],
}
const rxStart = performance.now()
const rxClient = new FieldsyncClient({ baseUrl: url, deviceId: 'bench-rxdb', storage: new MemoryStorage() })
await rxClient.login(user, password)
const db = await createRxDatabase({ name: `bench${Date.now()}`, storage: getRxStorageMemory(), multiInstance: false })
await db.addCollections(Object.fromEntries(read.map(c => [c, { schema }])))
const states = read.map(c => replicateFieldsync({ client: rxClient, collection: db.collections[c]!, fieldsyncCollection: c, live: false, batchSize: 500, waitForLeadership: false }))
await Promise.all(states.map(s => s.awaitInitialReplication()))
const rxdbMs = performance.now() - rxStart
let docs = 0
for (const c of read) docs += await db.collections[c]!.count().exec()
await Promise.all(states.map(s => s.cancel()))
await db.close()
console.log(JSON.stringify({ clientMs, rxdbMs, pulled: report.pulled, docs }))
