"""The foo editing method for editmethods (a template: copy, rename, replace the method).

Everything is in :mod:`editmethods_foo.plugin`: ``FooHyperParams`` and the method, ``Foo``.
"""
