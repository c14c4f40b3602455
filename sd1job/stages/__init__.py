"""The entry points: each module is one command (``configure_parser`` + ``run``).

``data``, ``train``, ``evaluate`` (one unit) and ``report`` (all units) are the stages a pod runs;
they never import each other and meet only through objects in the store, keyed by
``sd1job.layout``. ``sweep`` is the local orchestrator (the Argo DAG's steps, in one process
tree); ``capture`` runs a sweep on a player's own DI/output pair; ``export`` writes a unit for a
player's plugin.
"""
