// A real fieldsync server for the tests: the binary named by FIELDSYNC_BIN
// (built by the Go test that runs these), on a random loopback port with a
// fresh data folder, and the admin calls that set up users and records.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import net from 'node:net'
import type { TestContext } from 'node:test'

import { FieldsyncClient, MemoryStorage, type ClientOptions, type Envelope, type Storage } from '../src/index.ts'

export const adminName = 'admin'
export const password = (user: string) => `${user}-password`

let built: string | undefined

/** binary returns the fieldsync binary: FIELDSYNC_BIN, else one built once from the repository. */
export function binary(): string {
  if (process.env.FIELDSYNC_BIN) return process.env.FIELDSYNC_BIN
  if (built) return built
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
  const out = join(mkdtempSync(join(tmpdir(), 'fieldsync-bin-')), 'fieldsync')
  execFileSync('go', ['build', '-o', out, './cmd/fieldsync'], { cwd: root, stdio: 'inherit' })
  return (built = out)
}

/** A running fieldsync process. */
export class Server {
  readonly url: string
  readonly #proc: ChildProcess
  readonly #dir: string
  #admin = ''
  logs: string[] = []

  private constructor(url: string, proc: ChildProcess, dir: string, logs: string[]) {
    this.url = url
    this.#proc = proc
    this.#dir = dir
    this.logs = logs
  }

  /** Starts a server and stops it when the test ends. */
  static async start(t: { after: (fn: () => unknown) => void }, args: string[] = []): Promise<Server> {
    const dir = mkdtempSync(join(tmpdir(), 'fieldsync-ts-'))
    const proc = spawn(binary(), args, {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '', HOME: dir, FIELDSYNC_ADDR: '127.0.0.1:0', FIELDSYNC_DATA_DIR: join(dir, 'data'),
        FIELDSYNC_ADMIN_USER: adminName, FIELDSYNC_ADMIN_PASSWORD: password(adminName),
        // The tests and their checks pull as fast as they can from one
        // device: the sync rate limits are off.
        FIELDSYNC_SYNC_RATE_DEVICE: '-1', FIELDSYNC_SYNC_RATE_USER: '-1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const logs: string[] = []
    proc.stderr!.on('data', d => logs.push(String(d)))
    const addr = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fieldsync did not listen within 30 s:\n${logs.join('\n')}`)), 30_000)
      const lines = createInterface({ input: proc.stdout! })
      lines.on('line', line => {
        logs.push(line)
        try {
          const e = JSON.parse(line) as { msg?: string, addr?: string }
          if (e.msg === 'listening' && e.addr) { clearTimeout(timer); resolve(e.addr) }
        } catch { /* not JSON */ }
      })
      proc.on('exit', code => { clearTimeout(timer); reject(new Error(`fieldsync exited (${code}) before listening:\n${logs.join('\n')}`)) })
    })
    const s = new Server(`http://${addr}`, proc, dir, logs)
    t.after(() => s.stop())
    return s
  }

  /** The server's data folder: its store, photos and partial uploads. */
  get dataDir(): string {
    return join(this.#dir, 'data')
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode === null) {
      const exited = new Promise(r => this.#proc.once('exit', r))
      this.#proc.kill('SIGTERM')
      await exited
    }
    if (existsSync(this.#dir)) rmSync(this.#dir, { recursive: true, force: true })
  }

  /** A JSON call; returns status and parsed body. */
  async call(method: string, path: string, token: string, body?: unknown): Promise<{ status: number, body: any }> {
    const res = await fetch(this.url + path, {
      method,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }

  async login(username: string, device = 'test'): Promise<string> {
    const r = await this.call('POST', '/v1/auth/login', '', { username, password: password(username), device_id: device })
    if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body.access_token as string
  }

  async asAdmin(method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
    if (this.#admin) {
      const r = await this.call(method, path, this.#admin, body)
      if (r.status !== 401) return r
    }
    this.#admin = await this.login(adminName)
    return this.call(method, path, this.#admin, body)
  }

  async createUser(username: string, role: string, territories: string[] = []): Promise<string> {
    const r = await this.asAdmin('POST', '/v1/admin/users', { username, password: password(username), role, territories })
    if (r.status !== 201) throw new Error(`create user ${username}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body.id as string
  }

  /** Writes records as the admin; fails unless every one is applied. Returns the new versions. */
  async write(...muts: Array<{ collection: string, id: string, data?: object, base_version?: number, op?: string }>): Promise<number[]> {
    const r = await this.asAdmin('POST', '/v1/sync/push', {
      device_id: 'admin-console',
      mutations: muts.map(m => ({ mutation_id: crypto.randomUUID(), op: m.op ?? 'upsert', base_version: m.base_version ?? 0, ...m })),
    })
    if (r.status !== 200) throw new Error(`admin push: ${r.status} ${JSON.stringify(r.body)}`)
    for (const res of r.body.results) {
      if (res.status !== 'applied' && res.status !== 'merged') throw new Error(`admin push: ${JSON.stringify(res)}`)
    }
    return r.body.results.map((x: { version: number }) => x.version)
  }

  /** Everything as the admin sees it, by "collection/id"; fails on a record pulled twice. */
  async records(): Promise<Map<string, Envelope>> {
    const all = new Map<string, Envelope>()
    for (let cp = ''; ;) {
      const r = await this.asAdmin('POST', '/v1/sync/pull', { checkpoint: cp, limit: 1000 })
      if (r.status !== 200) throw new Error(`pull: ${r.status} ${JSON.stringify(r.body)}`)
      for (const e of r.body.changes as Envelope[]) {
        const k = `${e.collection}/${e.id}`
        if (all.has(k)) throw new Error(`${k} pulled twice from the beginning`)
        all.set(k, e)
      }
      if (!r.body.has_more) return all
      cp = r.body.checkpoint
    }
  }

  async record(collection: string, id: string): Promise<Envelope | undefined> {
    return (await this.records()).get(`${collection}/${id}`)
  }

  /** A client of a user with fast retries, signed in. */
  async client(username: string, device: string, o: Partial<ClientOptions> = {}): Promise<FieldsyncClient> {
    const c = new FieldsyncClient({
      baseUrl: this.url, deviceId: device, storage: o.storage ?? new MemoryStorage(),
      retry: { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 50 }, ...o,
    })
    await c.login(username, password(username))
    return c
  }
}

/** The territories, users and records the scenarios share. */
export async function seedField(s: Server): Promise<Record<string, string>> {
  await s.write(
    { collection: 'territories', id: 't-north', data: { name: 'North', region: 'EU' } },
    { collection: 'territories', id: 't-south', data: { name: 'South', region: 'EU' } },
  )
  const ids: Record<string, string> = {
    'rep-n': await s.createUser('rep-n', 'rep', ['t-north']),
    'rep-s': await s.createUser('rep-s', 'rep', ['t-south']),
    boss: await s.createUser('boss', 'manager', ['t-north', 't-south']),
  }
  const customers = []
  for (let i = 1; i <= 6; i++) {
    const t = i <= 3 ? 't-north' : 't-south'
    customers.push({ collection: 'customers', id: `c-${i}`, data: { code: `C00${i}`, name: `Shop ${i}`, territory_id: t, grade: 'B', lat: 52.5 + i / 100, lng: 13.4, credit_limit: 1_000_000, notes: '' } })
  }
  await s.write(...customers)
  await s.write(
    { collection: 'products', id: 'p-1', data: { sku: 'SKU-1', name: 'Cola', unit: 'case', price: 1200, active: true } },
  )
  const today = new Date().toISOString().slice(0, 10)
  await s.write(
    { collection: 'route_plans', id: 'rp-n', data: { rep_id: ids['rep-n'], date: today, stops: [{ customer_id: 'c-1', position: 0, status: 'planned' }, { customer_id: 'c-2', position: 1, status: 'planned' }] } },
    { collection: 'route_plans', id: 'rp-s', data: { rep_id: ids['rep-s'], date: today, stops: [{ customer_id: 'c-4', position: 0, status: 'planned' }] } },
  )
  return ids
}

/** jpeg is n + 64 bytes that start as a JPEG does, the same for the same n. */
export function jpeg(n: number): Uint8Array {
  const b = new Uint8Array(64 + n)
  b.set([0xff, 0xd8, 0xff, 0xe0])
  for (let i = 4; i < b.length; i++) b[i] = (i * 31 + n) & 0xff
  return b
}

let visitClock = Date.now() - 48 * 3600_000

/** visit is a closed visit's data at a customer, later than the last one made. */
export function visit(customer: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  visitClock += 20 * 60_000
  return {
    customer_id: customer, ...extra,
    check_in: { at: new Date(visitClock).toISOString(), lat: 52.51, lng: 13.4 },
    check_out: { at: new Date(visitClock + 10 * 60_000).toISOString(), lat: 52.51, lng: 13.4 },
  }
}

/** waitFor polls cond until it holds or ms pass. */
export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return
    await new Promise(r => setTimeout(r, 25))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/**
 * FlakyProxy is a TCP proxy on a loopback port in front of the server
 * that, while flaky, drops some connections at once, cuts others after
 * their request went through (so the answer is lost), and stalls others.
 */
export class FlakyProxy {
  readonly url: string
  #flaky = false
  #flakySince = 0
  dropped = 0
  cut = 0
  stalled = 0
  #n = 0
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()

  private constructor(server: net.Server, url: string) {
    this.#server = server
    this.url = url
  }

  static async start(t: { after: (fn: () => unknown) => void }, target: string): Promise<FlakyProxy> {
    const { hostname, port } = new URL(target)
    let proxy!: FlakyProxy
    const server = net.createServer(client => {
      proxy.#sockets.add(client)
      client.on('close', () => proxy.#sockets.delete(client))
      client.on('error', () => undefined)
      const n = ++proxy.#n
      // While flaky, connections take turns: the first is cut after its
      // request went through, the next stalls, then one passes, one is
      // dropped at once, one passes, and again.
      const mode = !proxy.#flaky ? 'pass' : (['cut', 'stall', 'pass', 'drop', 'pass'] as const)[(n - proxy.#flakySince) % 5]!
      if (mode === 'drop') { proxy.dropped++; client.destroy(); return }
      if (mode === 'stall') { proxy.stalled++; return } // read nothing, answer nothing
      const upstream = net.connect(Number(port), hostname)
      proxy.#sockets.add(upstream)
      upstream.on('close', () => { proxy.#sockets.delete(upstream); client.destroy() })
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      client.pipe(upstream)
      if (mode === 'cut') {
        // The request reaches the server; the answer never reaches the client.
        upstream.once('data', () => { proxy.cut++; client.destroy(); upstream.destroy() })
      } else {
        upstream.pipe(client)
        // Short-lived connections while flaky, so that kept-alive ones meet the faults too.
        if (proxy.#flaky) setTimeout(() => { client.destroy(); upstream.destroy() }, 150 + (n % 3) * 100)
      }
    })
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
    const a = server.address() as net.AddressInfo
    proxy = new FlakyProxy(server, `http://127.0.0.1:${a.port}`)
    t.after(() => proxy.close())
    return proxy
  }

  /** Turns the faults on or off; either way, open connections are cut. */
  setFlaky(on: boolean): void {
    this.#flaky = on
    this.#flakySince = this.#n + 1
    for (const s of this.#sockets) s.destroy()
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise(r => this.#server.close(r))
  }
}

export type { TestContext, Storage }

/**
 * CutProxy is a TCP proxy in front of the server that drops connections
 * as a poor mobile link does: whenever `every` more bytes have gone up
 * from the clients (counted over all connections), the connection
 * carrying them is reset, the bytes before the cut delivered. With a seed
 * the gaps between cuts are random (exponential, `every` on average),
 * drawn from the seed so that runs can be compared. `sent` counts every
 * byte that went up.
 */
export class CutProxy {
  readonly url: string
  sent = 0
  cuts = 0
  #next: number
  readonly #every: number
  readonly #rand: (() => number) | undefined
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()

  private constructor(server: net.Server, url: string, every: number, seed?: number) {
    this.#server = server
    this.url = url
    this.#every = every
    if (seed !== undefined) {
      // mulberry32: a small seeded generator, enough for gaps between cuts.
      let a = seed >>> 0
      this.#rand = () => {
        a = (a + 0x6d2b79f5) >>> 0
        let x = Math.imul(a ^ (a >>> 15), 1 | a)
        x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
        return ((x ^ (x >>> 14)) >>> 0) / 4294967296
      }
    }
    this.#next = this.#gap()
  }

  #gap(): number {
    if (!this.#rand) return this.#every
    return Math.max(1, Math.floor(-Math.log(1 - this.#rand()) * this.#every))
  }

  /** Starts a proxy to target cutting every `every` bytes sent up (0: never); it stops when the test ends. */
  static async start(t: { after: (fn: () => unknown) => void }, target: string, every: number, seed?: number): Promise<CutProxy> {
    const { hostname, port } = new URL(target)
    let proxy!: CutProxy
    const server = net.createServer(client => {
      const upstream = net.connect(Number(port), hostname)
      for (const s of [client, upstream]) {
        proxy.#sockets.add(s)
        s.on('close', () => proxy.#sockets.delete(s))
        s.on('error', () => undefined)
      }
      upstream.on('close', () => client.destroy())
      client.on('close', () => upstream.destroy())
      upstream.pipe(client)
      client.on('data', (chunk: Buffer) => {
        if (proxy.#every <= 0 || proxy.sent + chunk.length < proxy.#next) {
          proxy.sent += chunk.length
          if (!upstream.write(chunk)) { client.pause(); upstream.once('drain', () => client.resume()) }
          return
        }
        const allowed = proxy.#next - proxy.sent
        proxy.sent += allowed
        proxy.#next += proxy.#gap()
        proxy.cuts++
        client.removeAllListeners('data')
        upstream.unpipe(client)
        upstream.end(chunk.subarray(0, allowed)) // what went before the cut reaches the server
        client.resetAndDestroy() // a reset, as a dropped link looks to the client
      })
    })
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
    const a = server.address() as net.AddressInfo
    proxy = new CutProxy(server, `http://127.0.0.1:${a.port}`, every, seed)
    t.after(() => proxy.close())
    return proxy
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise(r => this.#server.close(r))
  }
}
