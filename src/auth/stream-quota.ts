import { Code, ConnectError } from "@connectrpc/connect";
import type { LimitsConfig } from "../config/config-schema.js";
import type { Principal } from "./access-control.js";

export type StreamKind = "push" | "tail";

/** Releases a counted stream; calling it again does nothing. */
export type Release = () => void;

/**
 * Counts long-lived streams per token and in total, so one token (a leaked one,
 * a runaway fleet) cannot take every connection. A refusal is RESOURCE_EXHAUSTED
 * naming the limit and its config key.
 */
export class StreamQuota {
  private readonly perToken = new Map<string, number>();
  private tails = 0;

  constructor(private readonly limits: LimitsConfig) {}

  acquire(kind: StreamKind, principal: Principal): Release {
    const perTokenLimit = kind === "push" ? this.limits.max_push_streams_per_token : this.limits.max_tail_subscribers_per_token;
    const perTokenKey = kind === "push" ? "limits.max_push_streams_per_token" : "limits.max_tail_subscribers_per_token";
    const noun = kind === "push" ? "Push streams" : "Tail subscriptions";
    if (kind === "tail" && this.tails >= this.limits.max_tail_subscribers) {
      throw new ConnectError(
        `the leader serves ${this.limits.max_tail_subscribers} Tail subscriptions at most (limits.max_tail_subscribers); retry later`,
        Code.ResourceExhausted,
      );
    }
    const key = `${kind}\0${principal.name}`;
    const held = this.perToken.get(key) ?? 0;
    if (!principal.anonymous && held >= perTokenLimit) {
      throw new ConnectError(
        `token ${principal.name} holds ${held} ${noun}; the limit is ${perTokenLimit} (${perTokenKey})`,
        Code.ResourceExhausted,
      );
    }
    if (!principal.anonymous) this.perToken.set(key, held + 1);
    if (kind === "tail") this.tails++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (kind === "tail") this.tails--;
      if (principal.anonymous) return;
      const left = (this.perToken.get(key) ?? 1) - 1;
      if (left === 0) this.perToken.delete(key);
      else this.perToken.set(key, left);
    };
  }
}
