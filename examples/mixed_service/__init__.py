"""The reference mixed service: an aiohttp app on uvloop whose disk work goes through spargio.

Run it with ``PYTHONPATH=examples python -m mixed_service --io spargio``;
``make demo`` runs it under load in each ``--io`` mode beside nginx.
"""
