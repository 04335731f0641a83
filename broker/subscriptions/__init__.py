"""Subscriptions and notifications (ETSI GS CIM 009 v1.9.1 clauses 5.2.12-5.2.15, 5.8, 5.11).

Pure core (no I/O, tested directly):
    subscription  parse, validate, render and patch a Subscription; to_record/from_record
    endpoint      the notification endpoint: URI, accept, receiverInfo, notifierInfo (MQTT)
    match         Change (one entity before/after a write) -> does it fire, with what data
    index         SubscriptionIndex: the candidates of a change, by tenant/type/attribute
    notification  the Notification body and the Outgoing message (HTTP headers, MQTT envelope)
    plan          the changes of one write -> the outbox rows they owe; periodic notifications
    backoff       retry delays: exponential, jittered, capped; when to give up
    schedule      throttling, periodic due times, cooldown, expiry and status
Edges:
    resolve       resolve a receiver's host and check every address with the policy
    http_sender   POST with httpx; mqtt_sender: publish with aiomqtt (sender.py: the protocol)
    outbox        the Outbox protocol the store engines implement, and its tables
    dispatcher    claims due outbox rows, delivers them per receiver, records outcomes
"""
