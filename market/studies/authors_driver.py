"""Run the authors' MOHAF (PyPI ``mohaf``) on an instance that ``market bench --authors`` wrote.

This file is run as a script by the interpreter of a separate venv that has the authors'
package (``make bench-authors`` creates ``.venv-authors`` with ``mohaf==0.2.0``); the
project never imports it, and nothing here imports the project. It only builds the
authors' own objects and calls their code, unmodified::

    PYTHON authors_driver.py --probe           # the versions, or exit 3 if mohaf is missing
    PYTHON authors_driver.py INSTANCE.json     # one MOHAF auction, timed

The instance is the JSON format of the authors' own command line (``mohaf --input``): a
``resources`` list (``id, type, capacity, cost_per_unit, location, availability,
reliability, energy_efficiency, owner_id``) and a ``requests`` list (``id, requester_id,
resource_type, amount, max_price, deadline, priority, location, qos_requirements``);
other keys of a record are carried along and not given to their classes. A run builds
:class:`mohaf.core.Resource` and :class:`mohaf.core.Request` objects from it, runs a
fresh ``MOHAFAuction()`` (their default weights) once, and prints one JSON line:
``execution_time_s`` (the ``execution_time`` their auction reports), ``wall_s`` (wall
clock around their ``run_auction`` call), ``cpu_s`` (this process's CPU time in that call,
every thread's: a cross-check of the clock on a busy machine), ``build_s`` (building their
objects), ``requests``, ``resources``, ``allocated``, ``log`` (what their auction printed),
``peak_rss_mb`` and ``versions``. Their prints go to ``log``, so stdout is that line alone.

It keeps to Python 3.8 (the package's oldest) and the standard library.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: exit code when mohaf (or one of its dependencies) cannot be imported
NOT_IMPORTABLE = 3


def _isolate() -> None:
    """Drop this file's folder from ``sys.path``: the project's studies are not modules there."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]


def versions() -> dict:
    """The versions of mohaf, Python and the libraries their auction uses (None: absent)."""
    from importlib import metadata

    import mohaf

    out = {"mohaf": getattr(mohaf, "__version__", None), "python": platform.python_version()}
    for dist in ("numpy", "scipy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def build(instance: dict, core: object) -> tuple[list, list]:
    """The authors' ``Resource`` and ``Request`` objects of an instance (their field types).

    Args:
        instance: the instance (module docstring).
        core: the ``mohaf.core`` module.

    Returns:
        ``(resources, requests)``, in the instance's order.
    """
    kind = core.ResourceType
    resources = [
        core.Resource(
            id=str(d["id"]),
            type=kind(d["type"]),
            capacity=float(d["capacity"]),
            cost_per_unit=float(d["cost_per_unit"]),
            location=(float(d["location"][0]), float(d["location"][1])),
            availability=float(d["availability"]),
            reliability=float(d["reliability"]),
            energy_efficiency=float(d["energy_efficiency"]),
            owner_id=str(d["owner_id"]),
        )
        for d in instance["resources"]
    ]
    requests = [
        core.Request(
            id=str(d["id"]),
            requester_id=str(d["requester_id"]),
            resource_type=kind(d["resource_type"]),
            amount=float(d["amount"]),
            max_price=float(d["max_price"]),
            deadline=float(d["deadline"]),
            priority=int(d["priority"]),
            location=(float(d["location"][0]), float(d["location"][1])),
            qos_requirements={k: float(v) for k, v in d.get("qos_requirements", {}).items()},
        )
        for d in instance["requests"]
    ]
    return resources, requests


def run(path: str) -> dict:
    """Build the instance at ``path`` and run the authors' MOHAF auction on it once."""
    from mohaf import core
    from mohaf.auction_mechanisms import MOHAFAuction

    with open(path, encoding="utf-8") as f:
        instance = json.load(f)
    t0 = time.perf_counter()
    resources, requests = build(instance, core)
    build_s = time.perf_counter() - t0
    auction = MOHAFAuction()
    log = io.StringIO()
    t1, c1 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(log):
        result = auction.run_auction(resources, requests)
    wall_s, cpu_s = time.perf_counter() - t1, time.process_time() - c1
    return {
        "execution_time_s": float(result["execution_time"]),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "build_s": build_s,
        "requests": len(requests),
        "resources": len(resources),
        "allocated": len(result["allocations"]),
        "log": log.getvalue().splitlines(),
        "peak_rss_mb": _peak_rss_mb(),
        "versions": versions(),
    }


def main(argv: list[str]) -> int:
    """``--probe`` or ``INSTANCE.json`` (module docstring); exit 3 if mohaf is not importable."""
    _isolate()
    if len(argv) != 1:
        print("usage: authors_driver.py --probe | INSTANCE.json", file=sys.stderr)
        return 2
    try:
        import mohaf.auction_mechanisms
        import mohaf.core  # noqa: F401
    except Exception as exc:  # ImportError, or a dependency that fails to load
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return NOT_IMPORTABLE
    out = {"versions": versions()} if argv[0] == "--probe" else run(argv[0])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
