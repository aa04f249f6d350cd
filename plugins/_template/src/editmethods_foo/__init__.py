"""The foo editing method for editmethods (a template: copy, rename, replace the method)."""

from editmethods_foo.hparams import FooHyperParams

__all__ = ["FooHyperParams"]
