// Resumed photo uploads on a poor link: a 5 MB photo sent by the
// TypeScript client through a link that cuts every 1 MB sent up, through a
// resumable upload (tus) and, as the baseline in the same run, by PUT
// starting again from zero after each cut. It prints the bytes sent up
// per byte of photo. A PUT of 5 MB can never pass a link that cuts exactly
// every 1 MB, so the comparison runs on links whose cuts come at random,
// 1 MB apart on average (the same cuts for both, by seed), alternating
// which goes first:
//
//	npm run bench:upload        (FIELDSYNC_BIN names a built binary, else one is built)
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { FieldsyncClient, MemoryStorage } from '../src/index.ts'
import { CutProxy, Server, jpeg, password, seedField, visit } from '../test/harness.ts'

const photoSize = 5_000_000
const cutEvery = 1_000_000
const runs = Number(process.env.RUNS ?? 3)

type Kind = 'resumable' | 'restart-from-zero'

test('resumed upload of a 5 MB photo, link cutting every 1 MB', async t => {
  const s = await Server.start(t)
  await seedField(s)

  const once = async (kind: Kind, run: number, random: boolean): Promise<{ ratio: number, cuts: number }> => {
    const link = await CutProxy.start(t, s.url, cutEvery, random ? run : undefined)
    try {
      const c = new FieldsyncClient({
        baseUrl: link.url, deviceId: `bench-${kind}-${run}-${random}`, storage: new MemoryStorage(),
        retry: { maxAttempts: 2000, baseDelayMs: 1, maxDelayMs: 1 }, resumableAbove: kind === 'resumable' ? 1 << 20 : -1,
      })
      await c.login('rep-n', password('rep-n'))
      const v = `v-${kind}-${run}-${random}`
      await c.put('visits', v, visit('c-1'))
      await c.sync() // the visit, outside the measure
      // Bytes the server does not have yet: one more byte each time.
      const bytes = jpeg(photoSize - 64 + (serial++))
      await c.addPhoto(`ph-${v}`, v, bytes, { takenAt: new Date() })
      const sent0 = link.sent
      const cuts0 = link.cuts
      const rep = await c.sync()
      assert.equal(rep.photosUploaded, 1)
      return { ratio: (link.sent - sent0) / bytes.byteLength, cuts: link.cuts - cuts0 }
    } finally {
      await link.close()
    }
  }
  let serial = 0

  const fixed: number[] = []
  const random: Record<Kind, number[]> = { resumable: [], 'restart-from-zero': [] }
  for (let run = 1; run <= runs; run++) {
    fixed.push((await once('resumable', run, false)).ratio)
    const order: Kind[] = run % 2 ? ['resumable', 'restart-from-zero'] : ['restart-from-zero', 'resumable']
    for (const kind of order) random[kind].push((await once(kind, run, true)).ratio)
  }
  const fmt = (xs: number[]) => xs.map(x => x.toFixed(3)).join(' ')
  const line = (name: string, xs: number[]) => `${name.padEnd(42)} sent/photo ${fmt(xs)}`
  const out = [
    line('link=every-1MB/client=resumable', fixed),
    line('link=random-1MB/client=resumable', random.resumable),
    line('link=random-1MB/client=restart-from-zero', random['restart-from-zero']),
  ]
  for (const l of out) t.diagnostic(l)
})
