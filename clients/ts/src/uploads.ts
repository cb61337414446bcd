// Resumable photo uploads: tus-js-client speaks the tus protocol against
// the server's /v1/uploads/; this file gives it the client's transport
// (fetch, the session's token, Retry-After), the photo's bytes and a place
// to keep each upload's address, the same on browsers, React Native and
// Node.
import {
  Upload, type DetailedError, type FileReader, type FileSource, type HttpRequest, type HttpResponse, type HttpStack,
  type PreviousUpload, type UrlStorage,
} from 'tus-js-client'

import { FieldsyncError, codeOfStatus } from './errors.js'
import { backoff, type Api, type RetryPolicy } from './http.js'
import type { Storage } from './storage.js'
import type { ErrorBody } from './types.js'

export type { PreviousUpload, UrlStorage }

/** The path resumable uploads are opened under. */
export const uploadsPath = '/v1/uploads/'

/** A slice of the photo, as the HTTP stack sends it. */
interface Chunk {
  bytes: Uint8Array
  /** tus-js-client reads a slice's length from size. */
  size: number
}

/** bytesReader gives tus-js-client slices of bytes already in memory. */
const bytesReader: FileReader = {
  async openFile(input: Uint8Array): Promise<FileSource> {
    return {
      size: input.byteLength,
      async slice(start: number, end: number) {
        const bytes = input.subarray(start, Math.min(end, input.byteLength))
        const chunk: Chunk = { bytes, size: bytes.byteLength }
        return { value: chunk, done: start + bytes.byteLength >= input.byteLength }
      },
      close() {},
    }
  },
}

/** What the HTTP stack counts of the requests it sends. */
interface Sent {
  /** HEAD requests: each asks the server's offset to go on from it. */
  heads: number
}

/**
 * ApiStack is tus-js-client's HTTP stack on the client's own transport:
 * every request goes to the client's server (only the path of an address
 * the server gave is used, so the token never goes to a host named in an
 * answer), with the session's token and Retry-After handling.
 */
class ApiStack implements HttpStack {
  readonly #api: Api
  readonly #baseUrl: string
  readonly #sent: Sent
  readonly #signal?: AbortSignal

  constructor(api: Api, baseUrl: string, sent: Sent, signal?: AbortSignal) {
    this.#api = api
    this.#baseUrl = baseUrl
    this.#sent = sent
    this.#signal = signal
  }

  getName(): string { return 'fieldsync' }

  createRequest(method: string, url: string): HttpRequest {
    const headers: Record<string, string> = {}
    const abort = new AbortController()
    const onAbort = () => abort.abort(this.#signal!.reason)
    const api = this.#api
    const sent = this.#sent
    const outer = this.#signal
    // An address of the server's own: the path only, as the Go client does.
    const u = new URL(url)
    const path = url.startsWith(this.#baseUrl + '/') ? url.slice(this.#baseUrl.length) : u.pathname + u.search
    return {
      getMethod: () => method,
      getURL: () => url,
      setHeader: (k, v) => { headers[k] = v },
      getHeader: k => headers[k],
      setProgressHandler: () => {}, // fetch tells nothing of a body's progress
      async send(body?: Chunk | null): Promise<HttpResponse> {
        if (outer?.aborted) throw outer.reason
        outer?.addEventListener('abort', onAbort, { once: true })
        try {
          if (method === 'HEAD') sent.heads++
          const res = await api.tusSend(method, path, headers, body?.bytes, abort.signal)
          const text = await res.text()
          return {
            getStatus: () => res.status,
            getHeader: k => res.headers.get(k) ?? undefined,
            getBody: () => text,
            getUnderlyingObject: () => res,
          }
        } finally {
          outer?.removeEventListener('abort', onAbort)
        }
      },
      async abort() { abort.abort() },
      getUnderlyingObject: () => abort,
    }
  }
}

const uploadsKey = 'tus_uploads'

/**
 * StorageUrls keeps the addresses of unfinished uploads in the client's
 * Storage (one meta value), so that they last exactly as long as the
 * queued photos they belong to: in memory with MemoryStorage, across
 * restarts with IndexedDBStorage or an app's own storage.
 */
export class StorageUrls implements UrlStorage {
  readonly #storage: Storage
  #chain: Promise<unknown> = Promise.resolve()

  constructor(storage: Storage) {
    this.#storage = storage
  }

  async #all(): Promise<Record<string, PreviousUpload & { fingerprint: string }>> {
    const raw = await this.#storage.meta(uploadsKey)
    return raw ? JSON.parse(raw) : {}
  }

  /** Runs one read-modify-write of the kept addresses at a time. */
  #change<T>(fn: (all: Record<string, PreviousUpload & { fingerprint: string }>) => T): Promise<T> {
    const run = this.#chain.then(async () => {
      const all = await this.#all()
      const out = fn(all)
      await this.#storage.commit({ meta: { [uploadsKey]: Object.keys(all).length ? JSON.stringify(all) : null } })
      return out
    })
    this.#chain = run.catch(() => undefined)
    return run
  }

  async findAllUploads(): Promise<PreviousUpload[]> {
    return Object.values(await this.#all())
  }

  async findUploadsByFingerprint(fingerprint: string): Promise<PreviousUpload[]> {
    return Object.values(await this.#all()).filter(u => u.fingerprint === fingerprint)
  }

  removeUpload(urlStorageKey: string): Promise<void> {
    return this.#change(all => { delete all[urlStorageKey] })
  }

  addUpload(fingerprint: string, upload: PreviousUpload): Promise<string> {
    // One address per photo: a new upload of the same bytes replaces the last.
    return this.#change(all => {
      for (const [k, u] of Object.entries(all)) if (u.fingerprint === fingerprint) delete all[k]
      all[fingerprint] = { ...upload, urlStorageKey: fingerprint, fingerprint }
      return fingerprint
    })
  }
}

/** What one resumable upload did. */
export interface ResumableResult {
  /** Times it asked the server for its offset to go on: after a cut, or from an upload kept from before. */
  resumes: number
  /** Whether it went on from an upload opened before (by an earlier sync or run of the app). */
  resumed: boolean
}

/** What uploadResumable needs besides the bytes. */
export interface ResumableOptions {
  api: Api
  baseUrl: string
  /** Who uploads: the kept address of one user or server is never offered to another. */
  owner: string
  sha256: string
  contentType: string
  urlStorage: UrlStorage
  retry: Required<RetryPolicy>
  signal?: AbortSignal
}

/**
 * uploadResumable sends a photo through a resumable upload: it goes on
 * from an upload of the same bytes opened before when the storage kept
 * its address, else opens one announcing the photo's SHA-256, type and
 * size; after a cut it asks the server for its offset and sends the rest.
 * A refusal is thrown as a FieldsyncError with the server's status and
 * body; 404 on opening means the server takes no resumable uploads.
 */
export async function uploadResumable(bytes: Uint8Array, o: ResumableOptions): Promise<ResumableResult> {
  const sent: Sent = { heads: 0 }
  const delays = Array.from({ length: Math.max(o.retry.maxAttempts - 1, 0) }, (_, i) => backoff(i + 1, o.retry))
  let resumed = false
  const done = new Promise<void>((resolve, reject) => {
    const upload = new Upload(bytes as never, {
      endpoint: o.baseUrl + uploadsPath,
      uploadSize: bytes.byteLength,
      metadata: { sha256: o.sha256, content_type: o.contentType },
      fingerprint: async () => `${o.owner} ${o.sha256}`,
      urlStorage: o.urlStorage,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      fileReader: bytesReader,
      httpStack: new ApiStack(o.api, o.baseUrl, sent, o.signal),
      retryDelays: delays,
      // Cuts, timeouts, 408, 409 (the offset moved), 423, 429 and 5xx
      // are tried again after asking the server for its offset, and so is
      // a 404 of an upload swept meanwhile (asking finds it gone and opens
      // another); other refusals are final.
      onShouldRetry: err => {
        if (o.signal?.aborted) return false
        const e = err as DetailedError
        const s = e.originalResponse?.getStatus() ?? 0
        if (s === 404) return e.originalRequest?.getMethod() !== 'POST'
        return s === 0 || s === 408 || s === 409 || s === 423 || s === 429 || s >= 500
      },
      onSuccess: () => resolve(),
      onError: err => reject(refusal(err)),
    })
    o.signal?.addEventListener('abort', () => { void upload.abort(); reject(o.signal!.reason) }, { once: true })
    upload.findPreviousUploads().then(prev => {
      if (prev[0]) {
        resumed = true
        upload.resumeFromPreviousUpload(prev[0])
      }
      upload.start()
    }, reject)
  })
  await done
  return { resumes: sent.heads, resumed }
}

/** refusal turns tus-js-client's error into a FieldsyncError, keeping the server's answer. */
function refusal(err: Error | DetailedError): FieldsyncError {
  const res = (err as DetailedError).originalResponse
  if (!res) {
    return new FieldsyncError('upload', 0, { code: 'network', message: `resumable upload gave up: ${err.message}` }, { cause: err })
  }
  let body: ErrorBody | undefined
  try {
    const parsed = JSON.parse(res.getBody()) as { error?: ErrorBody }
    if (parsed.error?.code) body = parsed.error
  } catch { /* no contract body: name the status */ }
  const status = res.getStatus()
  const op = `upload.${((err as DetailedError).originalRequest?.getMethod() ?? 'request').toLowerCase()}`
  return new FieldsyncError(op, status, body ?? { code: codeOfStatus(status), message: `HTTP ${status}` }, { cause: err })
}
