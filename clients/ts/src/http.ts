import { FieldsyncError, codeOfStatus } from './errors.js'
import type {
  ErrorBody, LoginRequest, PullRequest, PullResponse, PushRequest, PushResponse, TokenPair,
} from './types.js'

/** How requests that failed for a passing reason are tried again. */
export interface RetryPolicy {
  /** Attempts in all, the first one included; default 5. */
  maxAttempts?: number
  /** The first wait, in ms; default 500. It doubles each time, with jitter. */
  baseDelayMs?: number
  /** The longest wait between attempts, in ms; default 30,000. */
  maxDelayMs?: number
  /**
   * The longest Retry-After honoured, in ms; default 300,000, the longest
   * fieldsync asks for (a sign-in in a crowd of them). A server that asks
   * for a longer pause gets an error instead of a wait.
   */
  maxRetryAfterMs?: number
}

/** Counts of what the transport did, for reports and tests. */
export interface TransportStats {
  retries: number
  logins: number
  refreshes: number
}

/** What the transport needs to know. */
export interface TransportOptions {
  baseUrl: string
  deviceId: string
  fetch: typeof fetch
  retry: Required<RetryPolicy>
  requestTimeoutMs: number
  now: () => number
  stats: TransportStats
  /** Told of each new token pair (to keep the refresh token), and of null when signed out. */
  onTokens: (pair: TokenPair | null) => Promise<void>
  /** Returns the kept refresh token, when the client starts without a sign-in. */
  loadRefreshToken: () => Promise<string | undefined>
}

/** One call of the contract. */
interface Call {
  op: string
  method: string
  path: string
  body?: BodyInit
  contentType?: string
  /** Statuses other than 2xx that are answers, not errors. */
  accept?: number[]
  /** Public calls carry no token. */
  public?: boolean
  signal?: AbortSignal
}

const statusRetryable = (s: number) => s === 408 || s === 429 || s >= 500

/** sleep waits ms, or rejects when signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = () => { clearTimeout(t); reject(signal!.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** backoff is the wait before retry n (1-based): exponential, half of it random. */
export function backoff(n: number, retry: Required<RetryPolicy>): number {
  const d = Math.min(retry.baseDelayMs * 2 ** Math.min(n - 1, 20), retry.maxDelayMs)
  return d / 2 + Math.random() * (d / 2)
}

/** retryAfterMs reads a Retry-After header (seconds or an HTTP date); undefined when absent. */
function retryAfterMs(h: string | null, now: number): number | undefined {
  if (!h) return undefined
  const s = Number(h)
  if (Number.isFinite(s)) return Math.max(0, s * 1000)
  const at = Date.parse(h)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/**
 * retryWait is the pause a refusal asks for: its Retry-After with up to a
 * second of jitter, so that devices told the same pause do not all come
 * back at once; undefined when it names none.
 */
function retryWait(res: Response, now: number): number | undefined {
  const wait = retryAfterMs(res.headers.get('Retry-After'), now)
  return wait === undefined ? undefined : withJitter(wait)
}

/**
 * withJitter is a pause the server asked for, never shortened, plus up to
 * a tenth of it and 100 ms (at most a second).
 */
export function withJitter(ms: number): number {
  return ms + Math.random() * Math.min(1000, ms / 10 + 100)
}

/** A signal that aborts when the caller's does or after ms. */
function timeoutSignal(ms: number, outer?: AbortSignal): { signal: AbortSignal, done: () => void } {
  const ctl = new AbortController()
  const t = setTimeout(() => ctl.abort(new FieldsyncError('request', 0, { code: 'timeout', message: `no answer within ${ms} ms` })), ms)
  const onAbort = () => ctl.abort(outer!.reason)
  if (outer?.aborted) ctl.abort(outer.reason)
  outer?.addEventListener('abort', onAbort, { once: true })
  return { signal: ctl.signal, done: () => { clearTimeout(t); outer?.removeEventListener('abort', onAbort) } }
}

/** errorOf turns a refusal into a FieldsyncError. */
async function errorOf(op: string, res: Response): Promise<FieldsyncError> {
  let body: ErrorBody | undefined
  try {
    const parsed = JSON.parse(await res.text()) as { error?: ErrorBody }
    if (parsed.error?.code) body = parsed.error
  } catch { /* no contract body: name the status */ }
  return new FieldsyncError(op, res.status, body ?? { code: codeOfStatus(res.status), message: res.statusText || `HTTP ${res.status}` },
    { retryAfterMs: retryAfterMs(res.headers.get('Retry-After'), Date.now()) })
}

/**
 * Api is the raw protocol, typed: every endpoint a device uses, with its
 * retries and its token handling. Calls that need a token sign in with the
 * kept session; a 401 makes them renew it once (refresh, else the password
 * given to login) and try again. One renewal is in flight at a time.
 */
export class Api {
  readonly #o: TransportOptions
  #access = ''
  #expires = 0
  #refresh: string | undefined
  #loaded = false
  #credentials: { username: string, password: string } | undefined
  #renewing: Promise<string> | undefined

  constructor(options: TransportOptions) {
    this.#o = options
  }

  /** Signs in and keeps the pair (and the password, in memory only, to sign in again when refreshes are refused). */
  async signIn(username: string, password: string): Promise<TokenPair> {
    this.#credentials = { username, password }
    const pair = await this.login({ username, password, device_id: this.#o.deviceId })
    this.#o.stats.logins++
    await this.#keep(pair)
    return pair
  }

  /** Forgets the session here and, when the server answers, there. */
  async signOut(signal?: AbortSignal): Promise<void> {
    try {
      if (this.#access) await this.#send({ op: 'auth.logout', method: 'POST', path: '/v1/auth/logout', signal })
    } finally {
      this.#access = ''
      this.#refresh = undefined
      this.#credentials = undefined
      await this.#o.onTokens(null)
    }
  }

  /** POST /v1/auth/login, without keeping the pair. */
  async login(req: LoginRequest, signal?: AbortSignal): Promise<TokenPair> {
    return this.#json<TokenPair>({ op: 'auth.login', method: 'POST', path: '/v1/auth/login', public: true, signal }, req)
  }

  /** POST /v1/auth/refresh, without keeping the pair. The token presented stops working. */
  async refresh(refreshToken: string, signal?: AbortSignal): Promise<TokenPair> {
    return this.#json<TokenPair>({ op: 'auth.refresh', method: 'POST', path: '/v1/auth/refresh', public: true, signal },
      { refresh_token: refreshToken })
  }

  /** POST /v1/sync/push; device_id defaults to the client's. */
  async push(req: Omit<PushRequest, 'device_id'> & { device_id?: string }, signal?: AbortSignal): Promise<PushResponse> {
    return this.#json<PushResponse>({ op: 'push', method: 'POST', path: '/v1/sync/push', signal },
      { device_id: this.#o.deviceId, ...req })
  }

  /** POST /v1/sync/pull. */
  async pull(req: PullRequest, signal?: AbortSignal): Promise<PullResponse> {
    return this.#json<PullResponse>({ op: 'pull', method: 'POST', path: '/v1/sync/pull', signal }, req)
  }

  /** HEAD /v1/media/{sha256}: whether the server has these bytes. */
  async hasMedia(sha256: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.#send({ op: 'media.head', method: 'HEAD', path: `/v1/media/${sha256}`, accept: [404], signal })
    return res.status === 200
  }

  /** PUT /v1/media/{sha256}: "created", or "exists" when the server had them. */
  async putMedia(sha256: string, bytes: Uint8Array, contentType: string, signal?: AbortSignal): Promise<'created' | 'exists'> {
    const res = await this.#send({ op: 'media.put', method: 'PUT', path: `/v1/media/${sha256}`, body: bytes as BodyInit, contentType, signal })
    await res.arrayBuffer()
    return res.status === 201 ? 'created' : 'exists'
  }

  /** GET /v1/media/{sha256}: the bytes. */
  async media(sha256: string, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await this.#send({ op: 'media.get', method: 'GET', path: `/v1/media/${sha256}`, signal })
    return new Uint8Array(await res.arrayBuffer())
  }

  /**
   * Sends one request of a resumable upload (tus 1.0, under /v1/uploads/)
   * with the session's token, renewed once on a 401, and returns the
   * server's answer whatever its status: the tus client acts on statuses
   * itself. A 429 or 503 that names a Retry-After within the policy is
   * waited out here (with jitter) and sent again, up to maxAttempts times;
   * a network error or a timeout is thrown, so that the tus client asks the
   * server for its offset and goes on from there.
   */
  async tusSend(method: string, path: string, headers: Record<string, string>, body?: Uint8Array, signal?: AbortSignal): Promise<Response> {
    const retry = this.#o.retry
    let renewed = false
    for (let attempt = 1; ; attempt++) {
      const token = await this.token(signal)
      const t = timeoutSignal(this.#o.requestTimeoutMs, signal)
      let res: Response
      try {
        const got = await this.#o.fetch(this.#o.baseUrl + path, {
          method, headers: { ...headers, Authorization: `Bearer ${token}` }, body: body as BodyInit | undefined, signal: t.signal,
        })
        const empty = method === 'HEAD' || [204, 205, 304].includes(got.status)
        res = new Response(empty ? null : await got.arrayBuffer(), { status: got.status, headers: got.headers })
      } finally {
        t.done()
      }
      if (res.status === 401 && !renewed) {
        renewed = true
        attempt--
        await this.renew(token, signal)
        continue
      }
      const wait = res.status === 429 || res.status === 503 ? retryWait(res, this.#o.now()) : undefined
      if (wait === undefined || wait > retry.maxRetryAfterMs || attempt >= retry.maxAttempts) return res
      this.#o.stats.retries++
      await sleep(wait, signal)
    }
  }

  /**
   * GET /v1/sync/stream: the open response, its body not read. It is not
   * retried here (the subscriber has its own backoff) and has no timeout.
   */
  async openStream(signal: AbortSignal, collections?: readonly string[]): Promise<{ response: Response, token: string }> {
    const query = collections?.length ? `?collections=${encodeURIComponent(collections.join(','))}` : ''
    for (let renewed = false; ;) {
      const token = await this.token(signal)
      const res = await this.#o.fetch(this.#o.baseUrl + '/v1/sync/stream' + query, {
        headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` }, signal,
      })
      if (res.status === 401 && !renewed) {
        await res.body?.cancel()
        renewed = true
        await this.renew(token, signal)
        continue
      }
      if (!res.ok) throw await errorOf('stream', res)
      return { response: res, token }
    }
  }

  /** Whether a session is there to use (signed in now, or a kept refresh token). */
  async hasSession(): Promise<boolean> {
    await this.#load()
    return this.#access !== '' || this.#refresh !== undefined || this.#credentials !== undefined
  }

  /** An access token that should still be good, renewing it first when it ran out. */
  async token(signal?: AbortSignal): Promise<string> {
    await this.#load()
    if (this.#access && this.#o.now() < this.#expires) return this.#access
    return this.renew(this.#access, signal)
  }

  /**
   * Replaces the access token the server refused, unless that was done
   * already; concurrent callers share one renewal.
   */
  async renew(refused: string, signal?: AbortSignal): Promise<string> {
    if (this.#renewing) return this.#renewing
    if (this.#access !== refused && this.#access && this.#o.now() < this.#expires) return this.#access
    this.#renewing = this.#renew(signal).finally(() => { this.#renewing = undefined })
    return this.#renewing
  }

  async #renew(signal?: AbortSignal): Promise<string> {
    await this.#load()
    this.#access = ''
    const refresh = this.#refresh
    if (refresh) {
      this.#refresh = undefined // good once, whatever the answer
      try {
        const pair = await this.refresh(refresh, signal)
        this.#o.stats.refreshes++
        await this.#keep(pair)
        return pair.access_token
      } catch (err) {
        if (!(err instanceof FieldsyncError) || err.status !== 401) {
          this.#refresh = refresh // not answered: it may still be good
          throw err
        }
        await this.#o.onTokens(null)
      }
    }
    if (!this.#credentials) {
      throw new FieldsyncError('auth', 401, { code: 'unauthorized', message: 'not signed in: call login' })
    }
    const pair = await this.login({ ...this.#credentials, device_id: this.#o.deviceId }, signal)
    this.#o.stats.logins++
    await this.#keep(pair)
    return pair.access_token
  }

  async #load(): Promise<void> {
    if (this.#loaded) return
    this.#loaded = true
    this.#refresh ??= await this.#o.loadRefreshToken()
  }

  async #keep(pair: TokenPair): Promise<void> {
    if (!pair.access_token || !pair.refresh_token) {
      throw new FieldsyncError('auth', 0, { code: 'bad_answer', message: 'the answer holds no token pair' })
    }
    this.#loaded = true
    this.#access = pair.access_token
    this.#refresh = pair.refresh_token
    // Renew a little before the server would refuse it.
    const ttl = pair.expires_in * 1000
    this.#expires = ttl > 0 ? this.#o.now() + ttl - Math.min(ttl / 10, 30_000) : Number.POSITIVE_INFINITY
    await this.#o.onTokens(pair)
  }

  async #json<T>(call: Call, body: unknown): Promise<T> {
    const res = await this.#send({ ...call, body: JSON.stringify(body), contentType: 'application/json' })
    const text = await res.text()
    try {
      return JSON.parse(text) as T
    } catch (cause) {
      throw new FieldsyncError(call.op, res.status, { code: 'bad_answer', message: 'the answer is not JSON' }, { cause })
    }
  }

  /**
   * Sends a call until it gets an answer. Network errors, timeouts, 408,
   * 429 and 5xx are retried with backoff (Retry-After honoured, with
   * jitter); other refusals are thrown at once.
   */
  async #send(call: Call): Promise<Response> {
    const retry = this.#o.retry
    let renewed = false
    for (let attempt = 1; ; attempt++) {
      let token = ''
      if (!call.public) token = await this.token(call.signal)
      const headers: Record<string, string> = { Accept: 'application/json' }
      if (call.contentType) headers['Content-Type'] = call.contentType
      if (token) headers.Authorization = `Bearer ${token}`
      const t = timeoutSignal(this.#o.requestTimeoutMs, call.signal)
      let failure: unknown
      let wait: number | undefined
      let fatal: FieldsyncError | undefined
      try {
        const res = await this.#o.fetch(this.#o.baseUrl + call.path, { method: call.method, headers, body: call.body, signal: t.signal })
        if (res.status === 401 && !call.public && !renewed) {
          await res.body?.cancel()
          renewed = true
          attempt--
          await this.renew(token, call.signal)
          continue
        }
        if (res.ok || call.accept?.includes(res.status)) {
          // Read the body under the same timeout: a stalled answer is retried too.
          const empty = call.method === 'HEAD' || [204, 205, 304].includes(res.status)
          const buf = empty ? null : await res.arrayBuffer()
          return new Response(buf, { status: res.status, headers: res.headers })
        }
        const err = await errorOf(call.op, res)
        failure = err
        wait = retryWait(res, this.#o.now())
        if (!statusRetryable(res.status) || (wait !== undefined && wait > retry.maxRetryAfterMs)) fatal = err
      } catch (err) {
        if (call.signal?.aborted) throw call.signal.reason
        // Thrown by fetch or the body read: the network, or the timeout.
        if (err instanceof FieldsyncError && err.code !== 'timeout') throw err
        failure = err
      } finally {
        t.done()
      }
      if (fatal) throw fatal
      if (attempt >= retry.maxAttempts) {
        if (failure instanceof FieldsyncError) throw failure
        throw new FieldsyncError(call.op, 0, { code: 'network', message: `gave up after ${attempt} attempts: ${String(failure)}` }, { cause: failure })
      }
      this.#o.stats.retries++
      const d = wait ?? backoff(attempt, retry)
      await sleep(d, call.signal)
    }
  }
}
