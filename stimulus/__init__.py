"""sweepstim: the stimulus driver (experiment scripts, sweep tables, shader stimuli, frame
timing, TTL output, session files, Open Ephys control). See docs/stimulus.md.

Modules: :mod:`~stimulus.script` (what users write), :mod:`~stimulus.sweeptable`,
:mod:`~stimulus.validate`, :mod:`~stimulus.plan`, :mod:`~stimulus.stimuli`,
:mod:`~stimulus.display`, :mod:`~stimulus.timing`, :mod:`~stimulus.runner`,
:mod:`~stimulus.ttl`, :mod:`~stimulus.session_file`, :mod:`~stimulus.oe_control`,
:mod:`~stimulus.geometry`, :mod:`~stimulus.gamma`, :mod:`~stimulus.rig`,
:mod:`~stimulus.manual`, :mod:`~stimulus.cli` (the ``sweepstim`` command).
"""
