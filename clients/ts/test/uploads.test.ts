import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { IDBFactory } from 'fake-indexeddb'
import 'fake-indexeddb/auto'

import { FieldsyncClient, FieldsyncError, IndexedDBStorage, MemoryStorage, sha256Hex, type Storage } from '../src/index.ts'
import { CutProxy, Server, jpeg, password, seedField, visit } from './harness.ts'

const photoSize = 5_000_000
const cutEvery = 1_000_000

/** files lists the files under dir, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)])
}

/**
 * The photo is in the server's photo folder exactly once (a file of the
 * folder store is a short header, then the bytes), named by its hash, and
 * no partial upload is left.
 */
function assertStoredOnce(s: Server, bytes: Uint8Array, sha: string): void {
  const n = bytes.byteLength
  const same = files(join(s.dataDir, 'photos')).filter(f => {
    const size = statSync(f).size
    return size >= n && size < n + 4096 && Buffer.from(bytes).equals(readFileSync(f).subarray(size - n))
  })
  assert.equal(same.length, 1, `the photo's bytes are stored once: ${JSON.stringify(same)}`)
  assert.ok(same[0]!.includes(sha), `stored under its content address: ${same[0]}`)
  assert.deepEqual(files(join(s.dataDir, 'uploads')).filter(f => !f.endsWith('.lock')), [], 'no partial upload is left')
}

/** A rep's client on a visit, ready for a photo. */
async function repWithVisit(s: Server, baseUrl: string, storage: Storage = new MemoryStorage(), maxAttempts = 50): Promise<FieldsyncClient> {
  const c = new FieldsyncClient({ baseUrl, deviceId: 'phone-1', storage, retry: { maxAttempts, baseDelayMs: 5, maxDelayMs: 20 } })
  await c.login('rep-n', password('rep-n'))
  await c.put('visits', 'v-1', visit('c-1'))
  await c.sync()
  return c
}

test('a large photo goes up through tus over a link that cuts every 1 MB, resumes from the offset, and is stored once', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const link = await CutProxy.start(t, s.url, cutEvery)
  const c = await repWithVisit(s, link.url)
  const bytes = jpeg(photoSize)
  const sha = await c.addPhoto('ph-1', 'v-1', bytes, { takenAt: new Date() })
  const sent0 = link.sent
  const cuts0 = link.cuts

  const rep = await c.sync()
  const sent = link.sent - sent0
  const cuts = link.cuts - cuts0
  t.diagnostic(`5 MB photo, link cut every 1 MB: sent up ${sent} bytes = ${(sent / bytes.byteLength).toFixed(3)}× the photo, ${cuts} cuts, ${rep.resumes} resumes`)
  assert.equal(rep.photosUploaded, 1)
  assert.equal(rep.applied, 1, 'the photo record went up once its bytes were in')
  assert.ok(cuts >= 4, `the link cut the upload (${cuts} cuts)`)
  assert.ok(rep.resumes >= cuts, `each cut was followed by asking the server its offset (${rep.resumes} resumes, ${cuts} cuts)`)
  // A PUT, or an upload starting over after each cut, cannot get 5 MB
  // through a link that cuts every 1 MB: going on from the offset can, and
  // sends each byte about once.
  assert.ok(sent < 2 * bytes.byteLength, `sent ${sent} bytes for a photo of ${bytes.byteLength}`)
  assert.deepEqual(await c.api.media(sha), bytes)
  assert.equal((await s.record('photos', 'ph-1'))?.data?.uploaded, true)
  assertStoredOnce(s, bytes, sha)
  assert.equal(await c.pending(), 0)
})

for (const kind of ['memory', 'indexeddb'] as const) {
  test(`an app restarted after a cut goes on from the upload's kept address (${kind} storage)`, async t => {
    const s = await Server.start(t)
    await seedField(s)
    const factory = new IDBFactory()
    const memory = new MemoryStorage()
    const open = async () => (kind === 'memory' ? memory : await IndexedDBStorage.open('fieldsync-phone', factory))
    // One attempt: the first cut ends the sync, as the app being closed would.
    const link = await CutProxy.start(t, s.url, 2_500_000)
    const storage1 = await open()
    const c = await repWithVisit(s, link.url, storage1, 1)
    const bytes = jpeg(3_000_000)
    const sha = await c.addPhoto('ph-1', 'v-1', bytes, { takenAt: new Date() })
    await assert.rejects(c.sync(), (e: FieldsyncError) => e.code === 'network')
    assert.ok(link.cuts >= 1)
    assert.equal(await c.api.hasMedia(sha), false)
    if (storage1 instanceof IndexedDBStorage) storage1.close()

    // The app starts again on a good link (a proxy that only counts).
    const counting = await CutProxy.start(t, s.url, 0)
    const storage2 = await open()
    const again = new FieldsyncClient({ baseUrl: counting.url, deviceId: 'phone-1', storage: storage2 })
    const rep = await again.sync()
    t.diagnostic(`after the restart: sent up ${counting.sent} bytes for the rest of a photo of ${bytes.byteLength}, cut after ${link.sent} bytes, ${rep.resumes} resumes`)
    assert.equal(rep.photosUploaded, 1)
    assert.ok(rep.resumes >= 1, 'it asked the server its offset')
    // Starting over would send the whole photo again; going on sends what
    // the server lacked (about 0.5 MB of 3 MB).
    assert.ok(counting.sent < bytes.byteLength / 2, `only the rest went up (${counting.sent} bytes)`)
    assert.equal(await storage2.meta('tus_uploads'), undefined, 'the address is forgotten once the upload is done')
    assert.equal((await s.record('photos', 'ph-1'))?.data?.uploaded, true)
    assertStoredOnce(s, bytes, sha)
  })
}

test('bytes that do not match their announced SHA-256 are refused through tus, nothing kept', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const storage = new MemoryStorage()
  const c = await repWithVisit(s, s.url, storage)
  const bytes = jpeg(2_000_000)
  const sha = await c.addPhoto('ph-1', 'v-1', bytes, { takenAt: new Date() })
  // The queued bytes change on the device after their hash was taken.
  const corrupt = bytes.slice()
  corrupt[1_500_000] = corrupt[1_500_000]! ^ 0xff
  await storage.commit({ putPhotos: [{ sha256: sha, content_type: 'image/jpeg', size: corrupt.byteLength, bytes: corrupt }] })

  await assert.rejects(c.sync(), (e: FieldsyncError) => e.status === 422 && e.code === 'hash_mismatch' && e.op === 'upload.patch')
  assert.equal(await c.api.hasMedia(sha), false)
  assert.equal(await c.api.hasMedia(await sha256Hex(corrupt)), false)
  assert.equal(await s.record('photos', 'ph-1'), undefined, 'the record waits for its bytes')
  assert.equal(await c.pending(), 1)
  assert.deepEqual(files(join(s.dataDir, 'uploads')).filter(f => !f.endsWith('.lock')), [], 'the refused upload is forgotten')
})

test('small photos go by PUT, large ones through tus; 503 with Retry-After is waited out; the token goes to baseUrl only', async t => {
  const s = await Server.start(t)
  await seedField(s)
  const calls: Array<{ method: string, path: string, at: number, status: number }> = []
  const origins = new Set<string>()
  let refusePatch = true
  const recording: typeof fetch = async (input, init) => {
    const method = init?.method ?? 'GET'
    const path = new URL(String(input)).pathname
    origins.add(new URL(String(input)).origin)
    // The first PATCH meets an instance that is full: 503 with Retry-After
    // before the request reaches the server.
    if (method === 'PATCH' && refusePatch) {
      refusePatch = false
      calls.push({ method, path, at: Date.now(), status: 503 })
      return new Response(JSON.stringify({ error: { code: 'unavailable', message: 'busy' } }), { status: 503, headers: { 'Retry-After': '1' } })
    }
    const res = await fetch(input, init)
    calls.push({ method, path, at: Date.now(), status: res.status })
    if (method === 'POST' && path === '/v1/uploads/') {
      // An answer naming another host: the client must keep to its server.
      const headers = new Headers(res.headers)
      headers.set('Location', `http://elsewhere.invalid${new URL(res.headers.get('Location')!).pathname}`)
      return new Response(await res.arrayBuffer(), { status: res.status, headers })
    }
    return res
  }
  const c = await s.client('rep-n', 'phone-1', { fetch: recording })
  await c.put('visits', 'v-1', visit('c-1'))
  const small = await c.addPhoto('ph-small', 'v-1', jpeg(5000), { takenAt: new Date() })
  const large = await c.addPhoto('ph-large', 'v-1', jpeg(1_500_000), { takenAt: new Date() })
  const rep = await c.sync()
  assert.equal(rep.photosUploaded, 2)
  const of = (method: string, prefix: string) => calls.filter(x => x.method === method && x.path.startsWith(prefix))
  assert.deepEqual(of('PUT', '/v1/media/').map(x => x.path), [`/v1/media/${small}`], 'the small photo went by PUT, the large one not')
  assert.equal(of('POST', '/v1/uploads/').length, 1, 'one resumable upload was opened')
  const patches = of('PATCH', '/v1/uploads/')
  assert.deepEqual(patches.map(x => x.status), [503, 204])
  assert.ok(patches[1]!.at - patches[0]!.at >= 1000, 'the PATCH was sent again after the Retry-After')
  assert.equal(rep.retries, 1)
  assert.deepEqual([...origins], [new URL(s.url).origin], 'every request went to the server the client was given')
  const all = await s.records()
  assert.equal(all.get('photos/ph-small')?.data?.uploaded, true)
  assert.equal(all.get('photos/ph-large')?.data?.uploaded, true)
  assert.equal(large, (await s.record('photos', 'ph-large'))?.data?.sha256)

  // With resumable uploads turned off, a large photo goes by PUT.
  calls.length = 0
  const off = await s.client('rep-n', 'phone-2', { fetch: recording, resumableAbove: -1 })
  await off.put('visits', 'v-2', visit('c-2'))
  const big = await off.addPhoto('ph-off', 'v-2', jpeg(1_200_000), { takenAt: new Date() })
  assert.equal((await off.sync()).photosUploaded, 1)
  assert.deepEqual(of('PUT', '/v1/media/').map(x => x.path), [`/v1/media/${big}`])
  assert.equal(of('POST', '/v1/uploads/').length, 0)
})
