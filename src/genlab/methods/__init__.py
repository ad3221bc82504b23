"""Methods: one module per family. METHOD_CONFIGS / METHODS are plain registries keyed by `kind`."""

from genlab.methods.base import Method
from genlab.methods.flow import FlowConfig, FlowMethod

METHOD_CONFIGS = {"flow": FlowConfig}
METHODS = {"flow": FlowMethod}


def build_method(recipe) -> Method:
    """The method a resolved recipe describes (its networks built from recipe.model)."""
    return METHODS[recipe.method.kind](recipe.method, recipe.model)


__all__ = ["METHOD_CONFIGS", "METHODS", "Method", "build_method"]
