import { FieldsyncError } from './errors.js'
import { backoff, sleep, withJitter, type Api, type RetryPolicy } from './http.js'
import type { ChangesEvent, Collection } from './types.js'

/** How a subscription behaves. */
export interface SubscribeOptions {
  /** Called when a stream opens (the server's `ready`), first and after each reconnect. */
  onReady?: () => void
  /** Called with each failure: of the connection, or of onChanges. The subscription goes on. */
  onError?: (err: unknown) => void
  /**
   * Reconnect waits: exponential from baseDelayMs (default 500) up to maxDelayMs (default 30,000), with jitter;
   * a refusal's Retry-After (a server at its stream cap) is waited in full, with jitter on top.
   */
  retry?: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>
  /** Only tell of writes to these collections; default every collection the caller may read. */
  collections?: readonly Collection[]
  /** A stream silent this long (no event, no ping) is dropped and opened again; default 45,000 ms. */
  idleTimeoutMs?: number
}

/** One server-sent event. */
interface SSEvent {
  event: string
  data: string
}

/**
 * Parser reads server-sent events from text chunks, by hand (EventSource
 * cannot send a bearer header, and React Native has none).
 */
export class SSEParser {
  #buf = ''
  #event = ''
  #data: string[] = []

  /** Feeds a chunk and returns the events it completed. */
  push(chunk: string): SSEvent[] {
    this.#buf += chunk
    const out: SSEvent[] = []
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.#buf)
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!m || (m[0] === '\r' && m.index === this.#buf.length - 1)) break
      const line = this.#buf.slice(0, m.index)
      this.#buf = this.#buf.slice(m.index + m[0].length)
      if (line === '') {
        if (this.#data.length || this.#event) out.push({ event: this.#event || 'message', data: this.#data.join('\n') })
        this.#event = ''
        this.#data = []
        continue
      }
      if (line.startsWith(':')) continue
      const i = line.indexOf(':')
      const field = i < 0 ? line : line.slice(0, i)
      let value = i < 0 ? '' : line.slice(i + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') this.#event = value
      else if (field === 'data') this.#data.push(value)
    }
    return out
  }
}

/**
 * subscribe reads GET /v1/sync/stream with fetch until stopped: it calls
 * onChanges on each `changes` event, renews the token and reconnects at
 * once on `expired`, and reconnects with backoff when the stream fails or
 * falls silent.
 */
export function subscribe(api: Api, onChanges: (e: ChangesEvent) => unknown, o: SubscribeOptions = {}): () => void {
  const stop = new AbortController()
  const retry = { maxAttempts: 0, maxRetryAfterMs: 0, baseDelayMs: o.retry?.baseDelayMs ?? 500, maxDelayMs: o.retry?.maxDelayMs ?? 30_000 }
  const idle = o.idleTimeoutMs ?? 45_000
  const report = (err: unknown) => { if (!stop.signal.aborted) o.onError?.(err) }
  const run = async () => {
    for (let failures = 0; !stop.signal.aborted;) {
      const conn = new AbortController()
      const onStop = () => conn.abort(stop.signal.reason)
      stop.signal.addEventListener('abort', onStop, { once: true })
      let timer: ReturnType<typeof setTimeout> | undefined
      const arm = () => {
        clearTimeout(timer)
        timer = setTimeout(() => conn.abort(new Error('stream: silent too long')), idle)
      }
      let expired = false
      let asked: number | undefined // the pause a refusal asked for
      try {
        arm()
        const { response, token } = await api.openStream(conn.signal, o.collections)
        if (!response.body) throw new Error('stream: this fetch cannot stream response bodies')
        const reader = response.body.getReader()
        const decoder = new TextDecoder()
        const parser = new SSEParser()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          arm()
          for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
            if (ev.event === 'ready') {
              failures = 0
              o.onReady?.()
            } else if (ev.event === 'changes') {
              let data: ChangesEvent = {}
              try { data = JSON.parse(ev.data || '{}') as ChangesEvent } catch { /* events carry no records: any is a change */ }
              Promise.resolve().then(() => onChanges(data)).catch(report)
            } else if (ev.event === 'expired') {
              expired = true
              await api.renew(token, stop.signal)
            }
          }
          if (expired) break
        }
        if (expired) conn.abort()
        else failures++
      } catch (err) {
        failures++
        if (err instanceof FieldsyncError) asked = err.retryAfterMs
        report(err)
      } finally {
        clearTimeout(timer)
        stop.signal.removeEventListener('abort', onStop)
      }
      if (!expired && !stop.signal.aborted) {
        // A refusal's Retry-After is waited in full; maxDelayMs bounds the backoff only.
        const wait = Math.max(backoff(Math.max(1, failures), retry), asked === undefined ? 0 : withJitter(asked))
        try { await sleep(wait, stop.signal) } catch { /* stopped */ }
      }
    }
  }
  void run()
  return () => stop.abort()
}
