"""Settings of the offline sorter: TOML sections ``[preprocess]``, ``[detect]``, ``[sort]``,
``[motion]``, ``[quality]``.

``[detect]`` is :class:`oe_plugin.settings.DetectSettings` (the online detector's settings; its
``noise_*`` fields are not used offline, where the noise is estimated once, up front). Every
field name carries its unit; :func:`load_sort_settings` refuses unknown keys and sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from oe_plugin.config import check_sections, choice, from_table, load_toml, require
from oe_plugin.settings import BAND_HIGH_HZ, BAND_LOW_HZ, BAND_ORDER, DetectSettings


@dataclass(frozen=True)
class PreprocessSettings:
    """Band-pass, reference, interpolation and chunking of the offline pipeline."""

    filter: str = choice("zero-phase", "causal", default="zero-phase")
    """zero-phase: forward + backward pass of the causal kernel (no phase shift, spikes keep
    their shape); causal: the online filter alone (mirrors the online path's waveforms)."""
    low_hz: float = BAND_LOW_HZ
    high_hz: float = BAND_HIGH_HZ
    order: int = BAND_ORDER
    common_reference: str = choice("none", "median", default="none")
    upsample_factor: int = 1
    """Sinc interpolation factor (the seed: 2); 1 = none (delay correction still applies)."""
    sh_tick_us: float = 0.0
    """Sample-and-hold delay between consecutive channels of one multiplexed converter (µs);
    0 = no correction. Channel c's delay is (c mod sh_mux_size) * sh_tick_us."""
    sh_mux_size: int = 32
    sh_delays_us: tuple[float, ...] = ()
    """Per-channel sample-and-hold delays (µs), one per recorded channel in the recording's
    channel order; when given it replaces the ``sh_tick_us`` / ``sh_mux_size`` model (for
    converters whose conversion order is not channel order, or channels re-ordered upstream)."""
    sinc_half_width: int = 6
    chunk_s: float = 2.0
    margin_ms: float = 50.0
    """Overlap read on each side of a chunk so the filter settles (20 ms already gives
    bit-identical float32 output at 300 Hz; see docs/sorting.md)."""
    noise_windows: int = 16
    """Number of windows, evenly spread in time, whose MAD sets each channel's fixed noise."""
    noise_window_s: float = 1.0
    whiten: str = choice("off", "auto", "on", default="auto")
    """Whiten the noise between neighbouring channels after the drift correction
    (:mod:`offline.sort.whitening`; the online sorter applies the sort's mix too). ``auto``:
    only when the sort does not correct motion (on kriged traces the fixed mix over-splits
    units: docs/sorting.md, "Spatial whitening")."""
    whiten_detection: bool = True
    """With ``whiten``: detect on the whitened traces too (false: on the plain ones, whose
    per-channel peaks are larger, with their noise levels; clustering and matching use the
    whitened ones either way). On the dense64 tuning seeds true gave +9 well-detected units
    over five seeds, false +3 over six (docs/sorting.md)."""
    whiten_radius_um: float = 80.0
    """Channels within this radius mix into a channel's whitened trace."""
    whiten_eps: float = 0.01
    """Regularisation added to the noise correlation's diagonal before its inverse root."""

    def check(self, section: str = "preprocess") -> None:
        require(0 < self.low_hz < self.high_hz, f"{section}.low_hz",
                f"need 0 < low_hz < high_hz, got {self.low_hz}, {self.high_hz}")
        require(1 <= self.order <= 8, f"{section}.order", f"must be 1..8, got {self.order}")
        require(1 <= self.upsample_factor <= 8, f"{section}.upsample_factor",
                f"must be 1..8, got {self.upsample_factor}")
        require(self.sh_tick_us >= 0, f"{section}.sh_tick_us", "must be >= 0 µs")
        require(self.sh_mux_size >= 1, f"{section}.sh_mux_size", "must be >= 1")
        require(all(math.isfinite(d) and abs(d) <= 1000 for d in self.sh_delays_us),
                f"{section}.sh_delays_us", "every delay must be finite and within ±1000 µs")
        require(1 <= self.sinc_half_width <= 64, f"{section}.sinc_half_width", "must be 1..64")
        require(0.1 <= self.chunk_s <= 600, f"{section}.chunk_s", "must be in [0.1, 600] s")
        require(1 <= self.margin_ms <= 1000, f"{section}.margin_ms", "must be in [1, 1000] ms")
        require(1 <= self.noise_windows <= 1000, f"{section}.noise_windows", "must be 1..1000")
        require(0.01 <= self.noise_window_s <= 60, f"{section}.noise_window_s",
                "must be in [0.01, 60] s")
        require(0 < self.whiten_radius_um <= 10000, f"{section}.whiten_radius_um",
                "must be in (0, 10000] µm")
        require(0 <= self.whiten_eps <= 1, f"{section}.whiten_eps", "must be in [0, 1]")


@dataclass(frozen=True)
class SortSettings:
    """Snippets, clustering, templates and matching."""

    pre_ms: float = 0.6
    """Template window before the detected peak (ms)."""
    post_ms: float = 1.2
    template_radius_um: float = 60.0
    """Channels within this radius of an event's peak channel form its snippet/template rows."""
    events_per_chunk: int = 400
    """Events drawn at random (uniformly in time) from each chunk for clustering: at least
    this many, and at least ``events_per_channel`` per channel of the probe."""
    events_per_channel: float = 6.25
    """The chunk's draw grows with the probe: at least this many events per channel (6.25:
    400 on 64 channels, 2400 on 384). Clustering is per peak channel, and a fixed draw thins
    out per channel as the probe grows: on the 384-channel tuning cases (60 s, ~1600 events a
    2 s chunk) 400 left ~30 snippets per channel, and a cell firing at 2 Hz too few for a
    cluster (np384 tuning seeds 1 / 2: 87 / 93 well-detected units at 400, 93 / 94 with every
    event drawn; more events changed nothing on the 32- and 64-channel cases)."""
    max_events_per_channel: int = 2000
    pca_components: int = 6
    min_cluster_size: int = 25
    min_samples: int = 10
    root_cluster_quantile: float = 0.5
    """When HDBSCAN keeps only its root cluster's densest ~``min_cluster_size`` events (its
    labelling with one cluster allowed), the channel's densest events up to this quantile of
    HDBSCAN's core distance form the cluster instead, and the bimodality splits divide it
    (:func:`offline.sort.cluster.dense_root_cluster`; 0 = HDBSCAN's labels)."""
    split_trough: float = 0.5
    """A cluster splits where the histogram of its 2-means projection dips below this fraction
    of the smaller mode (0 = no bimodal split)."""
    merge_test_trough: float = 0.1
    """> 0: two templates closer than ``merge_distance`` stay apart when their clusters'
    snippets form two modes between the two means (the dip below this fraction of the smaller
    mode, as ``split_trough``); 0 = merge on the distance alone. It separates two cells at one
    site (dense64 tuning seed 2: 147 and 109 µV units 4 µm apart), and also the two modes of
    one cell, which ``split_join`` joins again after matching."""
    merge_fisher: bool = True
    """The merge test looks for two modes along the two clusters' Fisher direction in their
    snippets' top ``split_pca_components`` principal components, not along the line between the
    means (two ~100 µV cells 5 µm apart, dense64 tuning seed 3, overlap on that line)."""
    split_join: bool = True
    """With the merge test: after matching, join units whose templates are closer than
    ``merge_distance`` and whose spikes almost never fall within 1 ms of each other (one cell;
    :func:`offline.sort.drift_merge.split_groups`)."""
    split_pca_components: int = 10
    """Each split test runs in the tested cluster's own top principal components (of its
    members' snippets), this many (0 = in the group's ``pca_components``, as HDBSCAN saw them)."""
    split_core: float = 0.95
    """The bimodality split looks for its two halves (2-means, Fisher direction, histogram
    dip) among the cluster's snippets within this quantile of distance from their median, then
    cuts all of them (0 = all snippets; :func:`offline.sort.cluster.core_points`). The trimming
    is for the ~5 % of a dense recording's snippets that hold a second spike; 0.8 (session 18)
    also left out the whole of a smaller cell that made up ~19 % of a cluster (dense64 tuning
    seed 3: a 51 µV cell's 61 snippets among 261 of a 71 µV cell). Over the 19 tuning
    case-seeds: 0.8 856, 0.9 855, 0.95 860 well-detected units (dense64 seed 3 71 -> 74)."""
    split_core_fallback: bool = False
    """A cluster the trimmed split (``split_core``) finds unimodal is tested again on all its
    snippets: the trimming (session 18's 0.8) left out the farthest ~20 %, which can be the whole
    of a smaller cell sharing the cluster with a busier one (dense64 tuning seed 3: 61 snippets
    of a 51 µV cell among 261 of a 71 µV cell at 20 µm). Off: over 14 tuning case-seeds it
    gained one well-detected unit and found 26 more units (small cells over-split; session 19);
    session 20 trims less instead (``split_core`` 0.95)."""
    split_fisher: bool = True
    """Each split test projects on the Fisher direction of its 2-means halves instead of the
    line between their centres (two units whose clouds are elongated along other directions
    overlap on that line; any projection of one Gaussian cloud stays unimodal)."""
    split_shape: bool = True
    """After the split tests, each part is tested again on its snippets divided by their own
    norm: the *shape* of the footprint, whatever the size. A bursting cell's spikes shrink
    within a burst and fill the amplitude gap to a smaller neighbour; their shapes still
    differ."""
    merge_distance: float = 0.1
    """Templates closer than this (squared difference / smaller energy, best shift) merge."""
    min_unit_spikes: int = 25
    max_shift_samples: int = 2
    amplitude_min: float = 0.75
    """Smallest template scale a match may use. Tight on purpose: with a free scale, a large
    unit's template at ~0.6 explains a smaller neighbour whose waveform is nearly a scaled copy
    on the top channels (measured on the 32x60 benchmark: [0.5, 2] 16/20 well-detected units,
    [0.7, 1.4] 18/20, [0.75, 1.33] 19/20). Spikes of a unit scaled beyond the range (bursts,
    drift) stay unsorted (-1); widen the range for strongly bursting cells."""
    amplitude_max: float = 1.33
    amplitude_prior: float = 1.0
    """How strongly a fit's scale is pulled toward 1: a template ``T`` at scale ``a`` pays
    ``amplitude_prior * |T|^2 * (a - 1)^2`` on top of its residual, so the least-squares scale's
    distance from 1 is divided by ``1 + amplitude_prior`` (0 = a free scale within the range).
    Without it a large unit's template at the range's floor explains a smaller neighbour's spike
    (on dense64 tuning chunks, most false positives had scale 0.75); 1 cut them by 16-21 % and
    found 0.4-0.8 % more ground-truth spikes (with ``overlap_partial``)."""
    calibration_chunks: int = 8
    """Chunks, evenly spread, whose match errors set each template's acceptance threshold."""
    max_error: float = 4.0
    """Largest acceptance threshold (residual energy per sample, in noise variances)."""
    min_error: float = 1.5
    """Smallest acceptance threshold (noise variances per sample). A unit's own errors vary
    with what its window holds besides it (drift left over after correction, interpolation,
    nearby small spikes); a trough found inside that spread would reject its own spikes."""
    peel_passes: int = 2
    """Re-detections in the residual after subtracting accepted matches (0 = none)."""
    peel_threshold_factor: float = 0.78
    """The re-detections' threshold as a fraction of the detection threshold (``[detect]
    threshold_mad``, ``threshold_uv``, ``threshold_floor_uv`` all scaled; 1 = the same). The
    events below the full threshold get single fits, accepted only above ``amplitude_min``.
    Clustering still sees only events above the full threshold."""
    template_detect_z: float = 4.5
    """> 0: a last pass after the peel passes takes, for each template whose trough is under
    ``template_detect_max_trough`` x the detection threshold, the peaks of its matched-filter
    response on the residual (:mod:`oe_plugin.kernels.matched_filter`) above this many robust
    standard deviations of the response as extra events, matched like the weak re-detections
    (single fits, not at ``amplitude_min``). 0 = off. A 12 µV unit at 5-7 µV of noise (np384
    tuning seed 1) had 239 of its 880 spikes with no event near; over the 22 tuning
    case-seeds 4.5 gave 1039 -> 1048 well-detected units and no case lost one (session 23;
    np384 seed 1: 4 and 4.5 both 94, 5 93)."""
    template_detect_max_trough: float = 2.0
    """The templates the matched-filter pass runs for: trough (noise units) under this many
    detection thresholds. Larger units cross the threshold with every spike (3 found the same
    units as 2 on 4 tuning case-seeds)."""
    template_detect_rows: int = 8
    """Most template rows (channels, by energy) a response sums; the fewest that hold 95 % of
    the template's energy."""
    pair_window_us: float = 1500.0
    """An event no single template fits is resolved as up to ``max_overlap_spikes`` spikes
    within this distance of its first spike (0 = off). It should cover the template's width:
    a neighbour's spike anywhere in the window spoils the fit (measured on the static64
    tuning case: 500 µs 37/40 well-detected units, mean accuracy 0.85; 1200 µs 38/40, 0.91)."""
    max_overlap_spikes: int = 4
    """Most spikes an overlap no single template fits is resolved into (1 = off, 2 = pairs)."""
    overlap_cycles: int = 2
    """Pursue -> verify -> refit -> drop-the-worst cycles an overlap gets (0 = 2 x
    ``max_overlap_spikes``). Two give the spikes of 2 dense64 tuning chunks that eight gave
    (2267 vs 2268 and 2222 vs 2220 ground-truth spikes found) at a third to a fifth of the
    matching time; one loses ~1 %."""
    overlap_partial: bool = True
    """When some spikes of a resolved overlap fail their check: keep the ones that pass, each
    checked with the failing ones' fits still removed (they explain part of its window), and
    put only the failing ones back for a later pass; off: a failing spike is put back before the
    others are checked again, which often rejects the whole overlap. On four 2-s dense64
    tuning chunks, with ``amplitude_prior`` 1: +3.3 to +7.3 % of ground-truth spikes found and
    ~10 % fewer false ones than with neither."""
    overlap_refit_rounds: int = 1
    """Coordinate-descent rounds (each spike re-chosen, +-``pair_window_us``, for what the
    others leave) when a resolved overlap fails its check; each costs a pursuit per spike
    (0 = none loses ~0.3 % of the spikes on the dense64 tuning chunks, 3 gain nothing)."""
    rebuild_radius_um: float = 150.0
    """Templates are re-estimated from their matched spikes (calibration chunks) on the channels
    within this radius of their peak channel (0 = keep the cluster means)."""
    rebuild_merge: bool = False
    """Merge the rebuilt templates again when closer than ``merge_distance`` (no merge test:
    the rebuild keeps no snippets). Off: on dense64 tuning seed 5 a 64 µV and a 68 µV cell on one
    channel, clustered apart and never compared (their cluster means were far apart), became
    near-identical once rebuilt from their matched spikes and merged into one unit. Parts of
    one cell left apart are joined after matching when their spikes never coincide
    (``split_join``)."""
    rebuild_clip: float = 3.0
    """Robust rebuild (noise units, 0 = plain mean): each matched spike's window deviates from
    its chunk's per-sample median by at most this in the sum (see
    :func:`offline.sort.matching._accumulate`), so a neighbour's big spike overlapping a few of a
    unit's windows does not bend its rebuilt template. On dense64 tuning seed 3 a focal 71 µV
    cell's template, rebuilt from 77 spikes, had picked up 2-6 noise units on seven channels
    where the cell has none; the cell's own spikes then fitted the 54 µV cell beside it better
    and the two became one unit. Session 19, tuning and extra tuning seeds (19 case-seeds):
    847 -> 856 well-detected units (dense64 seeds 1-6 +3, +1, +3, +1, +1, +1; burst32 seed 1 -1,
    a unit at accuracy 0.80 -> 0.79; the other 12 unchanged)."""
    template_row_min: float = 1.5
    """A rebuilt template keeps the channels whose peak reaches this (noise units)."""
    burst_merge: bool = True
    """Join a bursting cell's templates into one unit: scaled copies on one peak channel whose
    spikes follow each other within 2-20 ms far more than chance and never within 1 ms
    (:mod:`offline.sort.burst_merge`; the unit keeps every template for matching)."""
    whitened_merge_scale: float = 1.5
    """When the sort whitened: ``merge_distance`` and ``burst_max_residual`` are multiplied by
    this. Both are relative to a template's energy, which whitening lowers (its spatial
    high-pass removes what neighbouring channels share) while the noise in the means stays,
    so the same cell's templates lie relatively further apart (tuning seeds, whitened: 1 kept
    one bursting cell in two templates on burst32 seed 2 and lost 5 units over the four burst32
    seeds; 1.5 lost none)."""
    burst_max_residual: float = 0.1
    """How exact a scaled copy must be: ``|X - s Y|^2 / |X|^2`` at most this, on the smaller
    one's channels (tuning seeds of burst32: 0.02 and 0.05 join 2 + 2 templates, 0.1 one more;
    no join on any other tuning case at 0.1)."""
    drift_merge: bool = True
    """When the sort corrected motion: join units that the drift left after correction split in
    time (similar templates on nearby channels that take turns and never fire within 1 ms of
    each other; :mod:`offline.sort.drift_merge`)."""
    drift_merge_max_distance: float = 0.7
    """Largest template distance (the template merge's) of a drift-split pair."""
    drift_merge_end_max_distance: float = 4.0
    """The same for a pair whose peak channels both lie within 40 µm of the same end of the
    probe, where correction leaves one cell's drift-phase templates far apart (drifting tuning
    seeds: such joins at 0.76-3.26, all of one cell; one at 7.47 joined a cell with a noise
    unit; 0 = the same limit as elsewhere)."""
    drift_merge_max_overlap: float = 0.2
    """Largest overlap of two groups' time profiles (5 s bins; 1 = the same profile). Chosen on
    the drifting tuning seeds: 164 well-detected units without the join; 170-172 at 0.3-0.7 /
    0.15-0.2; 174 at 1.0 / 0.25, not taken (a wrong join costs a lab two cells)."""
    seed: int = 0

    def check(self, section: str = "sort") -> None:
        require(0 < self.pre_ms <= 5, f"{section}.pre_ms", "must be in (0, 5] ms")
        require(0 < self.post_ms <= 10, f"{section}.post_ms", "must be in (0, 10] ms")
        require(self.template_radius_um >= 0, f"{section}.template_radius_um", "must be >= 0")
        require(self.events_per_chunk >= 1, f"{section}.events_per_chunk", "must be >= 1")
        require(0 <= self.events_per_channel <= 1e4, f"{section}.events_per_channel",
                "must be in [0, 10000]")
        require(self.max_events_per_channel >= 10, f"{section}.max_events_per_channel",
                "must be >= 10")
        require(1 <= self.pca_components <= 50, f"{section}.pca_components", "must be 1..50")
        require(0 <= self.merge_test_trough < 1, f"{section}.merge_test_trough",
                "must be in [0, 1)")
        require(0 <= self.split_pca_components <= 50, f"{section}.split_pca_components",
                "must be 0..50")
        require(self.min_cluster_size >= 2, f"{section}.min_cluster_size", "must be >= 2")
        require(self.min_samples >= 1, f"{section}.min_samples", "must be >= 1")
        require(0.0 <= self.root_cluster_quantile <= 1.0, f"{section}.root_cluster_quantile",
                "must be 0..1")
        require(0.0 <= self.split_core < 1.0, f"{section}.split_core", "must be 0..1 (1 excluded)")
        require(0 <= self.split_trough < 1, f"{section}.split_trough", "must be in [0, 1)")
        require(self.merge_distance >= 0, f"{section}.merge_distance", "must be >= 0")
        require(1 <= self.whitened_merge_scale <= 10, f"{section}.whitened_merge_scale",
                "must be in [1, 10]")
        require(0 <= self.max_shift_samples <= 10, f"{section}.max_shift_samples", "0..10")
        require(0 < self.amplitude_min <= 1 <= self.amplitude_max, f"{section}.amplitude_min",
                "need 0 < amplitude_min <= 1 <= amplitude_max")
        require(0 <= self.amplitude_prior <= 100, f"{section}.amplitude_prior", "must be 0..100")
        require(self.calibration_chunks >= 1, f"{section}.calibration_chunks", "must be >= 1")
        require(self.max_error > 0, f"{section}.max_error", "must be > 0")
        require(0 <= self.min_error <= self.max_error, f"{section}.min_error",
                "must be in [0, max_error]")
        require(0 <= self.peel_passes <= 5, f"{section}.peel_passes", "must be 0..5")
        require(0.5 <= self.peel_threshold_factor <= 1.0, f"{section}.peel_threshold_factor",
                f"must be 0.5..1, got {self.peel_threshold_factor}")
        require(0 <= self.template_detect_z <= 50, f"{section}.template_detect_z",
                "must be 0 (off) .. 50")
        require(0 < self.template_detect_max_trough <= 100,
                f"{section}.template_detect_max_trough", "must be in (0, 100]")
        require(1 <= self.template_detect_rows <= 64, f"{section}.template_detect_rows",
                "must be 1..64")
        require(0 <= self.pair_window_us <= 2000, f"{section}.pair_window_us",
                "must be in [0, 2000] µs")
        require(1 <= self.max_overlap_spikes <= 8, f"{section}.max_overlap_spikes",
                "must be 1..8")
        require(0 <= self.overlap_cycles <= 16, f"{section}.overlap_cycles", "must be 0..16")
        require(0 <= self.overlap_refit_rounds <= 5, f"{section}.overlap_refit_rounds",
                "must be 0..5")
        require(self.rebuild_radius_um >= 0, f"{section}.rebuild_radius_um", "must be >= 0")
        require(self.rebuild_clip >= 0, f"{section}.rebuild_clip", "must be >= 0")
        require(self.template_row_min >= 0, f"{section}.template_row_min", "must be >= 0")
        require(0 <= self.burst_max_residual < 1, f"{section}.burst_max_residual",
                "must be in [0, 1)")
        require(self.drift_merge_end_max_distance >= 0,
                f"{section}.drift_merge_end_max_distance", "must be >= 0")
        require(self.drift_merge_max_distance >= 0, f"{section}.drift_merge_max_distance",
                "must be >= 0")
        require(0 <= self.drift_merge_max_overlap <= 1, f"{section}.drift_merge_max_overlap",
                "must be in [0, 1]")


@dataclass(frozen=True)
class MotionSettings:
    """Probe-motion estimation and correction (``[motion]``): see docs/sorting.md, "Motion"."""

    mode: str = choice("auto", "rigid", "nonrigid", "off", default="auto")
    """auto: non-rigid on probes with a depth span (rigid when the span is short, off for the
    ``single`` layout); rigid / nonrigid: forced; off: no estimate, no correction."""
    min_range_um: float = 4.0
    """The traces are corrected only when the estimate moves by at least this much (peak to
    peak); below it the estimate is stored but the first detection is kept (no second pass)."""
    bin_s: float = 2.0
    """Time bin of the estimate (s)."""
    bin_um: float = 2.0
    """Depth bin of the peak raster (µm)."""
    max_displacement_um: float = 60.0
    """Largest displacement between two time bins that the estimator looks for (µm)."""
    max_dt_s: float = 120.0
    """Time bins further apart than this are not registered against each other (s)."""
    window_um: float = 200.0
    """Non-rigid: width (2 sigma) of each depth window (µm)."""
    window_step_um: float = 100.0
    """Non-rigid: spacing of the depth windows (µm)."""
    localize: str = choice("monopolar", "com", default="monopolar")
    """How a peak's position is found: monopolar (the point source that best explains its
    amplitudes) or com (their centre of mass; compresses motion on coarse probes)."""
    localize_radius_um: float = 75.0
    """Channels within this radius of a peak's channel give its position."""
    kriging_sigma_um: float = 20.0
    """Length scale of the kriging kernel exp(-d / sigma) used to interpolate the channels."""
    interp_bin_s: float = 1.0
    """The correction holds the displacement constant within bins of this length (s)."""

    def check(self, section: str = "motion") -> None:
        require(self.min_range_um >= 0, f"{section}.min_range_um", "must be >= 0 µm")
        require(0.1 <= self.bin_s <= 600, f"{section}.bin_s", "must be in [0.1, 600] s")
        require(0.1 <= self.bin_um <= 50, f"{section}.bin_um", "must be in [0.1, 50] µm")
        require(0 < self.max_displacement_um <= 1000, f"{section}.max_displacement_um",
                "must be in (0, 1000] µm")
        require(self.max_dt_s >= self.bin_s, f"{section}.max_dt_s", "must be >= bin_s")
        require(self.window_um > 0, f"{section}.window_um", "must be > 0 µm")
        require(self.window_step_um > 0, f"{section}.window_step_um", "must be > 0 µm")
        require(self.localize_radius_um >= 0, f"{section}.localize_radius_um", "must be >= 0")
        require(self.kriging_sigma_um > 0, f"{section}.kriging_sigma_um", "must be > 0 µm")
        require(0.01 <= self.interp_bin_s <= 600, f"{section}.interp_bin_s",
                "must be in [0.01, 600] s")


@dataclass(frozen=True)
class QualitySettings:
    """The quality metrics' parameters and the bounds of Phy's ``good`` label (``[quality]``):
    a unit is ``good`` when all three bounds hold (a NaN metric fails its bound), else ``mua``
    (:mod:`offline.sort.metrics` defines the metrics)."""

    good_max_isi_violation_ratio: float = 0.5
    """A good unit's ``isi_violation_ratio`` is below this (Hill et al.'s contamination)."""
    good_min_snr: float = 5.0
    """A good unit's ``snr`` (template peak / noise on its main channel) is at least this."""
    good_min_presence_ratio: float = 0.9
    """A good unit holds a spike in at least this fraction of the ``presence_bin_s`` bins."""
    presence_bin_s: float = 60.0
    """Time bin of ``presence_ratio`` (s; SpikeInterface's default), shortened to a tenth of the
    recording when that is shorter."""

    def check(self, section: str = "quality") -> None:
        require(self.good_max_isi_violation_ratio >= 0,
                f"{section}.good_max_isi_violation_ratio", "must be >= 0")
        require(self.good_min_snr >= 0, f"{section}.good_min_snr", "must be >= 0")
        require(0 <= self.good_min_presence_ratio <= 1, f"{section}.good_min_presence_ratio",
                "must be in [0, 1]")
        require(0 < self.presence_bin_s <= 3600, f"{section}.presence_bin_s",
                "must be in (0, 3600] s")


@dataclass(frozen=True)
class AllSettings:
    preprocess: PreprocessSettings
    detect: DetectSettings
    sort: SortSettings
    motion: MotionSettings = MotionSettings()
    quality: QualitySettings = QualitySettings()


def settings_from_table(table: dict | None) -> AllSettings:
    table = dict(table or {})
    check_sections(table, ("preprocess", "detect", "sort", "motion", "quality", "filter"),
                   "sort settings")
    return AllSettings(
        from_table(PreprocessSettings, table.get("preprocess"), "preprocess"),
        from_table(DetectSettings, table.get("detect"), "detect"),
        from_table(SortSettings, table.get("sort"), "sort"),
        from_table(MotionSettings, table.get("motion"), "motion"),
        from_table(QualitySettings, table.get("quality"), "quality"),
    )


def load_sort_settings(path=None) -> AllSettings:
    """Settings from a TOML file (``None``: all defaults)."""
    return settings_from_table(load_toml(path) if path else {})
