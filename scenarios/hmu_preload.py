"""Imported by the fork server of ``iomt run --processes`` (``iomt.scenarios.processes``).

Importing this module loads torch (the neural cipher's networks run on it) and the HMU
agent and pays the trainer's first-call costs (``warm_up``) on one torch thread, so
every HMU process forked afterwards starts with all of it in pages it shares
copy-on-write.  ``gc.freeze``
then moves every object into the permanent generation: the collector in a child never
walks (and so never writes to, and copies) the pages those objects live on.

One torch thread means no OpenMP worker pool exists when the server forks.
"""

from __future__ import annotations

import gc

import torch

from iomt.fedlearn.train import warm_up
from iomt.scenarios import hmu_service  # noqa: F401  (imported to be shared)

torch.set_num_threads(1)
warm_up()
gc.collect()
gc.freeze()
