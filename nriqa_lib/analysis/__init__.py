"""The tables: each ``tN.compute`` is a pure function of the stages' saved predictions, features or scores (as frames)
and typed configs that returns a :class:`~.result.Result` (the frames, the files to write, metrics.json); it reads
or writes no file (tests/test_layers.py), trains or runs no model. The module's one entry (``t1_backbones``, ...)
reads the inputs (:mod:`nriqa_lib.core.paths`), calls ``compute`` and writes the Result
(:func:`nriqa_lib.reporting.export.write_result`).

Each table module declares ``PARAMS``, the params it reads (its notebook stage declares the same in dvc.yaml).
"""
