// Types for tessera-client: `client.fdc3` is the standard FDC3 2.2 DesktopAgent.
import type { DesktopAgent } from "@finos/fdc3";

export declare const PROTOCOL: number;

export declare class TesseraError extends Error {}

/** What a delivered message came with. */
export interface MessageMeta {
  topic: string;
  seq: number;
  /** When the broker accepted it, ms since the Unix epoch. */
  timestamp: number;
  /** The sending connection's broker id. */
  sender: number;
  /** The W3C trace it travels in, if it was sent in one. */
  traceparent?: string;
}

export interface SubscribeOptions {
  /** Messages the shell queues for this subscription (1 to 65,536). */
  capacity?: number;
  policy?: "drop_oldest" | "backpressure" | "dead_letter";
  /** Messages from history first, per topic (0: live only; 1: the last value). */
  replay?: number;
}

export declare class Client {
  /** The app this connection is (from the manifest). */
  readonly app: string;
  readonly instance: number;
  /** The state this instance last saved (`setState`), kept across restarts and in workspaces. */
  readonly state: unknown;
  /** The standard FDC3 Desktop Agent: existing FDC3 code runs unchanged against it. */
  readonly fdc3: DesktopAgent;
  /** Settles once the agent has said which user channel this instance is on. */
  readonly fdc3Ready: Promise<void>;
  publish(topic: string, data: unknown, options?: { durable?: boolean; ttlMs?: number; traceparent?: string }): void;
  subscribe(pattern: string, handler: (data: any, meta: MessageMeta) => void, options?: SubscribeOptions): { unsubscribe(): void };
  send(app: string, topic: string, data: unknown): void;
  onMessage(handler: (data: any, meta: { topic: string; from: string | null; seq: number }) => void): void;
  onError(handler: (error: TesseraError) => void): void;
  request(name: string, action: string, data?: unknown, options?: { timeoutMs?: number }): Promise<any>;
  serve(name: string, handlers: Record<string, (data: any, meta: { from: string | null }) => unknown>): void;
  setState(state: unknown): void;
  close(): void;
  closed(): Promise<string>;
}

export declare function connect(path: string, token: string, options?: { timeoutMs?: number }): Promise<Client>;
export declare function fromEnv(): Promise<Client>;
/** Connects an app started outside the shell with its IT-signed credential and its secret key (64 hex digits). */
export declare function connectWithCredential(
  path: string,
  credential: { app: string; [field: string]: unknown },
  privateKeyHex: string,
  options?: { timeoutMs?: number }
): Promise<Client>;
/**
 * `connectWithCredential` over the endpoint's WebSocket (`ws://127.0.0.1:PORT`, where the admin
 * policy opens one); needs the `ws` package.
 */
export declare function connectWebSocketWithCredential(
  url: string,
  credential: { app: string; [field: string]: unknown },
  privateKeyHex: string,
  options?: { timeoutMs?: number }
): Promise<Client>;
