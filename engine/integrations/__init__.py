"""Adapters that plug semcache into other frameworks; each needs an optional extra."""
