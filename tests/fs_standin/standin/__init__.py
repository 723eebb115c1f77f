"""flbed's stand-in for FederatedScope: a test double, never shipped, never a replacement.

It exists so that flbed's CI can launch, watch and collect a federated-learning run where the
real framework cannot be installed. It accepts the same command line
(``python -m federatedscope.main --cfg FILE [KEY VALUE ...]``), reads the same distributed-mode
keys, talks for real over TCP between processes, and writes the same output files with the
same line shapes as FederatedScope does. The learning is a toy: the numbers are plausible and
deterministic, never meaningful.

Deliberate differences from the real framework: JSON lines over plain TCP instead of gRPC;
blocking waits instead of busy loops. Test-only knobs come from the environment, never from the
config (the same config must also work with the real framework):

- ``FLBED_STANDIN_EXIT_AT_ROUND=N``: the process exits with status 3 when round N starts.
- ``FLBED_STANDIN_ROUND_S=S``: seconds per local training step (default 0.2).
- ``FLBED_STANDIN_MODEL_BYTES=B``: padding added to every model message (default 0), so that a
  shaped link shows in the round times.
- ``FLBED_STANDIN_TRAIN_BUSY=1``: a client computes through its training steps instead of
  sleeping, as real training does, so that its CPU use shows.
- ``FLBED_STANDIN_ALLOCATE_MB=M``: a client takes M MiB more memory when its first round
  starts (default 0), so that a memory limit can be seen to kill it.

A client joins through ``federatedscope.core.workers.client.Client.join_in``, the place where
the real client joins, so that flbed's entry point can hold the join in both.
"""

__version__ = "0.0.0"
