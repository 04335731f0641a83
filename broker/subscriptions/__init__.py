"""Subscriptions and notifications (ETSI GS CIM 009 v1.9.1 clauses 5.2.12-5.2.15, 5.8, 5.11).

Pure core: subscription (parse, validate, render, patch), match (does a change fire a
subscription, and with which data), notification (the body and the message to send), backoff
and schedule (retries, throttling, periodic and expiry). Edges: http_sender, mqtt_sender and the
dispatcher, which delivers what an Outbox (outbox.py, implemented by the store engines) holds.
"""
