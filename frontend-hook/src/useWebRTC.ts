/**
 * useWebRTC: the room, the leader and the live-control messages of the
 * mobile-worship peer layer, over the Tauri plugin's commands and events.
 *
 * Commands are `<prefix><method>` (prefix `plugin:mobile-worship|` by default)
 * with the JSON-RPC params of docs/api.md as invoke args; events are `webrtc:*`
 * with the notification's params as payload.
 */
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";

import { SidecarErrorCode, WebRTCCommandError } from "./errors";
import type {
  ConnectedParams,
  DisconnectedParams,
  LeaderChangedParams,
  MessageParams,
  NetworkChangedParams,
  OpenPairingParams,
  PairedParams,
  PairingParams,
  PairingWindow,
  RotationResult,
  PeerInfo,
  PeerListChangedParams,
  PingPeerParams,
  SendControlMessageParams,
  SendResult,
  SidecarMethodResults,
  StartPeerParams,
  RoomKeyParams,
  StateEntry,
} from "./generated/sidecar-types";
import { selectState } from "./retained";
import {
  REJOINED_EVENT,
  SIDECAR_EVENT,
  tauriTransport,
  type PeerTransport,
  type RejoinedEvent,
  type SidecarLifecycleEvent,
} from "./transport";
import { selectConnectedPeers, selectConnectionState, selectLeader } from "./selectors";
import {
  initialRoomState,
  roomReducer,
  type LeaderView,
  type NetworkView,
  type PeerConnectionState,
  type RestartView,
  type RoomAction,
} from "./state";

export const DEFAULT_COMMAND_PREFIX = "plugin:mobile-worship|";
export const DEFAULT_MAX_MESSAGES = 100;

/** The Tauri events of the bridge and their payloads (the notifications' params). */
export interface WebRTCEventPayloads {
  "webrtc:connected": ConnectedParams;
  "webrtc:disconnected": DisconnectedParams;
  "webrtc:message": MessageParams;
  "webrtc:leader_changed": LeaderChangedParams;
  "webrtc:peer_list_changed": PeerListChangedParams;
  "webrtc:network_changed": NetworkChangedParams;
  "webrtc:state": StateEntry;
  "webrtc:paired": PairedParams;
  "webrtc:room_key": RoomKeyParams;
  "webrtc:pairing": PairingParams;
}

export type WebRTCEventName = keyof WebRTCEventPayloads;

/** Every event the hook subscribes to: the sidecar's, and the Tauri plugin's own two. */
interface SubscribedPayloads extends WebRTCEventPayloads {
  [SIDECAR_EVENT]: SidecarLifecycleEvent;
  [REJOINED_EVENT]: RejoinedEvent;
}

export const WEBRTC_EVENTS: readonly WebRTCEventName[] = [
  "webrtc:connected",
  "webrtc:disconnected",
  "webrtc:message",
  "webrtc:leader_changed",
  "webrtc:peer_list_changed",
  "webrtc:network_changed",
  "webrtc:state",
  "webrtc:paired",
  "webrtc:room_key",
  "webrtc:pairing",
];

/**
 * How a command's params travel as invoke args:
 * - `"flat"`: the docs/api.md params themselves, by name (`{payload, to, display_class}`);
 * - `"params"`: under one `params` argument (`{params: {payload, to, display_class}}`), for
 *   Rust commands declared as `fn send_control_message(params: SendControlMessageParams)`.
 * Commands without params get no args either way.
 */
export type CommandArgsStyle = "flat" | "params";

export interface UseWebRTCOptions {
  /** Prefix of every command name. Default `plugin:mobile-worship|`; `""` for app commands. */
  commandPrefix?: string;
  /** How params are passed. Default `"flat"`. */
  commandArgs?: CommandArgsStyle;
  /**
   * How to reach the peer layer; default the Tauri plugin (with `commandPrefix` and
   * `commandArgs`). `webPeerTransport(new WebPeer({url}))` runs the peer in the page.
   */
  transport?: PeerTransport;
  /** How many received messages `messages` keeps (the newest). Default 100. */
  maxMessages?: number;
  /** Read get_leader_status, get_connected_peers and get_state once subscribed. Default true. */
  refreshOnMount?: boolean;
  /** Called with every received message, including those `messages` no longer keeps. */
  onMessage?: (message: MessageParams) => void;
  /**
   * Called with the room key whenever this device gets one to keep: it created the room
   * (`"created"`), paired (`"paired"`), or a member rotated it (`"rotated"`). Store it and
   * pass it as `room_key` to the next `startPeer`.
   */
  onRoomKey?: (roomKey: string, reason: "created" | "paired" | "rotated") => void;
}

export interface SendMessageOptions {
  /** A peer id or a list of them; default every connected peer. */
  to?: SendControlMessageParams["to"];
  /** Only displays of that class. */
  displayClass?: SendControlMessageParams["display_class"];
  /** The payload also becomes the room's value of this key (docs/api.md, "Retained state"). */
  retain?: string;
}

export interface SetStateOptions {
  /** These peers also get the value as a message (`webrtc:message`); default none. */
  to?: SendControlMessageParams["to"];
  /** The displays of that class also get the value as a message. */
  displayClass?: SendControlMessageParams["display_class"];
}

export interface UseWebRTCResult {
  /** Every peer of the room this device knows of, itself included. */
  peers: readonly PeerInfo[];
  /** The peers with an open data channel. */
  connectedPeers: readonly PeerInfo[];
  /** This device, once started. */
  self: PeerInfo | null;
  leader: LeaderView;
  /** What this device is doing ("offline": waiting for a network). */
  connectionState: PeerConnectionState;
  /** The local addresses in use, once known; `online` false while there is none. */
  network: NetworkView | null;
  /** The last `maxMessages` received messages, oldest first. */
  messages: readonly MessageParams[];
  /** The room's retained state: per key, its current entry (`value`, `origin`, `version`). */
  state: Readonly<Record<string, StateEntry>>;
  /** The last command error, until `clearError()`. */
  error: WebRTCCommandError | null;
  /**
   * The last restart of the peer layer (its process died and the plugin started it
   * again; the room is rejoined with a new peer id), or null.
   */
  restart: RestartView | null;
  /** Every event of WEBRTC_EVENTS is subscribed. */
  subscribed: boolean;
  startPeer: (options: StartPeerParams) => Promise<PeerInfo>;
  stopPeer: () => Promise<void>;
  sendMessage: (payload: unknown, options?: SendMessageOptions) => Promise<SendResult>;
  /** Sets the room's value of `key` (`null` clears it) on every peer. */
  setState: (key: string, value: unknown, options?: SetStateOptions) => Promise<SendResult>;
  /** Round-trip time in milliseconds. */
  ping: (peerId: string) => Promise<number>;
  /** Opens a pairing window of this keyed room: the code a new device starts with. */
  openPairing: (options?: Partial<OpenPairingParams>) => Promise<PairingWindow>;
  closePairing: () => Promise<void>;
  /** Gives every member present but `revoke` a new room key (each host gets it
   * through `onRoomKey`) and shuts the revoked devices out of the room. */
  rotateRoomKey: (revoke?: string[]) => Promise<RotationResult>;
  /** Re-reads get_leader_status, get_connected_peers and get_state. */
  refresh: () => Promise<void>;
  clearError: () => void;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

export function useWebRTC(options: UseWebRTCOptions = {}): UseWebRTCResult {
  const prefix = options.commandPrefix ?? DEFAULT_COMMAND_PREFIX;
  const argsStyle = options.commandArgs ?? "flat";
  const given = options.transport;
  const transport = useMemo(() => given ?? tauriTransport(prefix, argsStyle), [given, prefix, argsStyle]);
  const maxMessages = options.maxMessages ?? DEFAULT_MAX_MESSAGES;
  const refreshOnMount = options.refreshOnMount ?? true;

  const [state, dispatch] = useReducer(roomReducer, initialRoomState);
  const [subscribed, setSubscribed] = useState(false);

  // Logical clock of the inputs (see state.ts), and whether this instance is mounted.
  const clock = useRef(0);
  const mounted = useRef(false);
  // Settles when the current subscription attempt is over: startPeer waits for it, so
  // that no event of the start is emitted before its listener exists.
  const subscription = useRef<Deferred | null>(null);
  subscription.current ??= deferred();

  const maxMessagesRef = useRef(maxMessages);
  const onMessageRef = useRef(options.onMessage);
  const onRoomKeyRef = useRef(options.onRoomKey);
  useEffect(() => {
    maxMessagesRef.current = maxMessages;
    onMessageRef.current = options.onMessage;
    onRoomKeyRef.current = options.onRoomKey;
  });

  const tick = useCallback(() => ++clock.current, []);

  const subscribedOrUnmounted = useCallback(async (): Promise<void> => {
    for (;;) {
      const attempt = subscription.current;
      if (attempt === null) return;
      await attempt.promise;
      if (subscription.current === attempt || !mounted.current) return;
    }
  }, []);
  const safeDispatch = useCallback((action: RoomAction) => {
    if (mounted.current) dispatch(action);
  }, []);

  useEffect(() => {
    dispatch({ type: "trim_messages", max: maxMessages });
  }, [maxMessages]);

  const call = useCallback(
    async <M extends keyof SidecarMethodResults>(
      method: M,
      params?: Record<string, unknown>,
    ): Promise<SidecarMethodResults[M]> => {
      try {
        return (await transport.call(method, params)) as SidecarMethodResults[M];
      } catch (raw) {
        const error = new WebRTCCommandError(method, raw);
        safeDispatch({ type: "error", error });
        throw error;
      }
    },
    [transport, safeDispatch],
  );

  const refresh = useCallback(async (): Promise<void> => {
    const issued = clock.current;
    const outcomes = await Promise.allSettled([
      call("get_leader_status").then((s) => {
        safeDispatch({ type: "leader_status", issued, status: s });
      }),
      call("get_connected_peers").then((peers) => {
        safeDispatch({ type: "connected_peers", issued, peers });
      }),
      call("get_state").then((entries) => {
        safeDispatch({ type: "state_snapshot", issued, entries });
      }),
    ]);
    for (const outcome of outcomes) if (outcome.status === "rejected") throw outcome.reason;
  }, [call, safeDispatch]);

  const refreshRef = useRef<(() => Promise<void>) | null>(null);
  useEffect(() => {
    refreshRef.current = refresh;
  });

  // Subscribe to the events on mount; unsubscribe every listener on unmount,
  // including those whose `listen` resolves only after it.
  useEffect(() => {
    let active = true;
    mounted.current = true;
    const unlisteners: (() => void)[] = [];

    // UnlistenFn is typed `() => void` but returns a promise in @tauri-apps/api v2
    const release = (unlisten: () => unknown) => {
      try {
        const pending = unlisten();
        if (pending instanceof Promise) pending.catch(() => undefined);
      } catch {
        // the IPC is gone (the window is closing): nothing left to unsubscribe from
      }
    };

    const on = async <E extends keyof SubscribedPayloads>(
      event: E,
      handle: (payload: SubscribedPayloads[E]) => void,
    ): Promise<void> => {
      let unlisten: () => void;
      try {
        unlisten = await transport.listen(event, (payload) => {
          if (active) handle(payload as SubscribedPayloads[E]);
        });
      } catch (raw) {
        const error = new WebRTCCommandError(`listen ${event}`, raw);
        if (active) dispatch({ type: "error", error });
        throw error;
      }
      if (active) unlisteners.push(unlisten);
      else release(unlisten);
    };

    const subscriptions = [
      on("webrtc:connected", (params) => {
        dispatch({ type: "connected", at: tick(), params });
      }),
      on("webrtc:disconnected", (params) => {
        dispatch({ type: "disconnected", at: tick(), params });
      }),
      on("webrtc:message", (params) => {
        dispatch({ type: "message", params, max: maxMessagesRef.current });
        onMessageRef.current?.(params);
      }),
      on("webrtc:leader_changed", (params) => {
        dispatch({ type: "leader_changed", at: tick(), params });
      }),
      on("webrtc:peer_list_changed", (params) => {
        dispatch({ type: "peer_list_changed", at: tick(), params });
      }),
      on("webrtc:state", (params) => {
        dispatch({ type: "state", at: tick(), params });
      }),
      on("webrtc:paired", (params) => {
        onRoomKeyRef.current?.(params.room_key, "paired");
      }),
      on("webrtc:room_key", (params) => {
        onRoomKeyRef.current?.(params.room_key, params.reason);
      }),
      on("webrtc:pairing", (params) => {
        dispatch({ type: "pairing", at: tick(), params });
      }),
      on("webrtc:network_changed", (params) => {
        dispatch({ type: "network_changed", at: tick(), params });
        // back online, the election carries on: read where it is
        if (params.online && refreshRef.current) refreshRef.current().catch(() => undefined);
      }),
      on(SIDECAR_EVENT, (event) => {
        if (event.event === "started" && event.restart > 0)
          dispatch({ type: "sidecar_restarted", at: tick(), count: event.restart, when: Date.now() });
      }),
      on(REJOINED_EVENT, (event) => {
        const error = event.error === null ? null : new WebRTCCommandError("start_peer", event.error);
        dispatch({ type: "rejoined", at: tick(), self: event.peer, error });
        if (error !== null) return;
        if (event.peer !== null && refreshRef.current) refreshRef.current().catch(() => undefined);
      }),
    ];

    void Promise.allSettled(subscriptions).then((outcomes) => {
      if (!active) return;
      subscription.current?.resolve();
      // A failure is in `error` already; a refresh would only bury it under its own.
      if (outcomes.some((o) => o.status === "rejected")) return;
      setSubscribed(true);
      // errors of the refresh land in `error`
      if (refreshOnMount) refresh().catch(() => undefined);
    });

    return () => {
      active = false;
      mounted.current = false;
      for (const unlisten of unlisteners.splice(0)) release(unlisten);
      // wake the waiters of this attempt: they wait for the next one, if any (StrictMode)
      const attempt = subscription.current;
      subscription.current = deferred();
      attempt?.resolve();
    };
    // Subscribe once per mount: options are read through refs.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const startPeer = useCallback(
    async (params: StartPeerParams): Promise<PeerInfo> => {
      await subscribedOrUnmounted();
      safeDispatch({ type: "start_begin", at: tick() });
      let self: PeerInfo;
      try {
        self = (await transport.call("start_peer", { ...params })) as SidecarMethodResults["start_peer"];
      } catch (raw) {
        const error = new WebRTCCommandError("start_peer", raw);
        const running = error.code === SidecarErrorCode.AlreadyStarted;
        safeDispatch({ type: "start_failed", at: tick(), error, running });
        if (running && mounted.current) refresh().catch(() => undefined);
        throw error;
      }
      safeDispatch({ type: "start_ok", at: tick(), self });
      if (mounted.current) refresh().catch(() => undefined);
      return self;
    },
    [transport, refresh, safeDispatch, subscribedOrUnmounted, tick],
  );

  const stopPeer = useCallback(async (): Promise<void> => {
    await call("stop_peer");
    safeDispatch({ type: "stop_ok", at: tick() });
  }, [call, safeDispatch, tick]);

  const sendMessage = useCallback(
    (payload: unknown, opts: SendMessageOptions = {}): Promise<SendResult> =>
      call("send_control_message", {
        payload,
        to: opts.to ?? null,
        display_class: opts.displayClass ?? null,
        retain: opts.retain ?? null,
      } satisfies Required<SendControlMessageParams>),
    [call],
  );

  const setState = useCallback(
    (key: string, value: unknown, opts: SetStateOptions = {}): Promise<SendResult> =>
      call("send_control_message", {
        payload: value,
        // no message unless asked for: `to: []` sets the value alone
        to: opts.to ?? (opts.displayClass ? null : []),
        display_class: opts.displayClass ?? null,
        retain: key,
      } satisfies Required<SendControlMessageParams>),
    [call],
  );

  const ping = useCallback(
    async (peerId: string): Promise<number> => (await call("ping_peer", { peer_id: peerId } satisfies PingPeerParams)).rtt_ms,
    [call],
  );

  const openPairing = useCallback(
    (opts: Partial<OpenPairingParams> = {}): Promise<PairingWindow> => call("open_pairing", { ...opts }),
    [call],
  );

  const closePairing = useCallback(async (): Promise<void> => {
    await call("close_pairing");
  }, [call]);

  const rotateRoomKey = useCallback(
    async (revoke: string[] = []): Promise<RotationResult> =>
      call("rotate_room_key", { revoke }),
    [call],
  );

  const clearError = useCallback(() => {
    safeDispatch({ type: "clear_error" });
  }, [safeDispatch]);

  const connectedPeers = useMemo(() => selectConnectedPeers(state.peers), [state.peers]);
  const leader = useMemo(() => selectLeader(state), [state]);
  const retained = useMemo(() => selectState(state.retained), [state.retained]);

  return {
    peers: state.peers,
    connectedPeers,
    self: state.self,
    leader,
    connectionState: selectConnectionState(state),
    network: state.network,
    messages: state.messages,
    state: retained,
    error: state.error,
    restart: state.restart,
    subscribed,
    startPeer,
    stopPeer,
    sendMessage,
    setState,
    ping,
    openPairing,
    closePairing,
    rotateRoomKey,
    refresh,
    clearError,
  };
}
