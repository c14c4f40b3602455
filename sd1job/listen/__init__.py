"""The blind listening test: can a listener hear the difference between a model and the pedal?

- ``design``: trials and blinding (pure): opaque ids, per-listener seeded order; the key stays here.
- ``stimuli``: what is played: the pedal's wet riff, one representative seed per arm, a 3.5 kHz
  low-passed anchor; excerpts of at most ``listen.excerpt_seconds``, loudness-matched (BS.1770).
- ``answers``: the sessions and their answers in the store (``runs/<run_id>/listening/``).
- ``server``: the HTTP server (stdlib) and ``static/``, the page and its Web Audio script.
- ``analysis``: ABX and MUSHRA statistics and the report's listening section (pure).
"""
