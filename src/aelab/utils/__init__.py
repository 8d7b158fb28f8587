"""The bottom layer: what every other part of aelab stands on and nothing in it knows of
autoencoders: the device and precision (:mod:`.device`), several processes under ``torchrun``
(:mod:`.distributed`), memory estimates (:mod:`.memory`), files written atomically with their
digests (:mod:`.files`) and dataclass configs read back from JSON (:mod:`.fields`)."""
