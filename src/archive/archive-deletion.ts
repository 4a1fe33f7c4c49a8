import type { RunRecord } from "../store/meta-store.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { runIndexKey, runKeyBase, runObjectKey, segmentsPrefix } from "./archive-key.js";
import type { ArchiveLedger } from "./archive-ledger.js";
import type { ArchiveTier } from "./archive-tier.js";

export interface ArchiveDeletionDeps {
  backend: ArchiveBackend;
  ledger: ArchiveLedger;
  tier: ArchiveTier;
  prefix: string;
}

/**
 * Removes a run from the archive: its segments, its object and its index, then
 * the ledger's record of them. The caller holds the run's flushing meanwhile
 * (ArchiveFlusher.hold). The objects go first: a failure leaves the ledger pointing at what may remain, so
 * asking again finishes the job. Returns how many objects were removed.
 */
export async function deleteArchivedRun(deps: ArchiveDeletionDeps, run: RunRecord): Promise<number> {
  // The base was fixed when the run's archive began: a later prefix change does not move it.
  const base = (await deps.ledger.run(run.runId))?.base ?? runKeyBase(deps.prefix, run);
  const exact = new Set([runObjectKey(base), runIndexKey(base)]);
  const parts = segmentsPrefix(base);
  const keys: string[] = [];
  // Listing `{base}.` rather than guessing: keys of another run whose id extends this one share the prefix, so match exactly.
  for await (const key of deps.backend.list(`${base}.`)) if (exact.has(key) || key.startsWith(parts)) keys.push(key);
  await deps.backend.delete(keys);
  await deps.ledger.forgetRun(run.runId);
  deps.tier.forget(run.runId);
  return keys.length;
}
