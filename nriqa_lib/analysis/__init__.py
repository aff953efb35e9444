"""What every table shares: how a table is declared (:mod:`.table`), a dataset's design (:mod:`.design`), the one
comparison pipeline and its tests (:mod:`.compare`), pooled verdicts (:mod:`.pooled`), the statistics
(:mod:`.stats`), formatting (:mod:`.format`), a table's inputs and its Result (:mod:`.inputs`, :mod:`.result`). Pure
functions of frames and typed configs: nothing here reads or writes a file, trains or runs a model
(tests/test_layers.py). The tables themselves are :mod:`nriqa_lib.tables`."""
