export {
  useWebRTC,
  DEFAULT_COMMAND_PREFIX,
  DEFAULT_MAX_MESSAGES,
  WEBRTC_EVENTS,
  type CommandArgsStyle,
  type UseWebRTCOptions,
  type UseWebRTCResult,
  type SendMessageOptions,
  type SetStateOptions,
  type WebRTCEventName,
  type WebRTCEventPayloads,
} from "./useWebRTC";
export {
  ConnectionStatus,
  ROLE_LABELS,
  PEER_STATE_LABELS,
  PEER_TYPE_LABELS,
  DISPLAY_CLASS_LABELS,
  FOUND_BY_LABELS,
  DISPLAY_SUMMARY_LABELS,
  NOT_NEEDED_LABEL,
  displaySummary,
  type ConnectionStatusProps,
  type DisplaySummary,
  type SummaryTone,
} from "./ConnectionStatus";
export {
  applyStateEvent,
  compareVersions,
  mergeStateSnapshot,
  selectState,
  type RetainedState,
} from "./retained";
export * as pairing from "./pairing";
export {
  tauriTransport,
  webPeerTransport,
  SIDECAR_EVENT,
  REJOINED_EVENT,
  type PeerTransport,
  type RejoinedEvent,
  type SidecarLifecycleEvent,
} from "./transport";
export { WebPeer, RpcError, type WebPeerOptions } from "./web/peer";
export { WebRTCCommandError, SidecarErrorCode, parseCommandError } from "./errors";
export {
  roomReducer,
  initialRoomState,
  type FoundBy,
  type LeaderView,
  type NetworkView,
  type PeerConnectionState,
  type RestartView,
  type RoomState,
  type RoomAction,
} from "./state";
export type * from "./generated/sidecar-types";
