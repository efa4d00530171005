"""The data model: Recording -> sorts -> neurons, and Recording -> experiments.

::

    rec = Recording("/data/ptc22/tr1/2024-05-01_12-00-00")
    rec                      # <Recording ... 2 sorts, 3 experiments>
    rec.sort                 # the default sort (newest offline sort, else the online spikes)
    n = rec.n[3]             # neuron 3 of the default sort (also rec.n3)
    e = rec.e[0]             # the first experiment (also rec.e0)
    n.tune(e, "ori_deg").plot()
    rec.sort.correlograms(bin_ms=1, window_ms=50).plot()

Everything is lazy: building a Recording only lists folders; a sort's spikes are read when its
neurons are first asked for, an experiment's refreshes when first needed, and every analysis
result is cached on its owner by settings (neuropy's pattern), so asking twice is free.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from offline.analysis import adapters
from offline.analysis.correlograms import compute_autocorrelograms, compute_correlograms
from offline.analysis.isi import compute_isi
from offline.analysis.ising import fit_ising
from offline.analysis.population import compute_codes, compute_pairwise_correlations
from offline.analysis.presentations import Presentations, build_presentations
from offline.analysis.psth import compute_psth
from offline.analysis.rates import compute_rate
from offline.analysis.sta import compute_sta
from offline.analysis.stimframes import STA_KINDS, StimulusMovie, build_movie
from offline.analysis.tuning import compute_tuning


def _cached(method):
    """Cache a result on the instance, keyed by the call's settings."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        key = (method.__name__, tuple(a if isinstance(a, (str, int, float, tuple)) else id(a)
                                      for a in args), repr(sorted(kwargs.items())))
        cache = self.__dict__.setdefault("_results", {})
        if key not in cache:
            cache[key] = method(self, *args, **kwargs)
        return cache[key]
    return wrapper


class SpikeTrain:
    """``times_s``, ``n_spikes`` and ``span_rate_hz`` of anything with ``spike_samples`` (int64)
    and ``sample_rate_hz`` (a :class:`Neuron`, a report worker's unit input)."""

    spike_samples: np.ndarray
    sample_rate_hz: float

    @property
    def times_s(self) -> np.ndarray:
        return self.spike_samples / self.sample_rate_hz

    @property
    def n_spikes(self) -> int:
        return int(self.spike_samples.size)

    @property
    def span_rate_hz(self) -> float:
        """Spikes over the span from the first to the last spike (Hz) — not the sort's
        ``firing_rate_hz`` metric, which divides by the whole recording's duration."""
        t = self.times_s
        return float(t.size / (t[-1] - t[0])) if t.size > 1 else 0.0


class Neuron(SpikeTrain):
    """One unit of a sort.

    Attributes: ``id``, ``sort``, ``spike_samples`` (int64, absolute sample numbers),
    ``times_s`` (float64, s since acquisition start), ``template_uv`` (float32 (K, W) or None),
    ``template_channels`` (int (K,) or None), ``channel`` (peak channel), ``position_um``,
    ``metrics`` (dict).
    """

    def __init__(self, sort: Sort, unit_id, data: adapters.SortData):
        self.sort = sort
        self.id = unit_id
        self.spike_samples = data.spike_samples[unit_id]
        self.sample_rate_hz = data.sample_rate_hz
        self.template_uv = data.templates_uv.get(unit_id)
        self.template_channels = data.template_channels.get(unit_id)
        self.channel = data.peak_channel.get(unit_id, -1)
        pos = data.channel_positions_um
        self.position_um = (tuple(pos[self.channel]) if pos is not None and
                            0 <= self.channel < len(pos) else None)
        self.metrics = data.metrics.get(unit_id, {})

    @functools.cached_property
    def times_s(self) -> np.ndarray:  # cached: every analysis of the neuron reads it
        return self.spike_samples / self.sample_rate_hz

    def __repr__(self) -> str:
        return (f"<Neuron {self.id} of {self.sort.name}: {self.n_spikes} spikes, "
                f"{self.span_rate_hz:.2f} Hz, channel {self.channel}>")

    # analyses (cached by settings) -------------------------------------------------------
    @_cached
    def isi(self, **settings):
        return compute_isi(self.times_s, **settings)

    @_cached
    def rate(self, **settings):
        return compute_rate(self.times_s, **settings)

    @_cached
    def acg(self, **settings):
        return compute_autocorrelograms([self.spike_samples], unit_ids=[self.id],
                                        sample_rate_hz=self.sample_rate_hz, **settings)

    @_cached
    def psth(self, experiment: Experiment, **settings):
        return compute_psth(self.times_s, experiment.presentations(), **settings)

    @_cached
    def tune(self, experiment: Experiment, param: str, **settings):
        return compute_tuning(self.times_s, experiment.presentations(), param, **settings)

    @_cached
    def sta(self, experiment: Experiment, **settings):
        return compute_sta(self.times_s, experiment.movie(), **settings)


class Sort:
    """A set of neurons from one sorting: ``kind`` 'offline', 'phy', 'gui' or 'online'."""

    def __init__(self, name: str, kind: str, path: Path, loader):
        self.name, self.kind, self.path = name, kind, Path(path)
        self._loader = loader

    @functools.cached_property
    def data(self) -> adapters.SortData:
        return self._loader()

    @functools.cached_property
    def neurons(self) -> dict:
        """unit id -> :class:`Neuron` (loads the sort on first access)."""
        return {u: Neuron(self, u, self.data) for u in self.data.unit_ids}

    @property
    def sample_rate_hz(self) -> float:
        return self.data.sample_rate_hz

    @property
    def loaded(self) -> bool:
        return "data" in self.__dict__

    def __repr__(self) -> str:
        n = f", {len(self.neurons)} neurons" if self.loaded else " (not loaded)"
        return f"<Sort {self.name!r} ({self.kind}){n}>"

    def _trains(self, units):
        ids = list(self.neurons) if units is None else list(units)
        return {u: self.neurons[u].spike_samples for u in ids}

    def to_tsgroup(self, units=None, time_support=None):
        """The spike trains as a ``pynapple.TsGroup`` (s, recording clock; index = unit id) with
        per-unit metadata (peak channel, spike count, position, quality metrics); the
        ``pynapple`` extra. See :func:`offline.analysis.interop.to_tsgroup`."""
        from offline.analysis.interop import to_tsgroup

        return to_tsgroup(self.data, units=units, time_support=time_support)

    @_cached
    def correlograms(self, units=None, **settings):
        return compute_correlograms(self._trains(units), sample_rate_hz=self.sample_rate_hz,
                                    **settings)

    @_cached
    def codes(self, units=None, **settings):
        ids = list(self.neurons) if units is None else list(units)
        return compute_codes({u: self.neurons[u].times_s for u in ids}, **settings)

    @_cached
    def pairwise_correlations(self, units=None, **settings):
        ids = list(self.neurons) if units is None else list(units)
        return compute_pairwise_correlations({u: self.neurons[u].times_s for u in ids},
                                             **settings)

    @_cached
    def ising(self, units=None, bin_ms: float = 20.0, **settings):
        """Ising fit of up to 20 units (default: the 10 with the most spikes)."""
        ids = list(units) if units is not None else sorted(
            self.neurons, key=lambda u: -self.neurons[u].n_spikes)[:10]
        return fit_ising(self.codes(tuple(ids), bin_ms=bin_ms).codes, **settings)


class Experiment:
    """One stimulus session shown during the recording.

    ``session`` (the session file, see :func:`adapters.load_session`), ``refreshes`` (decoded
    refreshes of this experiment: sample_number, frame_number, sweep_index, flags),
    ``sample_rate_hz``; :meth:`presentations`, :meth:`movie`.
    """

    def __init__(self, recording: Recording, index: int, session: dict,
                 refreshes: np.ndarray | None, sample_rate_hz: float):
        self.recording, self.index = recording, index
        self.session = session
        self.refreshes = refreshes if refreshes is not None else np.zeros(
            0, [("sample_number", "<i8"), ("frame_number", "<i8"), ("sweep_index", "<i4"),
                ("flags", "<u4")])
        self.sample_rate_hz = sample_rate_hz
        self.name = session["path"].name.removesuffix(".session.json")
        self.decoded_code: tuple = (None, None)
        """(session code, status) decoded from its stretch's START block (status 'ok',
        'absent' = a version 1 stimulus, 'corrupt'; (None, None): no stretch)."""

    stimulus = property(lambda self: self.session.get("stimulus"))
    conditions = property(lambda self: self.session["conditions"])
    refresh_hz = property(lambda self: self.session["refresh_hz"])

    @property
    def parameters(self) -> list[str]:
        """Sweep-table parameters that vary between conditions."""
        names = []
        for c in self.conditions:
            for k in c:
                if k not in names:
                    names.append(k)
        return [k for k in names if len({repr(c.get(k)) for c in self.conditions}) > 1]

    @functools.cached_property
    def _plan(self):
        return adapters.plan_columns(self.refreshes, self.session.get("frame_log"))

    @_cached
    def presentations(self, display_lag_frames: float = 1.0) -> Presentations:
        plan = self._plan
        order = self.session.get("order")
        use_plan = plan is not None and order is not None
        return build_presentations(
            self.refreshes["sample_number"], self.refreshes["sweep_index"],
            sample_rate_hz=self.sample_rate_hz, refresh_hz=self.refresh_hz,
            conditions=self.conditions,
            refresh_presentation=(np.where(np.isin(plan[2], (1, 3)), plan[0], -1)
                                  if use_plan else None),
            presentation_sweep=order if use_plan else None,
            blank_s=self.session.get("blank_s"), display_lag_frames=display_lag_frames)

    def to_intervalset(self, display_lag_frames: float = 1.0):
        """The presentations as a ``pynapple.IntervalSet`` (s, recording clock; the spike
        trains' clock) with the sweep parameters, ``sweep_index`` and ``blank`` as metadata; the
        ``pynapple`` extra. Each interval holds the same spikes as :meth:`presentations`'
        windows (see :func:`offline.analysis.interop.to_intervalset`)."""
        from offline.analysis.interop import to_intervalset

        return to_intervalset(self.presentations(display_lag_frames=display_lag_frames),
                              self.sample_rate_hz)

    def refresh_table(self) -> dict:
        """Per refresh: sample_number, frame_number, sweep_index, flags, in_table and every
        sweep-table parameter's value (NaN / None where no sweep is shown)."""
        from offline.sweeps import frame_parameters

        return frame_parameters(self.refreshes, self.conditions)

    def refresh_onset_s(self, display_lag_frames: float = 1.0) -> np.ndarray:
        """On-screen start of every refresh, s (recording clock, display lag included)."""
        return (self.refreshes["sample_number"] / self.sample_rate_hz
                + display_lag_frames / self.refresh_hz)

    @property
    def has_sta(self) -> bool:
        return self.stimulus in STA_KINDS

    @_cached
    def movie(self, display_lag_frames: float = 1.0) -> StimulusMovie:
        plan = self._plan
        return build_movie(self.stimulus, self.session["static"], self.conditions,
                           seed=self.session.get("seed"),
                           refresh_sample=self.refreshes["sample_number"],
                           refresh_sweep=self.refreshes["sweep_index"],
                           sample_rate_hz=self.sample_rate_hz, refresh_hz=self.refresh_hz,
                           refresh_frame_in_sweep=None if plan is None else plan[1],
                           display_lag_frames=display_lag_frames)

    @property
    def duration_s(self) -> float:
        s = self.refreshes["sample_number"]
        return float((s[-1] - s[0]) / self.sample_rate_hz) if s.size > 1 else 0.0

    def __repr__(self) -> str:
        return (f"<Experiment e{self.index} {self.name!r}: {self.stimulus}, "
                f"{len(self.conditions)} conditions, varying {self.parameters}, "
                f"{self.refreshes.size} refreshes, {self.duration_s:.1f} s>")


class Recording:
    """A recording directory: its sorts and its experiments.

    Parameters
    ----------
    path : the recording directory (an Open Ephys session/recording folder, with the
        sweepsort online files, sort folders and stimulus session files anywhere below it).
    sort_dirs, session_files : more sort folders / session files kept elsewhere.
    refresh_source : 'auto', 'ttl' or 'online' (see :func:`adapters.load_refreshes`).
    """

    def __init__(self, path, *, sort_dirs=(), session_files=(), refresh_source: str = "auto",
                 name: str | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such recording directory")
        self.name = name or self.path.name
        self._sort_dirs = [Path(p) for p in sort_dirs]
        self._session_files = [Path(p) for p in session_files]
        self.refresh_source = refresh_source
        self.experiment_codes: list = []
        """Per decoded experiment (time order): (session code or None, status), set by
        :attr:`experiments` (status 'ok', 'absent' = no code sent, 'corrupt', or None)."""

    @functools.cached_property
    def sorts(self) -> dict:
        """name -> :class:`Sort`: offline sort folders (oldest first), stand-alone Phy folders,
        the GUI Spike Detector's ``*.spikes`` folders ('gui:NAME'), and 'online' when online
        spike files exist."""
        out = {}
        folders = adapters.find_sort_folders(self.path) + self._sort_dirs
        for f in folders:
            name = f.name if f.name not in out else str(f)
            out[name] = Sort(name, "offline", f, functools.partial(adapters.load_offline_sort, f))
        for f in adapters.find_phy_folders(self.path, exclude=folders):
            out[f"phy:{f.name}"] = Sort(f"phy:{f.name}", "phy", f, functools.partial(
                adapters.load_phy_folder, f, self._first_sample_number()))
        for f in adapters.find_gui_spike_folders(self.path):
            out[f"gui:{f.name}"] = Sort(f"gui:{f.name}", "gui", f, functools.partial(
                adapters.load_gui_spikes, f))
        if adapters.has_online_spikes(self.path):
            out["online"] = Sort("online", "online", self.path,
                                 functools.partial(adapters.load_online_sort, self.path))
        return out

    def _first_sample_number(self) -> int:
        try:
            from offline.recording import open_recording

            return int(open_recording(self.path).first_sample_number)
        except Exception:  # noqa: BLE001 - no Open Ephys data: stream indices are sample numbers
            return 0

    @property
    def sort(self) -> Sort | None:
        """The default sort: the newest offline sort, else the first of Phy, GUI, online."""
        if not self.sorts:
            return None
        offline = [s for s in self.sorts.values() if s.kind == "offline"]
        if offline:
            return offline[-1]
        return next(iter(self.sorts.values()))

    @property
    def n(self) -> dict:
        """The default sort's neurons."""
        return self.sort.neurons if self.sort is not None else {}

    @functools.cached_property
    def experiments(self) -> list[Experiment]:
        files = adapters.find_session_files(self.path) + self._session_files
        sessions = [adapters.load_session(f) for f in files]
        if not sessions:
            return []
        try:
            frames, fs, self.refresh_source_used, decoded = adapters.load_refreshes(
                self.path, self.refresh_source, sessions[0].get("protocol"),
                with_experiments=True)
        except FileNotFoundError as exc:
            import warnings

            warnings.warn(f"{exc}: experiments have no refresh times", stacklevel=2)
            return [Experiment(self, i, s, None, float("nan")) for i, s in enumerate(sessions)]
        parts = adapters.split_experiments(frames)
        self.experiment_codes = adapters.part_codes(frames, decoded)
        match = adapters.match_sessions(parts, sessions, self.experiment_codes)
        out = [Experiment(self, i, s, None if k is None else parts[k], fs)
               for i, (s, k) in enumerate(zip(sessions, match, strict=True))]
        for e, k in zip(out, match, strict=True):
            e.decoded_code = (None, None) if k is None else self.experiment_codes[k]
        return out

    @property
    def e(self) -> list[Experiment]:
        return self.experiments

    def __getattr__(self, name: str):
        # neuropy's shortcuts: rec.n3 (neuron 3 of the default sort), rec.e0 (experiment 0)
        if len(name) > 1 and name[0] in "ne" and name[1:].isdigit():
            i = int(name[1:])
            try:
                return self.n[i] if name[0] == "n" else self.experiments[i]
            except (KeyError, IndexError):
                raise AttributeError(name) from None
        raise AttributeError(name)

    def __repr__(self) -> str:
        sorts = ", ".join(self.sorts) or "no sorts"
        n_exp = len(self.experiments) if "experiments" in self.__dict__ else "?"
        return f"<Recording {self.name!r}: sorts [{sorts}], {n_exp} experiments>"
