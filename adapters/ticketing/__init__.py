"""Public transport ticketing: a GTFS static feed and validator tap logs (RAT Craiova style).

parse.py: vendor bytes -> records; mapping.py: records -> NGSI-LD entities; aggregate.py: taps
-> validations per stop and hour (open data, no card references); simulator.py: the vendor's
back office over HTTP; adapter.py: the SDK Adapter.
"""
