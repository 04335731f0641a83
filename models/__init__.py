"""Pydantic models: the NGSI-LD core (models.core, models.attributes, models.entity,
models.subscription) and the city's entity types (models.domain), for adapters and clients."""
