import { test } from 'node:test'
import assert from 'node:assert/strict'
import { IDBFactory } from 'fake-indexeddb'
import 'fake-indexeddb/auto'

import { FieldsyncClient, FieldsyncError, IndexedDBStorage, MemoryStorage, NotFoundError, SSEParser, localWins, sha256Hex } from '../src/index.ts'
import { FlakyProxy, Server, jpeg, password, seedField, visit, waitFor } from './harness.ts'


test('sign-in, refresh rotation with one refresh in flight, reuse detection', async t => {
  const s = await Server.start(t)
  await seedField(s)
  let clock = Date.now()
  const c = await s.client('rep-n', 'phone-1', { now: () => clock })
  assert.equal(c.user?.username, 'rep-n')
  assert.deepEqual(c.user?.territories, ['t-north'])
  await assert.rejects(new FieldsyncClient({ baseUrl: s.url, deviceId: 'p', storage: new MemoryStorage() }).login('rep-n', 'wrong-password'),
    (e: FieldsyncError) => e.status === 401 && e.code === 'unauthorized')

  // The access token runs out (as far as the client's clock goes): five
  // requests at once share one refresh.
  await c.sync()
  clock += 20 * 60_000
  const before = c.stats.refreshes
  const pages = await Promise.all(Array.from({ length: 5 }, () => c.api.pull({ checkpoint: '', limit: 1 })))
  assert.equal(pages.length, 5)
  assert.equal(c.stats.refreshes - before, 1, 'one refresh for five requests')
  assert.equal(c.stats.logins, 1, 'no sign-in with the password after the first')

  // The server rotates: presenting a used refresh token is refused and
  // revokes the whole login; the client then signs in again with the
  // password it holds in memory, and a client made later on the same
  // storage without a password gets a clear 401.
  const first = await c.api.login({ username: 'rep-n', password: password('rep-n'), device_id: 'phone-2' })
  const second = await c.api.refresh(first.refresh_token)
  await assert.rejects(c.api.refresh(first.refresh_token), (e: FieldsyncError) => e.status === 401)
  await assert.rejects(c.api.refresh(second.refresh_token), (e: FieldsyncError) => e.status === 401, 'the rotated token was revoked with its login')

  const storage = new MemoryStorage()
  const a = await s.client('rep-n', 'phone-3', { storage })
  const kept = await storage.meta('refresh_token')
  assert.ok(kept)
  await a.sync() // uses the access token
  const restarted = new FieldsyncClient({ baseUrl: s.url, deviceId: 'phone-3', storage })
  await restarted.api.renew('') // force a refresh with the kept token
  assert.equal(restarted.stats.refreshes, 1)
  assert.notEqual(await storage.meta('refresh_token'), kept, 'rotated and kept')
  // The old one again: the server revokes that login; with no password, the
  // next call is a clear 401 and nothing is lost.
  await assert.rejects(c.api.refresh(kept!), (e: FieldsyncError) => e.status === 401)
  await restarted.put('visits', 'v-after-revoke', visit('c-1'))
  await assert.rejects(restarted.api.pull({ checkpoint: '' }), (e: FieldsyncError) => e.status === 401 && e.code === 'unauthorized')
  await assert.rejects(restarted.sync(), (e: FieldsyncError) => e.status === 401)
  assert.equal(await restarted.pending(), 1, 'the change waits')
  await restarted.login('rep-n', password('rep-n'))
  const rep = await restarted.sync()
  assert.equal(rep.applied, 1)
  assert.equal((await s.record('visits', 'v-after-revoke'))?.version, 1)

  // Another user cannot take over a storage filled for this one.
  const other = new FieldsyncClient({ baseUrl: s.url, deviceId: 'phone-3', storage })
  await assert.rejects(other.login('rep-s', password('rep-s')), (e: FieldsyncError) => e.code === 'other_owner')
})

test('push and pull in pages; folding, rebasing, conflicts and rejections kept', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const many = Array.from({ length: 23 }, (_, i) => ({ collection: 'products', id: `p-x${i}`, data: { sku: `X${i}`, name: `Item ${i}`, unit: 'pc', price: 100 + i, active: true } }))
  await s.write(...many)
  const c = await s.client('rep-n', 'phone-1', { batchSize: 3, pullLimit: 4 })
  const first = await c.sync()
  assert.equal(first.pulled, 1 + 3 + 24 + 1, 'own territory, its customers, every product, its route plan')
  assert.equal((await c.list('products')).length, 24)
  assert.deepEqual((await c.list('customers')).map(r => r.id), ['c-1', 'c-2', 'c-3'])
  assert.equal(await c.get('customers', 'c-4'), undefined, 'another territory is not pulled')

  // Seven visits in pages of three; edits before a push fold into one mutation.
  for (let i = 0; i < 7; i++) await c.put('visits', `v-${i}`, visit('c-1', { notes: 'first' }))
  await c.put('visits', 'v-0', visit('c-1', { notes: 'second' }))
  assert.equal(await c.pending(), 7)
  assert.equal((await c.get('visits', 'v-0'))?.pending, true)
  const pushed = await c.sync()
  assert.equal(pushed.pushed, 7)
  assert.equal(pushed.applied, 7)
  assert.equal((await s.record('visits', 'v-0'))?.data?.notes, 'second')
  assert.equal((await s.record('visits', 'v-0'))?.version, 1)
  assert.equal(await c.pending(), 0)

  // A stale edit of a customer merges when the fields do not overlap...
  await s.write({ collection: 'customers', id: 'c-1', base_version: 1, data: { code: 'C001', name: 'Shop 1', territory_id: 't-north', grade: 'A', lat: 52.51, lng: 13.4, credit_limit: 1_000_000, notes: '' } })
  const c1 = (await c.get('customers', 'c-1'))!
  await c.put('customers', 'c-1', { ...c1.data, notes: 'back door' })
  const merged = await c.sync()
  assert.equal(merged.merged, 1)
  const after = (await c.get('customers', 'c-1'))!
  assert.equal(after.data.grade, 'A')
  assert.equal(after.data.notes, 'back door')
  assert.equal(after.version, 3)

  // ...and conflicts when they do: kept for the app, the server's record
  // stored; localWins pushes the local change again on top of it.
  await s.write({ collection: 'customers', id: 'c-2', base_version: 1, data: { code: 'C002', name: 'Shop 2', territory_id: 't-north', grade: 'B', lat: 52.52, lng: 13.4, credit_limit: 1_000_000, notes: 'office' } })
  const c2 = (await c.get('customers', 'c-2'))!
  await c.put('customers', 'c-2', { ...c2.data, notes: 'phone' })
  const conflicted = await c.sync()
  assert.equal(conflicted.conflicts, 1)
  const kept = await c.conflicts()
  assert.equal(kept.length, 1)
  assert.equal(kept[0]!.server.data?.notes, 'office')
  assert.equal(kept[0]!.local?.notes, 'phone')
  assert.equal((await c.get('customers', 'c-2'))?.data.notes, 'office', 'server wins by default')
  await c.clearConflicts()
  assert.equal((await c.conflicts()).length, 0)

  const lw = await s.client('rep-n', 'phone-2', { conflictResolver: localWins })
  await lw.sync()
  await s.write({ collection: 'customers', id: 'c-3', base_version: 1, data: { code: 'C003', name: 'Shop 3', territory_id: 't-north', grade: 'B', lat: 52.53, lng: 13.4, credit_limit: 1_000_000, notes: 'server' } })
  const c3 = (await lw.get('customers', 'c-3'))!
  await lw.put('customers', 'c-3', { ...c3.data, notes: 'device' })
  const requeued = await lw.sync()
  assert.equal(requeued.conflicts, 1)
  assert.equal(requeued.requeued, 1)
  assert.equal((await s.record('customers', 'c-3'))?.data?.notes, 'device')

  // A rep may not rename a customer: rejected, kept, and the rest of the batch lands.
  const c1now = (await c.get('customers', 'c-1'))!
  await c.put('customers', 'c-1', { ...c1now.data, name: 'Renamed' })
  await c.put('visits', 'v-9', visit('c-1'))
  const rej = await c.sync()
  assert.equal(rej.rejected, 1)
  assert.equal(rej.applied, 1)
  const rejections = await c.rejections()
  assert.equal(rejections[0]?.error.code, 'forbidden')
  assert.equal(rejections[0]?.id, 'c-1')
  assert.equal((await c.get('customers', 'c-1'))?.data.name, 'Shop 1')

  // Deletes: one never sent is forgotten; one of a record the device does not have is refused.
  await c.put('visits', 'v-local', visit('c-1'))
  await c.delete('visits', 'v-local')
  assert.equal(await c.pending(), 0)
  await assert.rejects(c.delete('visits', 'v-nope'), NotFoundError)
  await assert.rejects(c.put('nope' as never, 'x', {}), (e: FieldsyncError) => e.code === 'validation_failed')
})

test('photos: hash on the device, HEAD skips what the server has, 422 on a wrong hash', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const c = await s.client('rep-n', 'phone-1')
  await c.sync()
  await c.put('visits', 'v-1', visit('c-1'))
  const bytes = jpeg(5000)
  const sha = await c.addPhoto('ph-1', 'v-1', bytes, { takenAt: new Date(), lat: 52.51, lng: 13.4 })
  assert.equal(sha, await sha256Hex(bytes))
  assert.equal((await c.get('photos', 'ph-1'))?.data.content_type, 'image/jpeg')
  const r1 = await c.sync()
  assert.equal(r1.photosUploaded, 1)
  assert.equal(r1.photosSkipped, 0)
  const got = await c.api.media(sha)
  assert.deepEqual(got, bytes)
  const stored = await s.record('photos', 'ph-1')
  assert.equal(stored?.data?.uploaded, true)

  // The same bytes on another photo: HEAD says the server has them.
  await c.addPhoto('ph-2', 'v-1', bytes, { takenAt: new Date() })
  const r2 = await c.sync()
  assert.equal(r2.photosUploaded, 0)
  assert.equal(r2.photosSkipped, 1)
  assert.equal(r2.applied, 1)

  // Bytes that do not match the path are refused, nothing kept.
  const wrong = jpeg(10)
  await assert.rejects(c.api.putMedia(await sha256Hex(jpeg(11)), wrong, 'image/jpeg'), (e: FieldsyncError) => e.status === 422)
  assert.equal(await c.api.hasMedia(await sha256Hex(jpeg(11))), false)
})

for (const kind of ['memory', 'indexeddb'] as const) {
  test(`the outbox survives a restart (${kind} storage)`, async t => {
    const s = await Server.start(t)
    await seedField(s)
    const factory = new IDBFactory()
    const open = async () => (kind === 'memory' ? memory : await IndexedDBStorage.open('fieldsync-phone', factory))
    const memory = new MemoryStorage()
    const storage1 = await open()
    const c = await s.client('rep-n', 'phone-1', { storage: storage1 })
    await c.sync()
    await c.put('visits', 'v-1', visit('c-1', { notes: 'offline' }))
    await c.addPhoto('ph-1', 'v-1', jpeg(300), { takenAt: new Date() })
    const c1 = (await c.get('customers', 'c-1'))!
    await c.put('customers', 'c-1', { ...c1.data, notes: 'ring twice' })
    if (storage1 instanceof IndexedDBStorage) storage1.close()

    // The app restarts: a new client on the same storage, no password asked.
    const storage2 = await open()
    const again = new FieldsyncClient({ baseUrl: s.url, deviceId: 'phone-1', storage: storage2 })
    assert.equal(await again.pending(), 3)
    assert.equal((await again.get('visits', 'v-1'))?.data.notes, 'offline')
    const rep = await again.sync()
    assert.equal(rep.applied + rep.merged, 3)
    assert.equal(rep.photosUploaded, 1)
    assert.equal(rep.logins, 0, 'the kept refresh token was enough')
    assert.equal(rep.refreshes, 1)
    assert.equal(await again.pending(), 0)
    const all = await s.records()
    assert.equal(all.get('visits/v-1')?.data?.notes, 'offline')
    assert.equal(all.get('photos/ph-1')?.data?.uploaded, true)
    assert.equal(all.get('customers/c-1')?.data?.notes, 'ring twice')
  })
}

test('a flaky network loses nothing and writes nothing twice', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const proxy = await FlakyProxy.start(t, s.url)
  const c = new FieldsyncClient({
    baseUrl: proxy.url, deviceId: 'phone-1', storage: new MemoryStorage(), batchSize: 7, pullLimit: 5,
    requestTimeoutMs: 1500, retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 50 },
  })
  await c.login('rep-n', password('rep-n'))
  await c.sync()
  proxy.setFlaky(true)
  const n = 40
  let failedSyncs = 0
  for (let i = 0; i < n; i++) {
    await c.put('visits', `v-${i}`, visit(`c-${1 + (i % 3)}`, { notes: `visit ${i}` }))
    await c.put('visits', `v-${i}`, visit(`c-${1 + (i % 3)}`, { notes: `visit ${i}, edited` }))
    if (i % 10 === 9) await c.sync().catch(() => { failedSyncs++ })
  }
  for (let i = 0; i < 20 && (await c.pending()) > 0; i++) await c.sync().catch(() => { failedSyncs++ })
  proxy.setFlaky(false)
  await c.sync()
  assert.ok(proxy.cut > 0 && proxy.stalled > 0, `the proxy misbehaved (dropped ${proxy.dropped}, cut ${proxy.cut}, stalled ${proxy.stalled})`)
  assert.ok(c.stats.retries > 0)
  assert.equal(await c.pending(), 0)
  const all = await s.records()
  const visits = [...all.values()].filter(e => e.collection === 'visits')
  assert.equal(visits.length, n, 'every visit once')
  for (const v of visits) {
    assert.equal(v.version, 1, `${v.id} written once`)
    assert.match(String(v.data?.notes), /, edited$/)
  }
  assert.equal((await c.list('visits')).length, n)
  t.diagnostic(`dropped ${proxy.dropped}, cut ${proxy.cut}, stalled ${proxy.stalled}, retries ${c.stats.retries}, failed syncs ${failedSyncs}`)
})

test('retries 429 and 5xx with backoff, honours Retry-After, never retries other 4xx', async t => {
  const calls: string[] = []
  let answers: Array<() => Response> = []
  const fake: typeof fetch = async (input) => {
    calls.push(String(input))
    const next = answers.shift()
    if (!next) throw new TypeError('fetch failed')
    return next()
  }
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    () => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })
  const c = new FieldsyncClient({ baseUrl: 'http://fieldsync.invalid', deviceId: 'd', storage: new MemoryStorage(), fetch: fake,
    retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 } })
  const pair = { access_token: 'a', refresh_token: 'r', expires_in: 900, user: { id: 'u', username: 'x', role: 'rep', territories: [] } }
  answers = [json(503, { error: { code: 'unavailable', message: 'busy' } }), json(200, pair)]
  await c.login('x', 'y')
  assert.equal(calls.length, 2)

  const start = Date.now()
  answers = [json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'Retry-After': '1' }), json(200, { changes: [], checkpoint: 'c', has_more: false })]
  await c.api.pull({ checkpoint: '' })
  assert.ok(Date.now() - start >= 1000, 'waited for Retry-After')

  calls.length = 0
  answers = [json(400, { error: { code: 'bad_request', message: 'bad checkpoint' } }), json(200, {})]
  await assert.rejects(c.api.pull({ checkpoint: 'x' }), (e: FieldsyncError) => e.status === 400 && e.code === 'bad_request')
  assert.equal(calls.length, 1, 'a 400 is not retried')

  calls.length = 0
  answers = []
  await assert.rejects(c.api.pull({ checkpoint: '' }), (e: FieldsyncError) => e.code === 'network')
  assert.equal(calls.length, 4, 'network errors retried up to maxAttempts')
})

test('server-sent events are parsed by hand across chunk boundaries', () => {
  const p = new SSEParser()
  assert.deepEqual(p.push('event: ready\ndata: {}\n'), [])
  assert.deepEqual(p.push('\n: ping\n\nevent: chan'), [{ event: 'ready', data: '{}' }])
  assert.deepEqual(p.push('ges\r\ndata: {"a":1}\r'), [])
  assert.deepEqual(p.push('\n\r\nevent: expired\n\n'), [{ event: 'changes', data: '{"a":1}' }, { event: 'expired', data: '' }])
})

test('subscribe: a stream refused with Retry-After is asked again no earlier than that, whatever maxDelayMs', async t => {
  const s = await Server.start(t, ['--max-streams', '1', '--stream-heartbeat', '1s'])
  await seedField(s)
  const first = await s.client('rep-n', 'phone-1')
  let firstReady = false
  const stopFirst = first.subscribe(() => undefined, { onReady: () => { firstReady = true } })
  t.after(stopFirst)
  await waitFor('the first stream opens', () => firstReady, 10_000)

  const opens: number[] = []
  const refusals: FieldsyncError[] = []
  const counting: typeof fetch = (input, init) => {
    if (String(input).includes('/v1/sync/stream')) opens.push(Date.now())
    return fetch(input, init)
  }
  const second = await s.client('rep-n', 'phone-2', { fetch: counting })
  let secondReady = false
  const stopSecond = second.subscribe(() => undefined, {
    onReady: () => { secondReady = true },
    onError: e => { if (e instanceof FieldsyncError) refusals.push(e) },
    retry: { baseDelayMs: 10, maxDelayMs: 50 },
  })
  t.after(stopSecond)
  await waitFor('the second stream is refused', () => refusals.length > 0, 10_000)
  const asked = refusals[0]!.retryAfterMs
  assert.equal(refusals[0]!.status, 503)
  assert.ok(asked !== undefined && asked > 50, `the refusal asks for a pause past maxDelayMs: ${asked}`)
  stopFirst()
  await waitFor('the second stream opens once the first is gone', () => secondReady, asked! + 10_000)
  assert.ok(opens.length >= 2)
  for (let i = 1; i < opens.length; i++) {
    assert.ok(opens[i]! - opens[i - 1]! >= asked!, `attempt ${i + 1} came ${opens[i]! - opens[i - 1]!} ms after the refusal, asked ${asked} ms`)
  }
})

test('subscribe: changes within a second, nothing from other territories, renews the token and reconnects when it expires', async t => {
  const s = await Server.start(t, ['--access-ttl', '3s', '--stream-heartbeat', '1s'])
  await seedField(s)
  const c = await s.client('rep-n', 'phone-1')
  await c.sync()
  let readies = 0
  const events: unknown[] = []
  const errors: unknown[] = []
  const stop = c.subscribe(e => { events.push(e) }, { onReady: () => { readies++ }, onError: e => errors.push(e), retry: { baseDelayMs: 20, maxDelayMs: 200 } })
  t.after(stop)
  await waitFor('ready', () => readies === 1)

  // A write in another territory sends nothing; one in the rep's, an event naming its collection.
  const c4 = (await s.record('customers', 'c-4'))!
  await s.write({ collection: 'customers', id: 'c-4', base_version: c4.version, data: { ...c4.data, notes: 'south' } })
  await new Promise(r => setTimeout(r, 1500))
  assert.equal(events.length, 0, 'nothing for a write the rep may not read: ' + JSON.stringify(events))
  const start = Date.now()
  const c1 = (await s.record('customers', 'c-1'))!
  await s.write({ collection: 'customers', id: 'c-1', base_version: c1.version, data: { ...c1.data, notes: 'north' } })
  await waitFor('a changes event', () => events.length > 0, 2000)
  t.diagnostic(`changes event after ${Date.now() - start} ms`)
  assert.deepEqual((events[0] as { collections?: string[] }).collections, ['customers'])
  await c.sync()
  assert.equal((await c.get('customers', 'c-1'))?.data.notes, 'north')

  // The access token lives 3 s: the server says expired, the client renews
  // the token and is back at once.
  await waitFor('a reconnect after expiry', () => readies >= 2, 8000)
  assert.ok(c.stats.refreshes >= 1, 'renewed by refresh')
  events.length = 0
  const c2 = (await s.record('customers', 'c-2'))!
  await s.write({ collection: 'customers', id: 'c-2', base_version: c2.version, data: { ...c2.data, notes: 'after expiry' } })
  await waitFor('a changes event on the new stream', () => events.length > 0, 2000)
  stop()
})

test('the built package uses no Node built-ins', async () => {
  const { readdir, readFile } = await import('node:fs/promises')
  const dir = new URL('../dist/', import.meta.url)
  const files = (await readdir(dir)).filter(f => f.endsWith('.js'))
  assert.ok(files.includes('index.js') && files.includes('rxdb.js') && files.includes('watermelondb.js'), 'npm test builds dist first')
  for (const f of files) {
    const js = await readFile(new URL(f, dir), 'utf8')
    const imports = [...js.matchAll(/from\s+'([^']+)'/g)].map(m => m[1]!)
    for (const spec of imports) {
      assert.ok(spec.startsWith('./') || ['rxdb/plugins/replication', 'rxjs', '@nozbe/watermelondb', '@nozbe/watermelondb/sync/index.js', 'tus-js-client'].includes(spec), `${f} imports ${spec}`)
    }
    assert.doesNotMatch(js, /\brequire\(|\bprocess\.|\bBuffer\b/, `${f} uses Node`)
  }
})

test('the core bundles for browsers and React Native, tus-js-client included, without a Node built-in', async () => {
  const { build } = await import('esbuild')
  // Metro (React Native) resolves the "react-native" field first, then "browser", as these conditions do.
  for (const conditions of [['browser'], ['react-native', 'browser']]) {
    const out = await build({
      entryPoints: [new URL('../dist/index.js', import.meta.url).pathname], bundle: true, write: false, format: 'esm',
      platform: 'browser', conditions, mainFields: [...conditions, 'module', 'main'], logLevel: 'silent', metafile: true,
    })
    const inputs = Object.keys(out.metafile.inputs)
    assert.ok(inputs.some(i => i.includes('tus-js-client/lib.esm/browser/')), `tus-js-client's browser build is bundled: ${inputs.filter(i => i.includes('tus')).join(', ')}`)
    assert.ok(!inputs.some(i => i.includes('tus-js-client/lib.esm/node/')), 'not its Node build')
  }
})

test('answers come compressed: the platform asks for gzip and inflates it, the client leaves Accept-Encoding to it', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const encodings: string[] = []
  const own: (string | null)[] = []
  const recording: typeof fetch = async (input, init) => {
    own.push(new Headers(init?.headers).get('Accept-Encoding'))
    const res = await fetch(input, init)
    if (String(input).endsWith('/v1/sync/pull')) encodings.push(res.headers.get('Content-Encoding') ?? '')
    return res
  }
  const c = await s.client('boss', 'tablet-1', { fetch: recording })
  const rep = await c.sync()
  assert.ok(rep.pulled >= 9, `pulled ${rep.pulled}`)
  assert.equal((await c.list('customers')).length, 6, 'the compressed page was read whole')
  assert.ok(encodings.includes('gzip'), `pull answers came as ${JSON.stringify(encodings)}, none in gzip`)
  // Setting Accept-Encoding by hand would stop React Native's HTTP stacks
  // (OkHttp, NSURLSession) from inflating answers themselves; browsers drop it.
  assert.deepEqual([...new Set(own)], [null])
})
