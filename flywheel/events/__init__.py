"""The event backbone: schemas, validation, the topic log and the platform simulator."""
