// What the solver tells the outside world while it works. Progress printers (plain, tty,
// json) and --explain read only these events.

/** `cancelled`: stopped because another step failed or the build was interrupted. */
export type StepState = 'waiting' | 'running' | 'cached' | 'done' | 'error' | 'cancelled';

export interface StepEvent {
  type: 'step';
  /** Graph node id. */
  id: string;
  /** 1-based number in display order (BuildKit's `#N`). */
  seq: number;
  name: string;
  state: StepState;
  /** Milliseconds since the build started. */
  at: number;
  durationMs?: number;
  error?: string;
}

export interface LogEvent {
  type: 'log';
  id: string;
  seq: number;
  stream: 'stdout' | 'stderr';
  data: string;
}

export interface ExplainEvent {
  type: 'explain';
  id: string;
  seq: number;
  name: string;
  reasons: string[];
}

export interface MessageEvent {
  type: 'message';
  level: 'info' | 'warning';
  text: string;
}

/** The last event of a successful build: what it wrote. */
export interface ResultEvent {
  type: 'result';
  manifestDigest: string;
  configDigest: string;
  /** The references it was named (and pushed, when `pushed`). */
  names: string[];
  pushed: boolean;
}

export type BuildEvent = StepEvent | LogEvent | ExplainEvent | MessageEvent | ResultEvent;

export type EventSink = (e: BuildEvent) => void;
