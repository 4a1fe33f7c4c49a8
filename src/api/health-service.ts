import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { Readiness } from "../ops/readiness.js";
import { sleep } from "../worker/backoff.js";

export interface HealthServiceDeps {
  readiness: Readiness;
  /** Fully qualified names of the services the leader serves; "" is the server as a whole. */
  services: readonly string[];
  shutdown: AbortSignal;
  /** How often a Watch looks again. */
  watchIntervalMs: number;
}

/**
 * `grpc.health.v1.Health`, for load balancers and orchestrators that speak gRPC
 * health checking: every service is SERVING exactly when the leader is ready
 * (`/readyz`), since they all need the same stores, archive and KMS.
 */
export function createHealthService(deps: HealthServiceDeps): ServiceImpl<typeof Health> {
  const known = new Set(["", ...deps.services]);
  const current = async (): Promise<Serving> => {
    if (deps.shutdown.aborted) return Serving.NOT_SERVING;
    return (await deps.readiness.report()).ready ? Serving.SERVING : Serving.NOT_SERVING;
  };
  const response = (status: Serving): HealthCheckResponse => create(HealthCheckResponseSchema, { status });
  return {
    async check(req) {
      if (!known.has(req.service)) throw new ConnectError(`service ${JSON.stringify(req.service)} is not served here`, Code.NotFound);
      return response(await current());
    },
    async list() {
      const status = await current();
      return create(HealthListResponseSchema, { statuses: Object.fromEntries([...known].map((name) => [name, response(status)])) });
    },
    async *watch(req, ctx: HandlerContext) {
      const stop = AbortSignal.any([ctx.signal, deps.shutdown]);
      if (!known.has(req.service)) {
        // The protocol keeps watching an unknown service (it may appear); here none ever does.
        yield response(Serving.SERVICE_UNKNOWN);
        await new Promise<void>((resolve) => {
          if (stop.aborted) resolve();
          else stop.addEventListener("abort", () => resolve(), { once: true });
        });
        return;
      }
      let last: Serving | undefined;
      while (!ctx.signal.aborted) {
        const status = await current();
        if (status !== last) {
          last = status;
          yield response(status);
        }
        if (deps.shutdown.aborted) return;
        await sleep(deps.watchIntervalMs, stop);
      }
    },
  };
}
