"""The platform simulator: a catalog, a population with latent tastes, sessions with position
bias, delivery faults and scenarios, written as events, with its ground truth (the oracle).

The event backbone (:mod:`flywheel.events`: schemas, validation, logs, import) does not depend
on it; the simulator writes through the backbone like any other producer.
"""
