"""The file formats the online and the stimulus sides read, with nothing heavier than numpy.

- :mod:`oe_plugin.formats.sort_folder` — a sort folder (``sort.json`` + ``sort.npz``) as
  ``sweepsort sort`` writes it (the writer is :mod:`offline.sort.sortfile`);
- :mod:`oe_plugin.formats.session_file` — a stimulus session file (``NAME.session.json`` +
  ``NAME.frames.npz``) as ``sweepstim`` writes it (the writer is
  :mod:`stimulus.session_file`).
"""
