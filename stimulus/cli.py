"""``sweepstim``: run, validate and tune visual-stimulus experiments.

    sweepstim run SCRIPT [--seed N] [--screen N] [--ttl SPEC] [--oe-host HOST] [--dry-run]
    sweepstim validate SCRIPT
    sweepstim gamma-fit LUMINANCE.csv
    sweepstim manual bar|grating

Exit status: 0 done, 1 cancelled (Esc), 2 refused before starting (script, config, TTL
backend, Open Ephys, refresh rate), 3 failed while running (the session file says where).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
import traceback
from pathlib import Path

from oe_plugin.config import SettingsError

EXIT_OK, EXIT_CANCELLED, EXIT_REFUSED, EXIT_FAILED = 0, 1, 2, 3


def _plain(text: str) -> str:
    """Docstring text as plain help text: RST roles and inline literals become bare words."""
    text = re.sub(r":[a-z]+:`~?([^`]*)`", r"\1", text)
    return " ".join(text.replace("``", "").split())


def _err(msg: str) -> None:
    print(f"sweepstim: {msg}", file=sys.stderr)


def _rig(args):
    from stimulus.rig import load_rig

    rig = load_rig(args.config)
    if getattr(args, "screen", None) is not None:
        rig = rig.with_screen(screen_index=args.screen)
    return rig


def cmd_validate(args) -> int:
    from stimulus.runner import format_sweep_table, prepare, rig_line, summary
    from stimulus.script import ScriptError

    try:
        rig = _rig(args)
        print(rig_line(rig))
        p = prepare(args.script, rig, seed=args.seed if args.seed is not None else 0)
    except (ScriptError, SettingsError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    print(summary(p))
    if args.table:
        print(format_sweep_table(p))
    print("OK")
    return EXIT_OK


def _progress_printer(stream=sys.stderr):
    def show(pr) -> None:
        m, s = divmod(int(pr.sec_left), 60)
        h, m = divmod(m, 60)
        state = " PAUSED (space resumes)" if pr.paused else ""
        stream.write(f"\r sweeps {pr.sweeps_done}/{pr.sweeps_total}  left {h}:{m:02d}:{s:02d}"
                     f"  dropped {pr.n_dropped}{state}   ")
        stream.flush()
    return show


class _Refused(Exception):
    """A step of ``sweepstim run`` refused to start the run (exit status 2); the message is
    printed as it is (``plain``) or after ``sweepstim: ``."""

    def __init__(self, message: str, plain: bool = False):
        super().__init__(message)
        self.plain = plain


def _prepare_run(args):
    """The rig and the prepared experiment (printed: rig line, summary, sweep table)."""
    from stimulus.runner import format_sweep_table, prepare, rig_line, summary
    from stimulus.script import ScriptError

    try:
        rig = _rig(args)
        if args.window:
            rig = rig.with_screen(fullscreen=False)
        print(rig_line(rig))
        p = prepare(args.script, rig, seed=args.seed)
    except (ScriptError, SettingsError) as exc:
        raise _Refused(str(exc), plain=True) from None
    print(summary(p))
    if args.table:
        print(format_sweep_table(p))
    return rig, p


def _open_backend(args, p, stack: contextlib.ExitStack):
    """The TTL backend, opened; ``stack`` closes it."""
    from stimulus.ttl.base import TTLError, make_backend

    try:
        backend = make_backend(args.ttl, p.protocol)
        backend.open()
    except (TTLError, ValueError) as exc:
        raise _Refused(f"TTL backend: {exc}") from None
    stack.callback(backend.close)
    return backend


def _connect_open_ephys(args):
    """The Open Ephys GUI's control (``None`` without ``--oe-host``), its status printed."""
    if not args.oe_host:
        return None
    from stimulus.oe_control import OEControl, OEControlError

    try:
        oe = OEControl(args.oe_host, args.oe_port)
        print(f"Open Ephys GUI at {args.oe_host}:{args.oe_port}: {oe.status()}")
    except OEControlError as exc:
        raise _Refused(str(exc)) from None
    return oe


def _open_display(args, rig, stack: contextlib.ExitStack):
    """The window (``stack`` closes it) and the process priority it runs at."""
    from stimulus.display import Display, use_headless

    if args.offscreen:
        use_headless()
    priority = "not changed (offscreen)"
    if not args.offscreen and rig.timing.priority:
        from stimulus.priority import raise_priority

        priority = raise_priority()
        print(f"process priority: {priority}")
    scr = rig.screen
    display = Display(scr.width_px, scr.height_px, fullscreen=scr.fullscreen and not args.window,
                      screen_index=scr.screen_index, gamma=scr.gamma,
                      photodiode_px=rig.timing.photodiode_size_px if rig.timing.photodiode else 0,
                      photodiode_corner=rig.timing.photodiode_corner)
    stack.callback(display.close)
    return display, priority


def _refresh_clock(args, rig, p, display):
    """(clock, measured refresh rate in Hz or ``None`` offscreen); refuses a display that does
    not wait for the vertical blank, or one off the configured rate (unless allowed)."""
    from stimulus.timing import FakeClock, measure_refresh

    scr = rig.screen
    if args.offscreen:
        return FakeClock(1.0 / scr.refresh_hz, t0=0.0), None
    display.clear(p.default_bg)
    n = max(20, int(rig.timing.measure_s * scr.refresh_hz))
    measured, _ = measure_refresh(lambda: (display.clear(p.default_bg), display.flip()),
                                  time.perf_counter, n)
    off = abs(measured / scr.refresh_hz - 1.0)
    print(f"refresh rate: measured {measured:.3f} Hz, configured {scr.refresh_hz:g} Hz")
    if not 20.0 <= measured <= 1000.0:
        raise _Refused(f"the display flips at {measured:.1f} Hz: it does not wait for the "
                       f"vertical blank (vsync off in the driver, or a virtual display); "
                       f"sweepstim cannot time frames on it (use --offscreen to simulate)")
    if off > rig.timing.refresh_tolerance:
        msg = (f"the display refreshes at {measured:.3f} Hz, not the configured "
               f"{scr.refresh_hz:g} Hz (off by {100 * off:.2f} %)")
        if not args.allow_refresh_mismatch:
            raise _Refused(msg + ": fix the monitor mode or [screen] refresh_hz, or pass "
                                 "--allow-refresh-mismatch to run at the measured rate")
        _err("warning: " + msg + "; durations use the measured rate")
    return time.perf_counter, measured


def _fit_to_display(args, rig, p, display, measured):
    """The experiment prepared again for the measured rate (when allowed) or the window's real
    size, else ``p`` itself."""
    from stimulus.runner import prepare
    from stimulus.script import ScriptError

    scr = rig.screen
    size = (display.width_px, display.height_px)
    if not (measured and args.allow_refresh_mismatch or size != (scr.width_px, scr.height_px)):
        return p
    if size != (scr.width_px, scr.height_px):
        _err(f"warning: the window is {size[0]}x{size[1]} px, the config says "
             f"{scr.width_px}x{scr.height_px}: geometry uses the window's size")
    try:
        return prepare(p.loaded, rig, seed=p.seed,
                       refresh_hz=measured if args.allow_refresh_mismatch else None,
                       size_px=size)
    except (ScriptError, SettingsError) as exc:
        raise _Refused(str(exc), plain=True) from None


def _start_open_ephys_recording(args, oe, p, sid) -> None:
    """Recording starts before the first refresh; a refusal stops it again."""
    from stimulus.oe_control import OEControlError, identity_message
    from stimulus.record import build_meta

    try:
        oe.start_recording()
        oe.message(identity_message(build_meta(p, sid, status="running")))
        if args.oe_post_script:
            oe.message(f"sweepstim script {Path(p.loaded.path).name}:\n{p.loaded.text}")
    except OEControlError as exc:
        try:
            oe.stop_recording()
        except OEControlError:
            pass
        raise _Refused(str(exc)) from None


def _run_and_record(args, runner, oe, sid: str):
    """Run the session; always end the Open Ephys recording. Returns (status, error, result or
    ``None``, exit code)."""
    status, error, result, code = "failed", None, None, EXIT_FAILED
    try:
        result = runner.run()
        status = result.status
        code = EXIT_OK if status == "completed" else EXIT_CANCELLED
    except KeyboardInterrupt:
        status, error, code = "cancelled", "KeyboardInterrupt", EXIT_CANCELLED
    except Exception as exc:  # noqa: BLE001 - record any failure in the session file
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if not args.quiet:
            sys.stderr.write("\n")
        if oe is not None:
            try:
                oe.message(f"sweepstim session={sid} end status={status}")
                oe.stop_recording()
            except Exception as exc:  # noqa: BLE001
                _err(f"Open Ephys: {exc}")
    return status, error, result, code


def cmd_run(args) -> int:
    """Prepare, refuse early (TTL backend, Open Ephys, display), run, write the session file.

    Everything opened (TTL backend, window) is closed on every way out, through one
    ``ExitStack``; a session that started always gets its session file."""
    from stimulus.record import build_meta, default_session_path, session_id
    from stimulus.runner import Runner, RunResult, frame_arrays
    from stimulus.session_file import write_session
    from stimulus.ttl.encoding import session_code_for

    if args.table and not args.dry_run:
        _err("--table needs --dry-run (a real run's sweeps are in its session file)")
        return EXIT_REFUSED
    with contextlib.ExitStack() as stack:
        try:
            rig, p = _prepare_run(args)
            sid = session_id(p)
            out_path = default_session_path(p, sid, args.out)
            if args.dry_run:
                if args.out:
                    path = write_session(out_path, build_meta(p, sid, status="dry-run"),
                                         frame_arrays(p, {}))
                    print(f"session file (dry run): {path}")
                return EXIT_OK
            # everything that can refuse, before the window opens; then the display
            backend = _open_backend(args, p, stack)
            oe = _connect_open_ephys(args)
            display, priority = _open_display(args, rig, stack)
            clock, measured = _refresh_clock(args, rig, p, display)
            p = _fit_to_display(args, rig, p, display, measured)
            display_info = {"width_px": display.width_px, "height_px": display.height_px,
                            "headless": display.headless,
                            "refresh_hz_configured": rig.screen.refresh_hz,
                            "refresh_hz_measured": measured, "priority": priority,
                            "simulated_vsync": bool(args.offscreen)}
            runner = Runner(p, display, backend, clock,
                            progress=None if args.quiet else _progress_printer(),
                            session_code=session_code_for(p.protocol, sid))
            if oe is not None:  # a refusal here shows nothing on the screen
                _start_open_ephys_recording(args, oe, p, sid)
        except _Refused as exc:
            if exc.plain:
                print(str(exc), file=sys.stderr)
            else:
                _err(str(exc))
            return EXIT_REFUSED
        status, error, result, code = _run_and_record(args, runner, oe, sid)
        stack.close()  # the TTL backend and the window, before the session file is written
        if result is None:
            result = RunResult(status, runner.log.arrays(), runner.timer.n_dropped,
                               runner.timer.n_missed, list(runner.ttl_errors), error)
        meta = build_meta(p, sid, status=status, result=result, display=display_info,
                          ttl_backend=backend.describe(), error=error,
                          open_ephys=oe.describe() if oe else None)
        path = write_session(out_path, meta, frame_arrays(p, result.log))
        if oe is not None:
            from stimulus.oe_recording import place_session_file

            print(place_session_file(oe, path, meta, frame_arrays(p, result.log)))
    log = result.log
    n = log["flip_time_s"].size
    took = float(log["flip_time_s"][-1] - log["flip_time_s"][0]) if n > 1 else 0.0
    print(f"{status}: {n} refreshes in {took:.2f} s (planned {p.plan.duration_s:.2f} s), "
          f"{result.n_dropped} dropped frame(s), {len(result.ttl_errors)} TTL error(s)")
    print(f"session file: {path}")
    return code


def cmd_gamma_fit(args) -> int:
    from stimulus.gamma import fit_gamma, read_luminance_csv
    from stimulus.rig import DEFAULT_CONFIG, find_config, update_section

    try:
        v, lum = read_luminance_csv(args.csv)
        fit = fit_gamma(v, lum)
    except (OSError, ValueError) as exc:
        _err(str(exc))
        return EXIT_REFUSED
    print(f"gamma {fit.gamma:.3f} (black {fit.lum_min:.3g} cd/m2, white {fit.lum_max:.3g} "
          f"cd/m2, rms error {fit.rms_error:.3g} cd/m2, {fit.n_points} points)")
    if args.no_write:
        return EXIT_OK
    path = find_config(args.config) or DEFAULT_CONFIG.expanduser()
    update_section(path, "screen", {"gamma": round(fit.gamma, 4)})
    print(f"wrote [screen] gamma = {round(fit.gamma, 4)} to {path}")
    return EXIT_OK


def cmd_manual(args) -> int:
    from stimulus.manual import run_manual
    from stimulus.rig import DEFAULT_CONFIG, find_config

    try:
        rig = _rig(args)
    except SettingsError as exc:
        _err(str(exc))
        return EXIT_REFUSED
    save_to = find_config(args.config) or DEFAULT_CONFIG.expanduser()
    return run_manual(args.kind, rig, save_to, window=args.window, offscreen=args.offscreen)


def build_parser() -> argparse.ArgumentParser:
    paragraphs = __doc__.split("\n\n")
    ap = argparse.ArgumentParser(prog="sweepstim", description=_plain(paragraphs[0]),
                                 epilog=_plain(paragraphs[-1]))
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--config", help="rig config TOML (default: $SWEEPSTIM_CONFIG or "
                                        "~/.config/sweepstim/rig.toml)")

    r = sub.add_parser("run", help="run an experiment script")
    r.add_argument("script")
    common(r)
    r.add_argument("--seed", type=int, help="random seed (default: the script's, else new)")
    r.add_argument("--screen", type=int, help="monitor index")
    r.add_argument("--ttl", default="none",
                   help="TTL output: none, virtual, file:PATH, serial:PORT[@BAUD], "
                        "nidaq:DEV/portN[@RATE] (default none)")
    r.add_argument("--oe-host", help="Open Ephys GUI to start/stop recording on")
    r.add_argument("--oe-port", type=int, default=37497)
    r.add_argument("--oe-post-script", action="store_true",
                   help="also post the script text to the GUI's message log")
    r.add_argument("--out", help="session file or directory (default: current directory)")
    r.add_argument("--dry-run", action="store_true",
                   help="validate and print the table summary and duration; render nothing")
    r.add_argument("--table", action="store_true",
                   help="with --dry-run: also print the sweep table, one row per presented "
                        "sweep (index, varied parameter values, refreshes, seconds, start)")
    r.add_argument("--allow-refresh-mismatch", action="store_true",
                   help="warn instead of refusing when the measured refresh rate differs")
    r.add_argument("--window", action="store_true", help="a window instead of full screen")
    r.add_argument("--offscreen", action="store_true",
                   help="render offscreen with simulated vsync timing (tests, demos)")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a script without opening a window")
    v.add_argument("script")
    common(v)
    v.add_argument("--seed", type=int)
    v.add_argument("--table", action="store_true",
                   help="also print the sweep table, one row per presented sweep")
    v.set_defaults(func=cmd_validate)

    g = sub.add_parser("gamma-fit", help="fit the monitor gamma from photometer readings")
    g.add_argument("csv", help="CSV of (drive value 0..1 or 0..255, luminance cd/m2)")
    common(g)
    g.add_argument("--no-write", action="store_true", help="print the fit only")
    g.set_defaults(func=cmd_gamma_fit)

    m = sub.add_parser("manual", help="interactive bar or grating (receptive-field mapping)")
    m.add_argument("kind", choices=("bar", "grating"))
    common(m)
    m.add_argument("--screen", type=int)
    m.add_argument("--window", action="store_true")
    m.add_argument("--offscreen", action="store_true", help=argparse.SUPPRESS)
    m.set_defaults(func=cmd_manual)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
