// Cluster preemption: SLURM, Kubernetes and torchrun stop a job with SIGTERM (then SIGKILL after a grace
// period); a user stops it with Ctrl-C (SIGINT). Either only sets a flag here; the training loop checks it after
// each optimizer step, saves a checkpoint and exits 0, so the job can be requeued and resume. A second SIGINT
// kills the process at once (the user really wants out).
#pragma once

namespace agora {

// Installs the SIGTERM and SIGINT handlers (idempotent).
void InstallPreemptionHandlers();
// The signal number received, or 0.
int PreemptionSignal();

}  // namespace agora
