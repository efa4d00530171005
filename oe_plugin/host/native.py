"""Build and run the native runner: a module under the Python Processor's real threading.

The runner (``native/runner.c``) embeds CPython like the plugin does: its main thread keeps the
GIL for good and a second thread calls the module **without** the GIL (see the C file and
``docs/host-threading.md``). A plain ``@numba.njit`` call inside ``process()`` therefore
hangs here as it hangs the GUI, and a watchdog turns that into :class:`NativeRunnerError`
(verdict ``"hang"``), where the pure-Python simulator notices nothing.

::

    report = run_native(NativeJob("spike_detector.py", SyntheticSource(...), blocks=696))

:func:`build_runner` compiles the runner once per (runner.c, Python) with the system C compiler
against the Python's headers and shared library (as ``shared/tools/gilhost/build.sh``) and caches
it under ``$SWEEPSORT_CACHE_DIR`` or ``~/.cache/sweepsort/native``. Only CPython 3.10 and 3.11
have the threading the plugin relies on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .blocks import as_block_policy
from .session import SessionReport
from .sources import source_from_spec

RUNNER_SOURCE = Path(__file__).with_name("native") / "runner.c"
SUPPORTED_PYTHONS = ((3, 10), (3, 11))

EXIT_VERDICTS = {0: "ok", 2: "job-error", 3: "import-failed", 4: "init-failed", 10: "hang",
                 11: "crash", 12: "call-error"}
_VERDICT_LINE = re.compile(r"sweepsort-runner: verdict=(\S+) exit=(-?\d+) call=(\S*) "
                           r"block=(-?\d+) sample=(-?\d+)")


class NativeBuildError(RuntimeError):
    """No C compiler, or the runner did not compile (the message holds the compiler output)."""


class NativeRunnerError(RuntimeError):
    """The runner exited non-zero.

    Attributes: ``verdict`` (``"hang"``, ``"crash"``, ``"call-error"``, ``"import-failed"``,
    ``"init-failed"``, ``"job-error"``, ``"signal"``, ``"timeout"``), ``exit_code``, ``call``
    (the module call it was in), ``block_index``, ``sample_number``, ``stderr``, ``stdout``.
    """

    def __init__(self, verdict, exit_code, stderr="", stdout="", call="", block_index=-1,
                 sample_number=-1):
        self.verdict, self.exit_code, self.call = verdict, exit_code, call
        self.block_index, self.sample_number = block_index, sample_number
        self.stderr, self.stdout = stderr, stdout
        tail = "\n".join(stderr.strip().splitlines()[-25:])
        where = f" in {call}() at block {block_index} (sample {sample_number})" if call else ""
        super().__init__(f"native runner: {verdict} (exit {exit_code}){where}\n{tail}")


@dataclass
class NativeReport(SessionReport):
    """A :class:`SessionReport` from the native runner, with its output."""

    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)
    runner_path: str = ""


@dataclass
class NativeJob:
    """What :func:`run_native` plays; the fields mirror :func:`~.session.run_session`.

    ``source``: a source object (``to_spec()``) or its spec dict. ``hang_timeout_s``: seconds
    without progress before the watchdog calls it a hang. ``speed``: pace blocks at this
    multiple of real time (0: as fast as possible). ``timeout_s``: overall limit on the run.
    ``gui_api``: ``"on"``/``"slow"`` (a stand-in of the GUI's HTTP API served from *this*
    process for the recording folder's parent, experiment 1 recording 1), ``"off"``, or the
    port of a stand-in of the caller's; ``folder_arg``, ``record_data``: see
    :class:`~.simulator.Host`.
    """

    module: str | Path
    source: object
    blocks: object = None
    config_path: str | Path | None = None
    recording_dir: str | Path | None = None
    record: tuple | None = None
    keep_downstream: bool = False
    hang_timeout_s: float = 10.0
    speed: float = 0.0
    timeout_s: float | None = 600.0
    python: str = sys.executable
    env: dict = field(default_factory=dict)
    gui_api: object = "on"
    folder_arg: str = "name"
    record_data: bool = False


def find_compiler() -> str | None:
    """The C compiler: ``$CC`` if set and found, else ``cc``, ``gcc`` or ``clang``; or None."""
    cc = os.environ.get("CC")
    if cc:
        parts = shlex.split(cc)
        if parts and shutil.which(parts[0]):
            return shutil.which(parts[0])
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


_INFO_CODE = (
    "import site, sys, sysconfig\n"
    "v = sysconfig.get_config_var\n"
    "INFO = {'include': sysconfig.get_paths()['include'], 'libdir': v('LIBDIR'),"
    " 'libpl': v('LIBPL'), 'ldversion': v('LDVERSION') or v('VERSION'),"
    " 'shared': bool(v('Py_ENABLE_SHARED')), 'libs': v('LIBS') or '',"
    " 'syslibs': v('SYSLIBS') or '', 'linkforshared': v('LINKFORSHARED') or '',"
    " 'version': list(sys.version_info[:3]), 'implementation': sys.implementation.name,"
    " 'base_prefix': sys.base_prefix, 'base_exec_prefix': sys.base_exec_prefix,"
    " 'site_packages': site.getsitepackages()}\n"
)


def python_info(python: str = sys.executable) -> dict:
    """Build and path facts of ``python`` (this interpreter, or another one, asked directly)."""
    if Path(python).resolve() == Path(sys.executable).resolve():
        scope: dict = {}
        exec(_INFO_CODE, scope)  # noqa: S102 - our own constant code
        return scope["INFO"]
    code = _INFO_CODE + "import json; print(json.dumps(INFO))\n"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def runner_cache_dir() -> Path:
    base = os.environ.get("SWEEPSORT_CACHE_DIR")
    if base:
        return Path(base) / "native"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sweepsort" / "native"


def _check_python(info: dict) -> None:
    version = tuple(info["version"][:2])
    if info["implementation"] != "cpython" or version not in SUPPORTED_PYTHONS:
        raise NativeBuildError(
            f"the native runner needs CPython 3.10 or 3.11 (the Python Processor's threading "
            f"works only there; 3.12+ crashes on the first call), not "
            f"{info['implementation']} {'.'.join(map(str, info['version']))}")


def build_runner(python: str = sys.executable, *, force: bool = False) -> Path:
    """Compile the runner for ``python`` (cached; atomic rename into place); return its path."""
    info = python_info(python)
    _check_python(info)
    cc = find_compiler()
    if cc is None:
        raise NativeBuildError("no C compiler found (set CC, or install cc/gcc/clang)")
    source = RUNNER_SOURCE.read_bytes()
    key = hashlib.sha256(source + json.dumps([info, cc], sort_keys=True).encode()).hexdigest()
    ver = "".join(map(str, info["version"][:2]))
    out = runner_cache_dir() / f"runner-py{ver}-{key[:16]}"
    if out.exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    libdir = info["libdir"] if info["shared"] else (info["libpl"] or info["libdir"])
    cmd = [cc, "-O2", "-Wall", "-o", "OUT", str(RUNNER_SOURCE), f"-I{info['include']}",
           f"-L{libdir}", f"-lpython{info['ldversion']}", "-lpthread",
           f"-Wl,-rpath,{info['libdir']}"]
    if not info["shared"]:
        cmd += shlex.split(info["linkforshared"])
    cmd += shlex.split(info["libs"]) + shlex.split(info["syslibs"])
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", dir=out.parent)
    os.close(fd)
    cmd[cmd.index("OUT")] = tmp
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise NativeBuildError(f"compiling the runner failed:\n{shlex.join(cmd)}\n"
                                   f"{done.stdout}{done.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def project_root() -> Path:
    """The folder holding the ``oe_plugin`` package (the checkout, or site-packages)."""
    return Path(__file__).resolve().parents[2]


def runner_env(info: dict, extra: dict | None = None) -> dict:
    """Environment for the runner: the embedded interpreter must find the stdlib (PYTHONHOME),
    this package and the venv's site-packages (PYTHONPATH: a venv's LIBDIR is the base
    install's, so nothing else would point it there)."""
    env = dict(os.environ)
    paths = [str(project_root())] + list(info["site_packages"])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    home = info["base_prefix"]
    if info["base_exec_prefix"] != home:
        home = f"{home}{os.pathsep}{info['base_exec_prefix']}"
    env["PYTHONHOME"] = home
    env["PYTHONUNBUFFERED"] = "1"     # the runner may _exit() without flushing
    env.update(extra or {})
    return env


def _parse_failure(code: int, stdout: str, stderr: str) -> NativeRunnerError:
    found = list(_VERDICT_LINE.finditer(stderr))
    m = found[-1] if found else None
    if code < 0:
        return NativeRunnerError("signal", code, stderr, stdout)
    if m is not None:
        call = m.group(3) if m.group(1) in ("hang", "crash", "call-error") else ""
        return NativeRunnerError(m.group(1), code, stderr, stdout, call, int(m.group(4)),
                                 int(m.group(5)))
    return NativeRunnerError(EXIT_VERDICTS.get(code, "failed"), code, stderr, stdout)


@contextmanager
def _serve_api(job: NativeJob):
    """The port the runner's modules ask (a stand-in served here for ``"on"``/``"slow"``)."""
    from .gui_api import GuiApiStandIn
    from .simulator import SLOW_API_DELAY_S

    api = job.gui_api
    if isinstance(api, GuiApiStandIn):
        yield api.start().port
        return
    if api not in ("on", "slow"):
        yield api if isinstance(api, int) else "off"
        return
    parent = Path(job.recording_dir).expanduser().absolute().parent if job.recording_dir \
        else Path.cwd()
    stand_in = GuiApiStandIn(parent, delay_s=SLOW_API_DELAY_S if api == "slow" else 0.0)
    stand_in.set_recording(parent, 1, 1)
    with stand_in:
        yield stand_in.port


def run_native(job: NativeJob) -> NativeReport:
    """Play ``job`` in the native runner (built on demand); raise :class:`NativeRunnerError`
    with the verdict and the runner's stderr when it does not finish cleanly."""
    runner = build_runner(job.python)
    info = python_info(job.python)
    source = job.source
    spec = source if isinstance(source, dict) else source.to_spec()
    if job.blocks is None and not hasattr(source, "sample_rate_hz"):
        source = source_from_spec(spec)          # the GUI's block size needs the rate
    policy = as_block_policy(job.blocks, getattr(source, "sample_rate_hz", 0.0))
    with tempfile.TemporaryDirectory(prefix="sweepsort-native-") as tmp, \
            _serve_api(job) as api_port:
        report_path = Path(tmp) / "report.npz"
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps({
            "module": str(Path(job.module).expanduser().resolve()),
            "source": spec, "blocks": policy.to_spec(),
            "config_path": None if job.config_path is None
            else str(Path(job.config_path).expanduser().resolve()),
            "recording_dir": None if job.recording_dir is None else str(job.recording_dir),
            "record": None if job.record is None else list(job.record),
            "keep_downstream": bool(job.keep_downstream), "report_path": str(report_path),
            "site_dirs": list(info["site_packages"]), "gui_api": api_port,
            "folder_arg": job.folder_arg, "record_data": bool(job.record_data)}))
        cmd = [str(runner), str(job_file), "--hang-timeout", str(float(job.hang_timeout_s)),
               "--speed", str(float(job.speed))]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=job.timeout_s,
                                  env=runner_env(info, job.env))
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            errs = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
            raise NativeRunnerError("timeout", -1, errs, out) from err
        if done.returncode != 0:
            raise _parse_failure(done.returncode, done.stdout, done.stderr)
        return NativeReport.load_npz(report_path, stdout=done.stdout, stderr=done.stderr,
                                     runner_path=str(runner))
