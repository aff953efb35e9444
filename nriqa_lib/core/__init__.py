"""The foundation every stage loads: typed params (:mod:`.config`, :mod:`.params`), the file layout (:mod:`.paths`),
atomic I/O, the cache, metrics, devices and errors. Imports nothing above it."""
