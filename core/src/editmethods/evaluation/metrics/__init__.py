"""Metrics, each an ``evaluate`` hook implementation labelled with its protocol."""
