"""The ``purenng bench`` harness: purenng measured against other libraries.

Modes: ``thr`` (PUSH -> PULL throughput, described here), ``lat`` (REQ/REP
round-trip latency, :mod:`purenng.bench.latency`), ``inproc`` (PUSH -> PULL
in one process, :mod:`purenng.bench.inproc`), ``import`` (the cost of
``import purenng``, :mod:`purenng.bench.importtime`), ``pipes`` (many tcp
pipes on one listener, :mod:`purenng.bench.pipes`) and ``scaling``
(throughput against the number of concurrent pipes and the message size,
with an optional PNG figure, :mod:`purenng.bench.scaling`).
:mod:`purenng.bench.suite` runs a selection of them under one header.

What the throughput mode measures, and why this way (the method of the
bench-peers baseline, kept so that the numbers can be compared with it):

* One cell is (transport, message size, API, library).  The receiver (PULL)
  listens and the sender (PUSH) dials, each in its own process, started by
  the runner.  Only ``127.0.0.1`` and ipc paths in a private temp directory
  are used.
* The sender sends messages of the cell's size for ``duration`` seconds or
  up to a per-size message cap, whichever comes first, then one 1-byte end
  marker (pynng 0.9.0 cannot receive an empty message).  It keeps its socket
  open until the runner releases it, so that closing cannot drop messages
  still in flight (libzmq over ipc does).
* The receiver's clock starts at the first message, which is not counted,
  and stops at the end marker or at ``duration`` + a grace period (the run
  is then marked ``capped``).  The rate is what the receiver got: messages/s
  and MB/s, with MB = 10**6 bytes.
* Libraries run with default options, except that the receive size limit of
  purenng and NNG is raised to 8 MiB: 1 MiB bodies sit exactly at
  purenng's default limit, and the limit does not affect speed.
* "sync" is the blocking ``send``/``recv``; "async" is ``await asend()`` /
  ``await arecv()`` (``zmq.asyncio`` for pyzmq) on a loop that owns the
  socket.  The ratio purenng/peer compares like with like.

Modules: :mod:`purenng.bench.peers` holds the per-library sender and
receiver roles and is the entry point of the throughput children;
:mod:`purenng.bench.runner` runs the pairs, bounds them and renders the
results; :mod:`purenng.bench.proc` holds what every mode needs to start,
talk to and bound its children, and :mod:`purenng.bench.report` the table
rendering (text or Markdown).  Peer libraries are imported only inside the
children.
"""

from __future__ import annotations

from .importtime import ImportConfig, run_import
from .inproc import InprocConfig, run_inproc
from .latency import LatConfig, run_lat
from .peers import API_NAMES, LIBRARIES, Library, available_libraries
from .pipes import PipesConfig, run_pipes
from .report import ModeResult
from .runner import BenchConfig, BenchResult, render_table, run_bench
from .scaling import ScalingConfig, plot_scaling, run_scaling
from .suite import DEFAULT_MODES, MODES, SuiteConfig, SuiteResult, run_suite

__all__ = [
    "API_NAMES",
    "DEFAULT_MODES",
    "LIBRARIES",
    "MODES",
    "BenchConfig",
    "BenchResult",
    "ImportConfig",
    "InprocConfig",
    "LatConfig",
    "Library",
    "ModeResult",
    "PipesConfig",
    "ScalingConfig",
    "SuiteConfig",
    "SuiteResult",
    "available_libraries",
    "plot_scaling",
    "render_table",
    "run_bench",
    "run_import",
    "run_inproc",
    "run_lat",
    "run_pipes",
    "run_scaling",
    "run_suite",
]
