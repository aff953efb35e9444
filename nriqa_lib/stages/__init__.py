"""The DVC stages: one module per compute stage (its ``STAGE`` declaration and ``run(p, ...)``, which unpacks its
params, calls the library and writes its outputs), the notebook stages' runner (:mod:`.notebook`) and the params
unpacking shared by several stages (:mod:`.datasets`, :mod:`.models`). The declarations are collected by
:mod:`nriqa_lib.pipeline`, which derives dvc.yaml and the CLI from them."""
