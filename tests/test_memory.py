"""market.core.memory: a round's freed arrays stay in the process (no page faults per round).

Each case runs in its own interpreter: the allocator's thresholds are process-wide.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# rounds of the 3,553 x 888 bench market's kind, smaller: the minor page faults of the
# last three (after a warm-up) with glibc's initial thresholds or with retain_freed_memory()
SCRIPT = """
import resource, sys
# faults counted in 4 KiB pages: numpy asks the kernel for transparent huge pages for large
# arrays, and whether it gets them depends on the machine's free memory at that moment
from numpy._core.multiarray import _set_madvise_hugepage
_set_madvise_hugepage(False)
if sys.argv[1] == "retain":
    from market.core.memory import retain_freed_memory
    assert retain_freed_memory()
else:
    # glibc's initial thresholds, pinned: left alone, glibc raises them after the first freed
    # mapping by an amount that varies between runs (clean-clone CI runs counted 68-74 faults
    # where 700-2,000 are usual), and setting them turns that adjustment off
    from market.core.memory import set_thresholds
    assert set_thresholds(128 * 1024, 128 * 1024)
from market.studies.bench import bench
import market.core.model as model_module

faults = []
step = model_module.MarketModel.step
def counted(self):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step(self)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
model_module.MarketModel.step = counted
# no workspace: the candidate tables are allocated anew every round (market.core.workspace keeps
# them), so that the allocator's thresholds alone decide whether a round's arrays are faulted back in
init = model_module.MarketModel.__init__
def without_workspace(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.workspace = None
model_module.MarketModel.__init__ = without_workspace
bench(2500, 600, "mohaf", rounds=6)
print(sum(faults[-3:]))
"""


def _faults(mode: str) -> int:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_rounds_reuse_freed_memory_instead_of_faulting_it_back():
    _faults("default")  # a first run compiles whatever numba's cache lacks (not measured)
    default, retained = _faults("default"), _faults("retain")
    assert default > 300, default  # glibc's initial thresholds hand a round's arrays back and fault them in again
    assert retained < default / 10, (retained, default)


def test_retain_freed_memory_is_set_once_per_process():
    from market.core.memory import retain_freed_memory

    assert retain_freed_memory() is retain_freed_memory()
    assert retain_freed_memory() == (platform.libc_ver()[0] == "glibc")
