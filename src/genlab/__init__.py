"""genlab: one engine that trains, samples, edits and evaluates generative models."""

__version__ = "0.1.0"
