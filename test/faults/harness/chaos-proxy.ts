import net from "node:net";

/**
 * A loopback TCP proxy that misbehaves the way networks do: it slices writes into
 * small pieces, stalls connections, cuts them (FIN) and resets them (RST). Faults
 * are started by `strike()`; between strikes traffic flows, sliced or not.
 */
export interface ChaosProxy {
  url: string;
  /** One random fault on one random open connection; returns what it did. */
  strike(): "cut" | "reset" | "stall" | "none";
  /** Share of chunks written in slices (0..1). */
  sliceShare: number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  stalled: boolean;
}

export async function startChaosProxy(targetPort: number): Promise<ChaosProxy> {
  const pairs = new Set<Pair>();
  const state = { sliceShare: 0.2 };

  // Writes a chunk, sometimes in 2-8 slices a turn of the event loop apart, keeping order.
  const forward = (from: net.Socket, to: net.Socket) => {
    let queue = Promise.resolve();
    from.on("data", (chunk: Buffer) => {
      if (Math.random() >= state.sliceShare) {
        queue = queue.then(() => {
          if (!to.destroyed) to.write(chunk);
        });
        return;
      }
      queue = queue.then(async () => {
        const cuts = [
          0,
          ...Array.from({ length: 1 + Math.floor(Math.random() * 7) }, () => Math.floor(Math.random() * chunk.length)),
          chunk.length,
        ];
        cuts.sort((a, b) => a - b);
        for (let i = 1; i < cuts.length; i++) {
          if (to.destroyed) return;
          to.write(chunk.subarray(cuts[i - 1], cuts[i]));
          await new Promise((resolve) => setImmediate(resolve));
        }
      });
    });
  };

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair: Pair = { client, upstream, stalled: false };
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    get sliceShare() {
      return state.sliceShare;
    },
    set sliceShare(value: number) {
      state.sliceShare = value;
    },
    strike() {
      const open = [...pairs].filter((p) => !p.stalled);
      const pair = open[Math.floor(Math.random() * open.length)];
      if (!pair) return "none";
      const roll = Math.random();
      if (roll < 0.35) {
        pair.client.end();
        pair.upstream.end();
        pair.client.destroySoon();
        pair.upstream.destroySoon();
        return "cut";
      }
      if (roll < 0.7) {
        pair.client.resetAndDestroy();
        pair.upstream.resetAndDestroy();
        return "reset";
      }
      pair.stalled = true;
      pair.client.pause();
      pair.upstream.pause();
      setTimeout(
        () => {
          pair.stalled = false;
          if (!pair.client.destroyed) pair.client.resume();
          if (!pair.upstream.destroyed) pair.upstream.resume();
        },
        200 + Math.random() * 1300,
      );
      return "stall";
    },
    close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
