import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type AdminService, DeleteRunResponseSchema, RotateKeysResponseSchema } from "../../gen/joblog/v1/admin_pb.js";
import { invalidArgument } from "../errors/domain-error.js";
import { identifierProblem } from "../ids/identifiers.js";
import type { RunKeys } from "../keys/run-keys.js";
import type { RunDeletion } from "../runs/run-deletion.js";
import { type BackupHandlerDeps, handleBackup } from "./backup-handler.js";
import { toConnectError } from "./error-mapping.js";

export interface AdminServiceDeps {
  keys: RunKeys;
  /** Deletes runs (DeleteRun). */
  deletion: RunDeletion;
  /** The leader's log: operator actions are noted there. */
  log: (message: string, err?: unknown) => void;
  /** The live stores to back up. */
  backup: Omit<BackupHandlerDeps, "log">;
}

/** Operator actions on the leader itself. */
export function createAdminService(deps: AdminServiceDeps): ServiceImpl<typeof AdminService> {
  return {
    async rotateKeys() {
      try {
        const { rewrapped, unchanged } = await deps.keys.rotate();
        deps.log(`key rotation finished: ${rewrapped} data keys re-wrapped, ${unchanged} already current`);
        return create(RotateKeysResponseSchema, {
          rewrapped: BigInt(rewrapped),
          unchanged: BigInt(unchanged),
          provider: deps.keys.provider.description,
        });
      } catch (err) {
        throw toConnectError(err, deps.log);
      }
    },

    async deleteRun(req) {
      try {
        const problem = identifierProblem("run_id", req.runId);
        if (problem) throw invalidArgument(problem);
        const deleted = await deps.deletion.delete(req.runId);
        return create(DeleteRunResponseSchema, { tasks: deleted.tasks, archiveObjects: deleted.archiveObjects });
      } catch (err) {
        throw toConnectError(err, deps.log);
      }
    },
    backup: (request, context) => handleBackup({ ...deps.backup, log: deps.log }, request, context),
  };
}
