"""Built-in demo data: a synthetic guitar DI through a circuit-informed virtual Boss SD-1.

- ``pedal``: the virtual SD-1 (filters, the clipping stage with a fast and a reference solver).
- ``guitar``: extended Karplus-Strong strings and a magnetic pickup.
- ``score``: a small builder for riffs (notes, power chords, mutes, bends, tempo, dynamics).
- ``capture``: the demo recording set and the ``synth`` command.
"""
