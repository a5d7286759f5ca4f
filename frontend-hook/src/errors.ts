/**
 * The error of a failed Tauri command (or event subscription), as the hook
 * rejects with it and exposes it in `error`.
 *
 * `cause` is exactly what `invoke` (or `listen`) rejected with; `code`,
 * `message` and `data` are read from it when it is a JSON-RPC error object
 * (`{code, message, data}`, as docs/api.md describes them), a JSON string of one,
 * an `Error`, or a plain string.
 */
export class WebRTCCommandError extends Error {
  override readonly name = "WebRTCCommandError";
  /** The command without its prefix (`send_control_message`), or `listen <event>`. */
  readonly command: string;
  /** The JSON-RPC error code (`-32001` not started, …) when the error carries one. */
  readonly code: number | null;
  /** The JSON-RPC error's `data` (for `-32602`, the field and the reason). */
  readonly data: unknown;
  /**
   * The bridge's stable error kind when it sends one (tauri-plugin-mobile-worship:
   * `"not_started"`, `"peer_not_connected"`, `"invalid_params"`, `"sidecar_exited"`, …).
   */
  readonly kind: string | null;

  constructor(command: string, cause: unknown) {
    const parsed = parseCommandError(cause);
    super(parsed.message, { cause });
    this.command = command;
    this.code = parsed.code;
    this.data = parsed.data;
    this.kind = parsed.kind;
  }
}

/** Application error codes of docs/api.md. */
export const SidecarErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  NotStarted: -32001,
  AlreadyStarted: -32002,
  PeerNotConnected: -32003,
  PayloadTooLarge: -32004,
} as const;

interface ParsedError {
  message: string;
  code: number | null;
  data: unknown;
  kind: string | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function fromObject(value: Record<string, unknown>): ParsedError | null {
  // `{code, message, data}` (the plugin adds `kind`), or a wrapper `{error: {…}}`
  const inner = isRecord(value.error) ? value.error : value;
  const code = typeof inner.code === "number" ? inner.code : null;
  const message = typeof inner.message === "string" ? inner.message : null;
  const kind = typeof inner.kind === "string" ? inner.kind : null;
  if (code === null && message === null) return null;
  return {
    message: message ?? `error ${String(code)}`,
    code,
    // the plugin sends `data: null` when the sidecar gave none
    data: inner.data ?? undefined,
    kind,
  };
}

export function parseCommandError(raw: unknown): ParsedError {
  if (typeof raw === "string") {
    const text = raw.trim();
    if (text.startsWith("{")) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (isRecord(parsed)) {
          const found = fromObject(parsed);
          if (found) return found;
        }
      } catch {
        // not JSON: the string is the message
      }
    }
    return { message: raw, code: null, data: undefined, kind: null };
  }
  if (raw instanceof Error) {
    const found = fromObject(raw as unknown as Record<string, unknown>);
    return { message: raw.message, code: found?.code ?? null, data: found?.data, kind: found?.kind ?? null };
  }
  if (isRecord(raw)) {
    const found = fromObject(raw);
    if (found) return found;
  }
  let message = String(raw);
  try {
    // undefined for undefined, functions and symbols, whatever its type says
    const json = JSON.stringify(raw) as string | undefined;
    if (json !== undefined) message = json;
  } catch {
    // cyclic: String() it is
  }
  return { message, code: null, data: undefined, kind: null };
}
