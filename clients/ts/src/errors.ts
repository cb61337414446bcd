import type { ErrorBody } from './types.js'

/**
 * FieldsyncError is a refusal of the server (status and the contract's
 * error body), or a failure of the client itself (status 0).
 */
export class FieldsyncError extends Error {
  /** The request that failed, such as "push" or "media.put". */
  readonly op: string
  /** The HTTP status; 0 when no answer came. */
  readonly status: number
  /** The contract's stable code, such as "unauthorized" or "validation_failed". */
  readonly code: string
  /** The field at fault, when the server named one. */
  readonly field?: string
  /** The pause the server asked for with Retry-After, in ms, when it named one. */
  readonly retryAfterMs?: number

  constructor(op: string, status: number, body: ErrorBody, options?: { cause?: unknown, retryAfterMs?: number }) {
    super(`${op}: ${status ? `HTTP ${status}: ` : ''}${body.code}: ${body.message}`, options)
    this.name = 'FieldsyncError'
    this.op = op
    this.status = status
    this.code = body.code
    this.field = body.field
    this.retryAfterMs = options?.retryAfterMs
  }
}

/** Thrown by delete for a record the device does not have. */
export class NotFoundError extends FieldsyncError {
  constructor(op: string, collection: string, id: string) {
    super(op, 0, { code: 'not_found', message: `${collection} ${id} is not on this device` })
    this.name = 'NotFoundError'
  }
}

/** The code a status stands for when its answer had no contract error body (from a proxy, say). */
export function codeOfStatus(status: number): string {
  switch (status) {
    case 401: return 'unauthorized'
    case 403: return 'forbidden'
    case 404: return 'not_found'
    case 409: return 'conflict'
    case 413: return 'payload_too_large'
    case 429: return 'rate_limited'
    case 503: return 'unavailable'
  }
  return status >= 500 ? 'internal' : 'bad_request'
}
